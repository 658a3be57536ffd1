-- molam-form 0002: plugin settings that must not live in wp_options (rotated secrets, cursors).
CREATE TABLE wp_molam_settings (
    key   TEXT PRIMARY KEY,
    value TEXT
);

INSERT INTO wp_molam_settings (key, value) VALUES ('store_currency', 'XOF');
INSERT INTO wp_molam_settings (key, value) VALUES ('webhook_cursor', '');
