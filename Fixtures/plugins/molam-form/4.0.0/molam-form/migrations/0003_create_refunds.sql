-- molam-form 0003: refunds issued from the WooCommerce order screen (4.0.0).
-- order_id is wp_molam_orders.id. Like other WordPress plugins we declare no FOREIGN KEY:
-- the same schema has to work through dbDelta on MySQL.
CREATE TABLE wp_molam_refunds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id     INTEGER NOT NULL,
    refund_ref   TEXT    NOT NULL UNIQUE,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    reason       TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL DEFAULT 'pending',
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE INDEX wp_molam_refunds_order ON wp_molam_refunds (order_id);
