import Foundation
import MolamCrypto
import MolamSQLite

/// A plugin that is not the fixture: another name, other owned tables, written at test time.
/// `acme-pay` owns `acme_payments` (and from 1.1.0 `acme_refunds`); the site also has tables the
/// plugin does not own (`wp_posts`, `shop_settings`).
enum AcmePay {
    static let name = "acme-pay"

    enum Variant {
        case good            // migrations and smoke pass
        case failingMigration  // second pending migration fails after its first statement ran
        case failingSmoke    // migrations pass, smoke command exits 1
        case hangingSmoke    // smoke writes its pid to <site root>/smoke.pid and waits
    }

    static let migration1 = """
        CREATE TABLE acme_payments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            reference TEXT NOT NULL UNIQUE,
            amount INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
        );
        CREATE INDEX acme_payments_state ON acme_payments(state);

        """
    static let migration2Good = """
        ALTER TABLE acme_payments ADD COLUMN currency TEXT NOT NULL DEFAULT 'EUR';
        UPDATE acme_payments SET currency = 'XOF' WHERE amount > 10000;
        CREATE INDEX acme_payments_currency ON acme_payments(currency);

        """
    static let migration2Broken = """
        ALTER TABLE acme_payments ADD COLUMN currency TEXT NOT NULL DEFAULT 'EUR';
        UPDATE acme_payments SET curency = 'XOF' WHERE amount > 10000;

        """
    static let migration3 = """
        CREATE TABLE acme_refunds (id INTEGER PRIMARY KEY, payment_id INTEGER NOT NULL, amount INTEGER NOT NULL);
        INSERT INTO acme_refunds (payment_id, amount) SELECT id, amount / 10 FROM acme_payments WHERE state = 'paid';

        """

    /// Writes `<parent>/acme-pay/` for `version`; returns its path.
    @discardableResult
    static func write(version: String, variant: Variant = .good, into parent: String) throws -> String {
        let root = parent + "/" + name
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/src/Gateway", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/migrations", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/public/js", withIntermediateDirectories: true)
        func put(_ path: String, _ text: String, mode: Int = 0o644) throws {
            try text.write(toFile: root + "/" + path, atomically: false, encoding: .utf8)
            try fm.setAttributes([.posixPermissions: mode], ofItemAtPath: root + "/" + path)
        }
        let newer = version != "1.0.0" && version != "0.9.0"
        var tables = ["acme_payments"]
        if newer { tables.append("acme_refunds") }
        let manifest: [String: Any] = [
            "name": name, "version": version, "tables": tables, "migrations": "migrations",
            "smoke": [
                ["type": "command", "run": ["bin/smoke"], "timeout_s": 20] as [String: Any],
                ["type": "sql", "query": "SELECT count(*) FROM acme_payments"],
            ],
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
        try put("molam-plugin.json", String(decoding: data, as: UTF8.self))
        try put("acme-pay.php", "<?php\n/* Plugin Name: Acme Pay\n   Version: \(version) */\nrequire __DIR__ . '/src/Gateway/Gateway.php';\n")
        try put("src/Gateway/Gateway.php", "<?php\nfinal class AcmeGateway { const VERSION = '\(version)'; }\n")
        try put("public/js/pay.js", "// acme pay \(version)\nexport const version = '\(version)';\n")
        try put("public/js/legacy-\(version).js", "// only in \(version)\n")
        try put("migrations/0001_payments.sql", migration1)
        if newer {
            try put("migrations/0002_currency.sql", variant == .failingMigration ? migration2Broken : migration2Good)
            try put("migrations/0003_refunds.sql", migration3)
        }
        let smoke: String
        switch variant {
        case .good, .failingMigration:
            smoke = """
                #!/bin/sh
                grep -q "Version: $MOLAM_PLUGIN_VERSION" "$MOLAM_PLUGIN_DIR/acme-pay.php" || exit 3
                echo "acme smoke ok $MOLAM_PLUGIN_VERSION"

                """
        case .failingSmoke:
            smoke = "#!/bin/sh\necho 'acme: gateway refused a test charge' >&2\nexit 1\n"
        case .hangingSmoke:
            // The agent gives a smoke command only its own variables: the marker is found from the
            // plugin directory (<site root>/wp-content/plugins/acme-pay).
            smoke = """
                #!/bin/sh
                marker="$MOLAM_PLUGIN_DIR/../../../smoke.pid"
                echo $$ > "$marker.tmp" && mv "$marker.tmp" "$marker"
                exec sleep 600

                """
        }
        try put("bin/smoke", smoke, mode: 0o755)
        return root
    }

    /// A site with acme-pay 1.0.0 installed, its table filled, and tables it does not own.
    static func site() throws -> TestSite {
        let site = try TestSite(pluginName: name)
        try write(version: "1.0.0", into: site.root + "/wp-content/plugins")
        let db = try SQLiteConnection(path: site.databasePath, mode: .readWriteCreate)
        try db.executeScript(migration1)
        try db.executeScript("""
            CREATE TABLE wp_posts (ID INTEGER PRIMARY KEY, post_title TEXT, post_type TEXT);
            INSERT INTO wp_posts VALUES (1, 'Hello', 'post'), (2, 'Order 17', 'shop_order');
            CREATE TABLE shop_settings (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
            INSERT INTO shop_settings VALUES ('currency', 'XOF'), ('country', 'SN');
            INSERT INTO acme_payments (reference, amount, state) VALUES
                ('P-1', 5000, 'paid'), ('P-2', 25000, 'paid'), ('P-3', 700, 'pending'), ('P-4', 12000, 'failed');
            DELETE FROM acme_payments WHERE reference = 'P-3';
            INSERT INTO acme_payments (reference, amount, state) VALUES ('P-5', 99000, 'paid');
            CREATE TABLE molam_schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL);
            """)
        try db.run(
            "INSERT INTO molam_schema_migrations VALUES (1, 'payments', ?, '2026-01-02T03:04:05Z')",
            [.text(try SHA256.hexDigest(of: Data(migration1.utf8)))])
        return site
    }

    /// Builds a release of acme-pay `version` in the site's release folder.
    static func release(
        _ site: TestSite, version: String, variant: Variant = .good, format: ReleaseFormat
    ) throws -> (path: String, sha256: String) {
        let parent = site.root + "/build-\(UUID().uuidString)"
        let tree = try write(version: version, variant: variant, into: parent)
        return try site.release(from: tree, format: format)
    }
}
