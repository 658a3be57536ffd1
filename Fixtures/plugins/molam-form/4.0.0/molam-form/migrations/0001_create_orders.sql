-- molam-form 0001: the orders Molam has seen for this shop.
CREATE TABLE wp_molam_orders (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_ref    TEXT    NOT NULL UNIQUE,
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
    status       TEXT    NOT NULL DEFAULT 'pending',
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at   TEXT
);

CREATE INDEX wp_molam_orders_status ON wp_molam_orders (status);

-- Stamp every change of status or amount (webhooks update rows in place).
CREATE TRIGGER wp_molam_orders_touch
AFTER UPDATE OF status, amount_minor ON wp_molam_orders
FOR EACH ROW
BEGIN
    UPDATE wp_molam_orders
       SET updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
     WHERE id = NEW.id;
END;
