import Foundation
import MolamCrypto
import MolamMySQL
import TestSupport
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// A WooCommerce-like site on the private MariaDB server the tests start (`MariaDBTestServer`): its
/// own database with table prefix `shop9_`, WordPress core tables the plugin must never touch
/// (`shop9_users`, `shop9_options`), the plugin's `shop9_molam_orders` with `rows` orders, the
/// migration ledger holding the 1.0.0 migration, and molam-form 1.0.0 installed in a `TestSite`'s
/// plugin directory (whose state directory and release folder it uses too).
struct MySQLSiteError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

final class MySQLSite {
    static let prefix = "shop9_"
    static let orders = "shop9_molam_orders"
    static let plugin = "molam-form"

    /// The 1.0.0 migration, applied when the site is made (its ledger row carries the file's checksum).
    static let migration1 = """
        CREATE TABLE {prefix}molam_orders (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            order_ref VARCHAR(64) NOT NULL UNIQUE,
            amount_minor BIGINT NOT NULL,
            status VARCHAR(16) NOT NULL DEFAULT 'paid',
            KEY {prefix}molam_orders_status (status)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

        """

    let site: TestSite
    let server: MariaDBTestServer
    let database: String
    let admin: MySQLConnection
    private var accounts: [String] = []

    var pluginDirectory: String { site.pluginDirectory }
    var stateDirectory: String { site.stateDirectory }
    var rootDSN: String { "mysql://root@localhost/\(database)?socket=\(server.socketPath)" }

    /// The options naming this site, as root (`--db` with the root DSN) unless `database` says otherwise.
    func options(database: [String]? = nil) -> [String] {
        ["--plugin-dir", pluginDirectory, "--state-dir", stateDirectory]
            + (database ?? ["--db", rootDSN, "--table-prefix", Self.prefix])
    }

    init(hint: String, rows: Int = 40) throws {
        server = try MariaDBTestServer.shared()
        site = try TestSite(pluginName: Self.plugin)
        database = server.uniqueDatabaseName(hint)
        admin = try MySQLConnection(MySQLEndpoint(socket: server.socketPath, user: "root", database: "mysql"))
        try admin.execute("CREATE DATABASE \(MySQLConnection.quoteIdentifier(database)) CHARACTER SET utf8mb4")
        try admin.execute("USE \(MySQLConnection.quoteIdentifier(database))")
        try admin.executeScript(Self.migration1.replacing("{prefix}", with: Self.prefix))
        try admin.executeScript("""
            CREATE TABLE shop9_users (
                ID BIGINT UNSIGNED PRIMARY KEY, user_login VARCHAR(60), user_pass VARCHAR(255)) ENGINE=InnoDB;
            INSERT INTO shop9_users VALUES (1, 'admin', '$P$Bsecret');
            CREATE TABLE shop9_options (option_name VARCHAR(191) PRIMARY KEY, option_value LONGTEXT) ENGINE=InnoDB;
            INSERT INTO shop9_options VALUES ('siteurl', 'https://shop9.example'), ('woocommerce_currency', 'XOF');
            CREATE TABLE molam_schema_migrations (
                version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, checksum CHAR(64) NOT NULL,
                applied_at VARCHAR(32) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
            """)
        try admin.execute(
            "INSERT INTO molam_schema_migrations VALUES (1, 'orders', ?, '2026-01-02T03:04:05Z')",
            [.text(try SHA256.hexDigest(of: Data(Self.migration1.utf8)))])
        for number in 0..<rows {
            try admin.execute(
                "INSERT INTO shop9_molam_orders(order_ref, amount_minor) VALUES (?, ?)",
                [.text("seed-\(number)"), .int(Int64(100 * number))])
        }
        try MySQLPlugin.write(version: "1.0.0", into: site.root + "/wp-content/plugins")
    }

    deinit {
        _ = try? admin.execute("DROP DATABASE IF EXISTS \(MySQLConnection.quoteIdentifier(database))")
        for account in accounts { _ = try? admin.execute("DROP USER IF EXISTS \(account)") }
        admin.close()
    }

    // MARK: Running the binary

    func run(_ arguments: [String], database: [String]? = nil) throws -> ProcessResult {
        try runTool(arguments + options(database: database))
    }

    func upgrade(
        _ release: (path: String, sha256: String), extra: [String] = [], database: [String]? = nil
    ) throws -> ProcessResult {
        try run(["upgrade", "--archive", release.path, "--sha256", release.sha256] + extra, database: database)
    }

    /// Builds molam-form `version` (see `MySQLPlugin.write`) and packs it in the site's release folder.
    func release(
        _ version: String, migrations: [String: String] = [:], smoke: [[String: Any]] = [],
        smokeScript: String? = nil
    ) throws -> (path: String, sha256: String) {
        let parent = site.root + "/build-\(UUID().uuidString)"
        let tree = try MySQLPlugin.write(
            version: version, migrations: migrations, smoke: smoke, smokeScript: smokeScript, into: parent)
        return try site.release(from: tree, format: .tarGz)
    }

    // MARK: Accounts

    /// Creates `'name'@'localhost'` with `password` and the grants `molam-upgrade grants` prints for
    /// the plugin's tables: reads everywhere in the site's database, writes on its own tables only.
    func confinedAccount(password: String, tables: [String] = [MySQLSite.orders]) throws -> String {
        let name = "molam_\(UInt32.random(in: 0...UInt32.max))"
        let account = "'\(name)'@'localhost'"
        try admin.execute("CREATE USER \(account) IDENTIFIED BY \(admin.quote(password))")
        accounts.append(account)
        // As an administrator would: what `molam-upgrade grants` prints, run as root.
        let extra = tables.filter { $0 != Self.orders }
        let printed = try run(["grants", "--account", account] + (extra.isEmpty ? [] : ["--tables", extra.joined(separator: ",")]))
        guard printed.status == 0 else { throw MySQLSiteError("grants exited \(printed.status): \(printed.stderr)") }
        let statements = printed.stdout.split(separator: "\n").filter { $0.hasPrefix("GRANT ") }
        guard statements.count > 3 else { throw MySQLSiteError("grants printed: \(printed.stdout)") }
        for statement in statements { try admin.execute(String(statement.dropLast())) }
        return name
    }

    /// A wp-config.php as WordPress writes it: the confined account, DB_HOST with the socket form.
    func writeWordPressConfig(user: String, password: String) throws -> String {
        let path = site.root + "/wp-config.php"
        try """
            <?php
            /** The name of the database for WordPress */
            define( 'DB_NAME', '\(database)' );
            define( 'DB_USER', '\(user)' );
            define( 'DB_PASSWORD', '\(password)' );
            define( 'DB_HOST', 'localhost:\(server.socketPath)' );
            define( 'DB_CHARSET', 'utf8mb4' );
            define( 'DB_COLLATE', '' );
            define( 'AUTH_KEY', 'put your unique phrase here' );
            $table_prefix = 'shop9_';
            define( 'WP_DEBUG', false );
            if ( ! defined( 'ABSPATH' ) ) { define( 'ABSPATH', __DIR__ . '/' ); }
            require_once ABSPATH . 'wp-settings.php';

            """.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o640)
        return path
    }

    // MARK: What is in the database

    func scalar(_ sql: String) throws -> MySQLValue? { try admin.query(sql).first?[0] }

    func count(_ sql: String) throws -> Int64 { try scalar(sql)?.intValue ?? -1 }

    func showCreate(_ table: String) throws -> String {
        try admin.query("SHOW CREATE TABLE \(MySQLConnection.quoteIdentifier(table))").first?[1].stringValue ?? ""
    }

    func columns(_ table: String) throws -> [String] {
        try admin.query("""
            SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?
            ORDER BY ordinal_position
            """, [.text(table)]).compactMap { $0[0].stringValue }
    }

    func tables() throws -> [String] {
        try admin.query("SHOW TABLES").compactMap { $0[0].stringValue }.sorted()
    }

    /// The ledger's rows, "version name checksum applied_at".
    func ledger() throws -> [String] {
        try admin.query("SELECT version, name, checksum, applied_at FROM molam_schema_migrations ORDER BY version")
            .map { $0.values.map(\.description).joined(separator: " ") }
    }

    /// The agent's own tables and triggers still in the database (quarantine tables are the
    /// merchant's, kept on purpose, and not counted).
    func leftovers() throws -> [String] {
        let tables = try tables().filter { $0.hasPrefix("_molam_") && !$0.hasPrefix("_molam_quarantine_") }
        let triggers = try admin.query(
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
        ).compactMap { $0[0].stringValue }
        return tables + triggers.map { "trigger " + $0 }
    }

    /// Databases left by dry runs (`molam_scratch_<pid>_<n>`).
    func scratchDatabases() throws -> [String] {
        try admin.query(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'molam\\_scratch\\_%'")
            .compactMap { $0[0].stringValue }
    }

    /// Everything outside the plugin: the core tables' definitions and rows.
    func outside() throws -> String {
        var lines: [String] = []
        for table in ["shop9_users", "shop9_options"] {
            lines.append(try showCreate(table))
            for row in try admin.query("SELECT * FROM \(table) ORDER BY 1") {
                lines.append(row.values.map(\.description).joined(separator: "|"))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The order references present in the orders table.
    func orderReferences() throws -> Set<String> {
        Set(try admin.query("SELECT order_ref FROM shop9_molam_orders").compactMap { $0[0].stringValue })
    }

    /// The orders table's AUTO_INCREMENT counter.
    func autoIncrement() throws -> Int64 {
        try admin.query("""
            SELECT auto_increment FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?
            """, [.text(Self.orders)]).first?[0].intValue ?? -1
    }

    /// The schema and every row of the orders table and the ledger, plus the core tables: what must be
    /// identical after a failed upgrade's rollback when nothing else wrote. Not the AUTO_INCREMENT
    /// counter: a rollback moves it on (`MySQLPluginDatabase.lateWriteIDs`) so no id is handed out twice.
    func fingerprint() throws -> String {
        let create = try showCreate(Self.orders).replacing(#/ AUTO_INCREMENT=\d+/#, with: "")
        var lines = [create, try outside()] + (try ledger())
        for row in try admin.query("SELECT * FROM shop9_molam_orders ORDER BY id") {
            lines.append(row.values.map(\.description).joined(separator: "|"))
        }
        return lines.joined(separator: "\n")
    }

    /// The backup directories of the plugin (`<state>/backups/molam-form/<version>-<time>/`).
    func backupDirectories() throws -> [String] {
        let base = stateDirectory + "/backups/" + Self.plugin
        guard FileManager.default.fileExists(atPath: base) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: base).sorted().map { base + "/" + $0 }
    }

    /// Every regular file's bytes under `directory`, read with lstat.
    static func allBytes(under directory: String) -> [(path: String, data: Data)] {
        var found: [(String, Data)] = []
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let relative = enumerator?.nextObject() as? String {
            let path = directory + "/" + relative
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG,
               let data = FileManager.default.contents(atPath: path) {
                found.append((path, data))
            }
        }
        return found
    }
}

/// molam-form as a MySQL plugin: namespace `molam_`, owning `{prefix}molam_orders`, its 1.0.0
/// migration, the migrations a test gives, and smoke checks (by default a command checking the
/// installed version, and a read-only SQL count of the orders).
enum MySQLPlugin {
    static let defaultSmokeScript = """
        #!/bin/sh
        grep -q "Version: $MOLAM_PLUGIN_VERSION" "$MOLAM_PLUGIN_DIR/molam-form.php" || exit 3
        echo "molam smoke ok $MOLAM_PLUGIN_VERSION"

        """

    @discardableResult
    static func write(
        version: String, migrations: [String: String] = [:], smoke: [[String: Any]] = [],
        smokeScript: String? = nil, into parent: String
    ) throws -> String {
        let root = parent + "/" + MySQLSite.plugin
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/migrations", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        func put(_ path: String, _ text: String, mode: Int = 0o644) throws {
            try text.write(toFile: root + "/" + path, atomically: false, encoding: .utf8)
            try fm.setAttributes([.posixPermissions: mode], ofItemAtPath: root + "/" + path)
        }
        let checks: [[String: Any]] = [["type": "command", "run": ["bin/smoke"], "timeout_s": 20]]
            + (smoke.isEmpty ? [["type": "sql", "query": "SELECT count(*) FROM shop9_molam_orders"]] : smoke)
        let manifest: [String: Any] = [
            "name": MySQLSite.plugin, "version": version, "namespace": "molam_",
            "tables": ["{prefix}molam_orders"], "migrations": "migrations", "smoke": checks,
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
        try put("molam-plugin.json", String(decoding: data, as: UTF8.self))
        try put("molam-form.php", "<?php\n/* Plugin Name: Molam Form\n   Version: \(version) */\n")
        try put("bin/smoke", smokeScript ?? defaultSmokeScript, mode: 0o755)
        try put("migrations/0001_orders.sql", MySQLSite.migration1)
        for (name, sql) in migrations { try put("migrations/" + name, sql) }
        return root
    }
}

/// Inserts an order every millisecond or so into the orders table on its own connection until
/// stopped, as live payments would; remembers every insert the server acknowledged, in order.
final class MySQLOrderWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private var acknowledged: [String] = []
    private var failures: [String] = []
    private var stopped = false
    private var finished = false

    init(endpoint: MySQLEndpoint) {
        Thread { [self] in
            defer { condition.withLock { finished = true; condition.broadcast() } }
            guard let connection = try? MySQLConnection(endpoint) else {
                fail("cannot connect")
                return
            }
            var number = 0
            while !condition.withLock({ stopped }) {
                number += 1
                let reference = "live-\(number)"
                do {
                    try connection.execute(
                        "INSERT INTO shop9_molam_orders(order_ref, amount_minor) VALUES (?, ?)",
                        [.text(reference), .int(Int64(number))])
                    condition.withLock { acknowledged.append(reference); condition.broadcast() }
                } catch {
                    fail("\(error)")
                }
                usleep(1000)
            }
            connection.close()
        }.start()
    }

    private func fail(_ error: String) { condition.withLock { failures.append(error); condition.broadcast() } }

    var count: Int { condition.withLock { acknowledged.count } }

    /// Waits (20 s at most) until `more` further inserts were acknowledged; false on a failure or timeout.
    func waitForMore(_ more: Int) -> Bool {
        condition.withLock {
            let target = acknowledged.count + more
            let deadline = Date().addingTimeInterval(20)
            while acknowledged.count < target && failures.isEmpty {
                if !condition.wait(until: deadline) { return false }
            }
            return failures.isEmpty
        }
    }

    /// Stops the writer, waits for its thread to end, and returns what it saw.
    func stop() -> (acknowledged: [String], failures: [String]) {
        condition.withLock {
            stopped = true
            let deadline = Date().addingTimeInterval(20)
            while !finished { if !condition.wait(until: deadline) { break } }
            return (acknowledged, failures)
        }
    }
}
