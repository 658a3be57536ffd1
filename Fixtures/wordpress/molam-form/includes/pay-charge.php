<?php
/**
 * The payment path of molam-form, loaded lazily by molam_form_pay(). Its function is named after
 * the release, as generated code often is, so it only fits the main file of the same release.
 */

defined( 'ABSPATH' ) || exit;

/**
 * Records one order; returns its id (0 on failure), or 0 without writing on a dry run.
 */
function molam_charge_0_0_0( $amount, $currency, $reference, $dry_run ) {
	global $wpdb;
	if ( $dry_run ) {
		return 0;
	}
	$table = molam_form_orders_table();
	$row   = array(
		'reference'      => $reference,
		'amount'         => $amount,
		'currency'       => $currency,
		'plugin_version' => MOLAM_FORM_VERSION,
	);
	if ( false === $wpdb->insert( $table, $row, array( '%s', '%d', '%s', '%s' ) ) ) {
		// The table is created on activation; a site that skipped it gets it now.
		molam_form_install();
		if ( false === $wpdb->insert( $table, $row, array( '%s', '%d', '%s', '%s' ) ) ) {
			return 0;
		}
	}
	return (int) $wpdb->insert_id;
}
