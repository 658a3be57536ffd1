<?php
/**
 * Receives Molam payment notifications at /wp-json/molam/v1/webhook.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

class Molam_Webhooks {

	/** Seconds a signed notification stays valid. */
	const TOLERANCE = 300;

	public static function init() {
		add_action( 'rest_api_init', array( __CLASS__, 'register_routes' ) );
	}

	public static function register_routes() {
		register_rest_route(
			'molam/v1',
			'/webhook',
			array(
				'methods'             => 'POST',
				'callback'            => array( __CLASS__, 'handle' ),
				'permission_callback' => '__return_true',
			)
		);
	}

	public static function handle( WP_REST_Request $request ) {
		if ( ! self::signature_is_valid( $request ) ) {
			return new WP_REST_Response( array( 'error' => 'bad signature' ), 401 );
		}

		$event = $request->get_json_params();
		switch ( $event['type'] ?? '' ) {
			case 'payment.succeeded':
				self::update_order( $event['data']['reference'], 'paid' );
				break;
			case 'payment.failed':
				self::update_order( $event['data']['reference'], 'failed' );
				break;
			case 'refund.succeeded':
			case 'refund.failed':
				self::update_refund( $event['data']['id'], 'refund.succeeded' === $event['type'] ? 'succeeded' : 'failed' );
				break;
			default:
				return new WP_REST_Response( array( 'ignored' => true ), 200 );
		}
		return new WP_REST_Response( array( 'ok' => true ), 200 );
	}

	protected static function update_order( $reference, $status ) {
		global $wpdb;
		$wpdb->update( $wpdb->prefix . 'molam_orders', array( 'status' => $status ), array( 'order_ref' => $reference ) );

		$order = wc_get_order( (int) substr( $reference, 3 ) );
		if ( ! $order ) {
			return;
		}
		if ( 'paid' === $status ) {
			$order->payment_complete();
		} else {
			$order->update_status( 'failed', __( 'Molam reported the payment as failed.', 'molam-form' ) );
		}
	}

	protected static function update_refund( $refund_ref, $status ) {
		global $wpdb;
		$wpdb->update( $wpdb->prefix . 'molam_refunds', array( 'status' => $status ), array( 'refund_ref' => $refund_ref ) );
	}

	protected static function signature_is_valid( WP_REST_Request $request ) {
		$settings  = get_option( 'woocommerce_molam_settings', array() );
		$secret    = $settings['webhook_secret'] ?? '';
		$timestamp = (int) $request->get_header( 'x-molam-timestamp' );
		$signature = (string) $request->get_header( 'x-molam-signature' );

		if ( '' === $secret || abs( time() - $timestamp ) > self::TOLERANCE ) {
			return false;
		}
		$expected = hash_hmac( 'sha256', $timestamp . '.' . $request->get_body(), $secret );
		return hash_equals( $expected, $signature );
	}
}
