-- The gateway's risk score of the payment, and an index to find an order by its reference.
ALTER TABLE `{prefix}molam_orders`
	ADD COLUMN risk_score SMALLINT UNSIGNED NOT NULL DEFAULT 0 AFTER channel,
	ADD INDEX molam_orders_reference (reference);
