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
	$table   = molam_form_orders_table();
	$row     = array(
		'reference'      => $reference,
		'amount'         => $amount,
		'currency'       => $currency,
		'plugin_version' => MOLAM_FORM_VERSION,
	);
	$formats = array( '%s', '%d', '%s', '%s' );
	// The columns this release's migrations add (the release fills them in).
	$extra = array(); // molam:columns
	if ( $extra ) {
		$extra_formats = array_map(
			function ( $value ) {
				return is_int( $value ) ? '%d' : '%s';
			},
			array_values( $extra )
		);
		if ( false !== $wpdb->insert( $table, $row + $extra, array_merge( $formats, $extra_formats ) ) ) {
			return (int) $wpdb->insert_id;
		}
		// The code is swapped in before the agent runs the release's migrations, and a rollback
		// puts the old schema back around the old code: until both match, write the columns every
		// version of the table has.
	}
	if ( false === $wpdb->insert( $table, $row, $formats ) ) {
		// The table is created on activation; a site that skipped it gets it now.
		molam_form_install();
		if ( false === $wpdb->insert( $table, $row, $formats ) ) {
			return 0;
		}
	}
	return (int) $wpdb->insert_id;
}
