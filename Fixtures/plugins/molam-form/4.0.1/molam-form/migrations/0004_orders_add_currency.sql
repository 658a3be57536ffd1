-- molam-form 0004: orders carry their currency (4.0.0 is multi-currency).
ALTER TABLE wp_molam_orders ADD COLUMN currency TEXT NOT NULL DEFAULT 'XOF';

-- Orders taken before 4.0.0 were in the shop's currency; leave alone any that already have one.
UPDATE wp_molam_orders
   SET currency = COALESCE((SELECT value FROM wp_molam_settings WHERE key = 'store_currency'), 'XOF')
 WHERE curency IS NULL OR curency = '';

CREATE INDEX wp_molam_orders_currency_status ON wp_molam_orders (currency, status);
