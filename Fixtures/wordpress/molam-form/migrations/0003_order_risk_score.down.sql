ALTER TABLE `{prefix}molam_orders` DROP INDEX molam_orders_reference, DROP COLUMN risk_score;
