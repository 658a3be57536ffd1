-- The orders table, as molam_form_install() creates it on activation (so IF NOT EXISTS: a shop
-- that activated the plugin before the agent first ran has it already).
CREATE TABLE IF NOT EXISTS `{prefix}molam_orders` (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	reference VARCHAR(64) NOT NULL,
	amount INT UNSIGNED NOT NULL,
	currency CHAR(3) NOT NULL,
	plugin_version VARCHAR(32) NOT NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
