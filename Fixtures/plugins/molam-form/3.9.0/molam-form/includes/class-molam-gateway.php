<?php
/**
 * WooCommerce payment gateway for Molam.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

class Molam_Gateway extends WC_Payment_Gateway {

	const API_BASE         = 'https://api.molam.example/v1';
	const SANDBOX_API_BASE = 'https://sandbox.api.molam.example/v1';

	/** @var string */
	protected $api_key;

	/** @var bool */
	protected $sandbox;

	public function __construct() {
		$this->id                 = 'molam';
		$this->method_title       = __( 'Molam', 'molam-form' );
		$this->method_description = __( 'Mobile money and card payments through Molam.', 'molam-form' );
		$this->has_fields         = true;
		$this->supports           = array( 'products' );

		$this->init_form_fields();
		$this->init_settings();

		$this->title       = $this->get_option( 'title' );
		$this->description = $this->get_option( 'description' );
		$this->api_key     = $this->get_option( 'api_key' );
		$this->sandbox     = 'yes' === $this->get_option( 'sandbox' );

		add_action( 'woocommerce_update_options_payment_gateways_' . $this->id, array( $this, 'process_admin_options' ) );
	}

	public function init_form_fields() {
		$this->form_fields = molam_form_settings_fields();
	}

	public function payment_fields() {
		echo wpautop( wp_kses_post( $this->description ) );
		?>
		<fieldset id="molam-payment-fields">
			<label for="molam-operator"><?php esc_html_e( 'Pay with', 'molam-form' ); ?></label>
			<select id="molam-operator" name="molam_operator">
				<option value="orange_money">Orange Money</option>
				<option value="wave">Wave</option>
				<option value="mtn_momo">MTN MoMo</option>
				<option value="card"><?php esc_html_e( 'Bank card', 'molam-form' ); ?></option>
			</select>
			<label for="molam-phone"><?php esc_html_e( 'Mobile number', 'molam-form' ); ?></label>
			<input id="molam-phone" name="molam_phone" type="tel" autocomplete="tel" placeholder="+221 77 000 00 00" />
		</fieldset>
		<?php
	}

	public function process_payment( $order_id ) {
		global $wpdb;

		$order    = wc_get_order( $order_id );
		$operator = sanitize_text_field( wp_unslash( $_POST['molam_operator'] ?? 'card' ) );
		$phone    = sanitize_text_field( wp_unslash( $_POST['molam_phone'] ?? '' ) );

		$response = wp_remote_post(
			$this->api_base() . '/charges',
			array(
				'timeout' => 20,
				'headers' => array(
					'Authorization' => 'Bearer ' . $this->api_key,
					'Content-Type'  => 'application/json',
				),
				'body'    => wp_json_encode(
					array(
						'amount_minor' => (int) round( $order->get_total() ),
						'currency'     => 'XOF',
						'operator'     => $operator,
						'phone'        => $phone,
						'reference'    => 'WC-' . $order->get_order_number(),
						'return_url'   => $this->get_return_url( $order ),
					)
				),
			)
		);

		if ( is_wp_error( $response ) || 201 !== wp_remote_retrieve_response_code( $response ) ) {
			wc_add_notice( __( 'Molam could not start the payment. Please try again.', 'molam-form' ), 'error' );
			return array( 'result' => 'failure' );
		}

		$charge = json_decode( wp_remote_retrieve_body( $response ), true );

		$wpdb->insert(
			$wpdb->prefix . 'molam_orders',
			array(
				'order_ref'    => 'WC-' . $order->get_order_number(),
				'amount_minor' => (int) round( $order->get_total() ),
				'status'       => 'pending',
			)
		);

		$order->update_status( 'on-hold', __( 'Awaiting Molam payment confirmation.', 'molam-form' ) );

		return array(
			'result'   => 'success',
			'redirect' => $charge['checkout_url'],
		);
	}

	protected function api_base() {
		return $this->sandbox ? self::SANDBOX_API_BASE : self::API_BASE;
	}
}
