/* Molam Form 4.0.1 – checkout helpers. */
( function ( $ ) {
	'use strict';

	// Customers type numbers as "77 123 45 67", "77-123-45-67" or "+225 07 12 34 56 78".
	var PHONE = /^\+?[0-9]{8,15}$/;

	function normalise( value ) {
		return $.trim( value ).replace( /[\s.-]/g, '' );
	}
	var settings = window.molamCheckout || { currency: 'XOF' };

	// Wave only operates in XOF countries; hide it elsewhere.
	function filterOperators() {
		$( '#molam-operator option[value="wave"]' ).prop( 'disabled', settings.currency !== 'XOF' );
	}

	function togglePhone() {
		var isCard = $( '#molam-operator' ).val() === 'card';
		$( '#molam-phone' ).closest( 'label, input' ).toggle( ! isCard );
	}

	$( document.body ).on( 'change', '#molam-operator', togglePhone );
	$( document.body ).on( 'updated_checkout', function () {
		filterOperators();
		togglePhone();
	} );

	$( document.body ).on( 'checkout_place_order_molam', function () {
		var $phone = $( '#molam-phone' );
		if ( $( '#molam-operator' ).val() === 'card' ) {
			return true;
		}
		var ok = PHONE.test( normalise( $phone.val() ) );
		$phone.toggleClass( 'molam-invalid', ! ok );
		return ok;
	} );
} )( jQuery );
