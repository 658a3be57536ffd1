-- Fixture site database: "Boutique Teranga", a small WooCommerce shop in Dakar (amounts in XOF,
-- which has no minor unit) running molam-form 3.9.0 on SQLite.
--   sqlite3 site.db < site.sql
-- The plugin-owned tables are exactly what 3.9.0's migrations 0001 and 0002 create (their text is
-- copied below byte for byte), and molam_schema_migrations records both with the SHA-256 of those
-- files. If you edit either migration, regenerate the checksums here (sha256sum) or every upgrade
-- test will stop with "checksum changed".
PRAGMA foreign_keys = OFF;
BEGIN;

-- WordPress core (the columns these fixtures need; WordPress itself has more).
CREATE TABLE wp_options (
    option_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    option_name  TEXT NOT NULL UNIQUE,
    option_value TEXT NOT NULL,
    autoload     TEXT NOT NULL DEFAULT 'yes'
);

INSERT INTO wp_options (option_name, option_value, autoload) VALUES
    ('siteurl', 'http://127.0.0.1:8080', 'yes'),
    ('home', 'http://127.0.0.1:8080', 'yes'),
    ('blogname', 'Boutique Teranga', 'yes'),
    ('blogdescription', 'Tissus wax, épices et artisanat de Dakar', 'yes'),
    ('admin_email', 'awa.ndiaye@boutique-teranga.example', 'yes'),
    ('active_plugins', 'a:2:{i:0;s:27:"woocommerce/woocommerce.php";i:1;s:25:"molam-form/molam-form.php";}', 'yes'),
    ('woocommerce_currency', 'XOF', 'yes'),
    ('woocommerce_default_country', 'SN:DK', 'yes'),
    ('molam_form_version', '3.9.0', 'yes');

CREATE TABLE wp_posts (
    ID            INTEGER PRIMARY KEY AUTOINCREMENT,
    post_author   INTEGER NOT NULL DEFAULT 0,
    post_date_gmt TEXT    NOT NULL,
    post_content  TEXT    NOT NULL DEFAULT '',
    post_title    TEXT    NOT NULL,
    post_status   TEXT    NOT NULL DEFAULT 'publish',
    post_name     TEXT    NOT NULL DEFAULT '',
    post_parent   INTEGER NOT NULL DEFAULT 0,
    post_type     TEXT    NOT NULL DEFAULT 'post'
);

CREATE INDEX wp_posts_type_status_date ON wp_posts (post_type, post_status, post_date_gmt, ID);

INSERT INTO wp_posts (ID, post_author, post_date_gmt, post_content, post_title, post_status, post_name, post_type) VALUES
    (1, 1, '2023-02-27T10:00:00Z', 'Bienvenue chez Boutique Teranga.', 'Bonjour tout le monde', 'publish', 'bonjour', 'post'),
    (2, 1, '2023-02-27T10:05:00Z', '[woocommerce_checkout]', 'Commande', 'publish', 'commande', 'page'),
    (3, 1, '2023-02-27T10:05:00Z', '', 'Boutique', 'publish', 'boutique', 'page'),
    (14, 1, '2023-03-04T09:30:00Z', 'Six yards de wax 100 % coton, imprimé Vlisco.', 'Wax hollandais – 6 yards', 'publish', 'wax-hollandais-6-yards', 'product'),
    (15, 1, '2023-03-04T09:42:00Z', 'Riz brisé, tomate, poisson séché, légumes : tout pour 6 personnes.', 'Kit thiéboudienne', 'publish', 'kit-thieboudienne', 'product'),
    (16, 1, '2023-04-11T16:20:00Z', 'Panier tressé en feuilles de rônier, fait main à Thiès.', 'Panier de Thiès', 'publish', 'panier-de-thies', 'product'),
    (1063, 0, '2024-12-23T18:49:23Z', '', 'Order &ndash; 23 décembre 2024 @ 18:49', 'wc-completed', 'order-dec-23-2024', 'shop_order'),
    (1066, 0, '2025-01-06T14:57:49Z', '', 'Order &ndash; 6 janvier 2025 @ 14:57', 'wc-on-hold', 'order-jan-06-2025', 'shop_order');

-- molam-form 0001_create_orders.sql (applied 2023-03-02 by 3.2.0)
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

-- molam-form 0002_create_settings.sql (applied 2023-03-02 by 3.2.0)
-- molam-form 0002: plugin settings that must not live in wp_options (rotated secrets, cursors).
CREATE TABLE wp_molam_settings (
    key   TEXT PRIMARY KEY,
    value TEXT
);

INSERT INTO wp_molam_settings (key, value) VALUES ('store_currency', 'XOF');
INSERT INTO wp_molam_settings (key, value) VALUES ('webhook_cursor', '');

-- Plugin data.
INSERT INTO wp_molam_orders (order_ref, amount_minor, status, created_at, updated_at) VALUES
    ('WC-1042', 12500, 'paid', '2024-11-02T09:14:27Z', '2024-11-02T09:15:03Z'),
    ('WC-1043', 45000, 'paid', '2024-11-02T11:40:51Z', '2024-11-02T11:41:30Z'),
    ('WC-1044', 8000, 'failed', '2024-11-03T16:05:12Z', '2024-11-03T16:07:44Z'),
    ('WC-1045', 8000, 'paid', '2024-11-03T16:09:38Z', '2024-11-03T16:10:02Z'),
    ('WC-1047', 175000, 'paid', '2024-11-06T10:22:19Z', '2024-11-06T10:23:11Z'),
    ('WC-1048', 3500, 'cancelled', '2024-11-08T19:48:00Z', '2024-11-09T19:48:05Z'),
    ('WC-1049', 62500, 'paid', '2024-11-12T08:31:45Z', '2024-11-12T08:32:20Z'),
    ('WC-1051', 22000, 'paid', '2024-11-15T13:02:09Z', '2024-11-15T13:02:51Z'),
    ('WC-1052', 9900, 'failed', '2024-11-18T21:17:33Z', '2024-11-18T21:19:58Z'),
    ('WC-1053', 30000, 'paid', '2024-11-22T07:55:14Z', '2024-11-22T07:55:49Z'),
    ('WC-1055', 120000, 'paid', '2024-11-29T12:10:41Z', '2024-11-29T12:11:37Z'),
    ('WC-1056', 15000, 'paid', '2024-12-02T09:44:02Z', '2024-12-02T09:44:40Z'),
    ('WC-1058', 47500, 'paid', '2024-12-07T17:26:58Z', '2024-12-07T17:27:31Z'),
    ('WC-1059', 5000, 'failed', '2024-12-11T10:03:27Z', '2024-12-11T10:05:12Z'),
    ('WC-1060', 85000, 'paid', '2024-12-16T15:38:10Z', '2024-12-16T15:38:55Z'),
    ('WC-1062', 18500, 'paid', '2024-12-20T11:12:06Z', '2024-12-20T11:12:44Z'),
    ('WC-1063', 250000, 'paid', '2024-12-23T18:49:23Z', '2024-12-23T18:50:18Z'),
    ('WC-1064', 7500, 'cancelled', '2024-12-27T08:20:31Z', '2024-12-28T08:20:36Z'),
    ('WC-1066', 36000, 'pending', '2025-01-06T14:57:49Z', NULL),
    ('WC-1067', 11000, 'pending', '2025-01-06T15:03:12Z', NULL);

UPDATE wp_molam_settings SET value = 'evt_01JGZ4W9Q8RZ5K3V7X2M6N1B0C' WHERE key = 'webhook_cursor';
INSERT INTO wp_molam_settings (key, value) VALUES
    ('merchant_id', 'mrc_SN_teranga_0427'),
    ('country', 'SN'),
    ('last_reconciled_at', '2025-01-06T00:00:04Z');

-- Migration bookkeeping, as molam-upgrade keeps it (the migrations themselves never create it).
CREATE TABLE molam_schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

INSERT INTO molam_schema_migrations (version, name, checksum, applied_at) VALUES
    (1, 'create_orders', '7753db59481dae9d8e49e6327f54bfd8fd41c848ec755676af01fcea99a7833f', '2023-03-02T14:21:07Z'),
    (2, 'create_settings', '76d0c04a34f47103cc5abc5d6b99c4597fc931deeb3306753f228276a6374fba', '2023-03-02T14:21:07Z');

COMMIT;
