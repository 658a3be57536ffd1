-- Where the order came from; releases with this migration write 'rest' (older rows: 'web').
ALTER TABLE `{prefix}molam_orders` ADD COLUMN channel VARCHAR(16) NOT NULL DEFAULT 'web' AFTER currency;
