ALTER TABLE `{prefix}molam_orders` DROP COLUMN channel;
