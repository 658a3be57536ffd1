<?php
/**
 * Plugin Name: Molam Form
 * Plugin URI: https://molam.example/plugins/molam-form
 * Description: Molam payments for WordPress (molam-upgrade's live-payment test fixture).
 * Version: 0.0.0
 * Requires at least: 6.0
 * Requires PHP: 7.4
 * Author: Molam
 * License: GPL-2.0-or-later
 * Text Domain: molam-form
 */

defined( 'ABSPATH' ) || exit;

define( 'MOLAM_FORM_VERSION', '0.0.0' );

/* molam:eager */

/** The plugin's own table: `{$wpdb->prefix}molam_orders`. */
function molam_form_orders_table() {
	global $wpdb;
	return $wpdb->prefix . 'molam_orders';
}

/** Creates the orders table; run on activation and, lazily, before the first payment. */
function molam_form_install() {
	global $wpdb;
	$table = molam_form_orders_table();
	$wpdb->query(
		"CREATE TABLE IF NOT EXISTS `$table` (
			id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
			reference VARCHAR(64) NOT NULL,
			amount INT UNSIGNED NOT NULL,
			currency CHAR(3) NOT NULL,
			plugin_version VARCHAR(32) NOT NULL,
			created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
		) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
	);
	update_option( 'molam_form_version', MOLAM_FORM_VERSION, false );
}
register_activation_hook( __FILE__, 'molam_form_install' );

add_action(
	'rest_api_init',
	function () {
		register_rest_route(
			'molam/v1',
			'/pay',
			array(
				// POST takes a payment; GET is a dry run that loads and calls the same code without
				// writing, so that a smoke check can exercise the payment path.
				'methods'             => array( 'GET', 'POST' ),
				'callback'            => 'molam_form_pay',
				'permission_callback' => '__return_true',
			)
		);
		register_rest_route(
			'molam/v1',
			'/version',
			array(
				'methods'             => 'GET',
				'callback'            => 'molam_form_version',
				'permission_callback' => '__return_true',
			)
		);
	}
);

/** GET /molam/v1/version: the version of the code that answers. */
function molam_form_version() {
	return array( 'version' => MOLAM_FORM_VERSION );
}

/** POST /molam/v1/pay: records an order and acknowledges it with its id. */
function molam_form_pay( WP_REST_Request $request ) {
	// Loaded only when a payment comes in: a request that read this file from one release and
	// reads the payment code from another dies here with "Call to undefined function".
	require_once __DIR__ . '/includes/pay-charge.php';
	$dry_run  = 'GET' === $request->get_method();
	$amount   = absint( $request->get_param( 'amount' ) ?? 1000 );
	$currency = strtoupper( substr( sanitize_key( $request->get_param( 'currency' ) ?? 'xof' ), 0, 3 ) );
	$ref      = substr( sanitize_key( $request->get_param( 'reference' ) ?? '' ), 0, 64 );
	$order_id = molam_charge_0_0_0( $amount, $currency, $ref, $dry_run );
	if ( ! $order_id && ! $dry_run ) {
		return new WP_Error( 'molam_order_not_recorded', 'The order could not be recorded.', array( 'status' => 503 ) );
	}
	return array(
		'ok'       => true,
		'order_id' => $dry_run ? null : $order_id,
		'dry_run'  => $dry_run,
		'version'  => MOLAM_FORM_VERSION,
	);
}
