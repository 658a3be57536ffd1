-- Undo 0004 (SQLite >= 3.35 for DROP COLUMN; the index must go first).
DROP INDEX wp_molam_orders_currency_status;
ALTER TABLE wp_molam_orders DROP COLUMN currency;
