<?php
/**
 * Settings fields of the Molam gateway (WooCommerce > Settings > Payments > Molam).
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

function molam_form_settings_fields() {
	return array(
		'enabled'        => array(
			'title'   => __( 'Enable/Disable', 'molam-form' ),
			'type'    => 'checkbox',
			'label'   => __( 'Enable Molam payments', 'molam-form' ),
			'default' => 'no',
		),
		'title'          => array(
			'title'   => __( 'Title', 'molam-form' ),
			'type'    => 'text',
			'default' => __( 'Mobile money or card (Molam)', 'molam-form' ),
		),
		'description'    => array(
			'title'   => __( 'Description', 'molam-form' ),
			'type'    => 'textarea',
			'default' => __( 'Pay with Orange Money, Wave, MTN MoMo or a bank card.', 'molam-form' ),
		),
		'api_key'        => array(
			'title' => __( 'API key', 'molam-form' ),
			'type'  => 'password',
		),
		'webhook_secret' => array(
			'title' => __( 'Webhook secret', 'molam-form' ),
			'type'  => 'password',
		),
		'currency_note'  => array(
			'title'       => __( 'Currencies', 'molam-form' ),
			'type'        => 'title',
			'description' => __( 'Molam is offered at checkout when the shop currency is XOF, XAF, GHS, NGN or GNF.', 'molam-form' ),
		),
		'sandbox'        => array(
			'title'   => __( 'Sandbox', 'molam-form' ),
			'type'    => 'checkbox',
			'label'   => __( 'Use the Molam sandbox (no real money moves)', 'molam-form' ),
			'default' => 'yes',
		),
	);
}
