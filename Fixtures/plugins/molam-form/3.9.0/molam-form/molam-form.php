<?php
/**
 * Plugin Name:          Molam Form – Mobile Money & Card Payments
 * Plugin URI:           https://molam.example/plugins/molam-form
 * Description:          Accept Orange Money, Wave, MTN MoMo and card payments in WooCommerce through Molam.
 * Version:              3.9.0
 * Requires at least:    6.0
 * Requires PHP:         7.4
 * Author:               Molam
 * Author URI:           https://molam.example
 * License:              GPL-2.0-or-later
 * Text Domain:          molam-form
 * Domain Path:          /languages
 * WC requires at least: 7.0
 * WC tested up to:      8.2
 */

defined( 'ABSPATH' ) || exit;

define( 'MOLAM_FORM_VERSION', '3.9.0' );
define( 'MOLAM_FORM_FILE', __FILE__ );
define( 'MOLAM_FORM_DIR', plugin_dir_path( __FILE__ ) );
define( 'MOLAM_FORM_URL', plugin_dir_url( __FILE__ ) );

add_action( 'plugins_loaded', 'molam_form_init', 11 );

/**
 * Loads the gateway once WooCommerce is available.
 */
function molam_form_init() {
	if ( ! class_exists( 'WC_Payment_Gateway' ) ) {
		add_action( 'admin_notices', 'molam_form_missing_woocommerce_notice' );
		return;
	}

	load_plugin_textdomain( 'molam-form', false, dirname( plugin_basename( __FILE__ ) ) . '/languages' );

	require_once MOLAM_FORM_DIR . 'includes/admin/settings.php';
	require_once MOLAM_FORM_DIR . 'includes/class-molam-gateway.php';
	require_once MOLAM_FORM_DIR . 'includes/class-molam-webhooks.php';

	add_filter( 'woocommerce_payment_gateways', 'molam_form_register_gateway' );
	Molam_Webhooks::init();
}

function molam_form_register_gateway( $gateways ) {
	$gateways[] = 'Molam_Gateway';
	return $gateways;
}

function molam_form_missing_woocommerce_notice() {
	echo '<div class="notice notice-error"><p>';
	esc_html_e( 'Molam Form needs WooCommerce to be installed and active.', 'molam-form' );
	echo '</p></div>';
}

add_action( 'wp_enqueue_scripts', function () {
	if ( ! function_exists( 'is_checkout' ) || ! is_checkout() ) {
		return;
	}
	wp_enqueue_style( 'molam-checkout', MOLAM_FORM_URL . 'assets/css/checkout.css', array(), MOLAM_FORM_VERSION );
	wp_enqueue_script( 'molam-checkout', MOLAM_FORM_URL . 'assets/js/checkout.js', array( 'jquery' ), MOLAM_FORM_VERSION, true );
} );
