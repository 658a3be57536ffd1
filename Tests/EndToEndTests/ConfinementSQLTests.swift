import Foundation
import MolamSQLite
import Testing
import UpgradeKit

/// Releases that try to reach outside the plugin's tables, run through the built binary: each must
/// end with nothing outside the plugin changed and exactly one line on stderr.
@Suite("confinement of SQL: migrations, sql checks, manifests")
struct ConfinementSQLTests {
    /// The fixture site plus a `wp_users` table, so attacks on it have something to hit.
    static func site() throws -> TestSite {
        let site = try TestSite.molamForm()
        let db = try SQLiteConnection(path: site.databasePath, mode: .readWrite)
        try db.executeScript("""
            CREATE TABLE wp_users (ID INTEGER PRIMARY KEY, user_login TEXT, user_pass TEXT);
            INSERT INTO wp_users VALUES (1, 'admin', '$P$Bsecret');
            """)
        return site
    }

    /// molam-form 4.0.0 with extra files (path → text) and manifest edits, packed as a release.
    static func release(
        _ site: TestSite, files: [String: String] = [:], manifest edit: (inout [String: Any]) -> Void = { _ in }
    ) throws -> (path: String, sha256: String) {
        let parent = site.root + "/build-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let tree = parent + "/molam-form"
        try shell(["cp", "-a", TestSite.fixturePlugin("4.0.0"), tree])
        for (path, text) in files {
            let full = tree + "/" + path
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: false, encoding: .utf8)
        }
        let manifestPath = tree + "/" + PluginManifest.fileName
        var json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath)))
                as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: manifestPath))
        return try site.release(from: tree, format: .tarGz)
    }

    /// Migration attacks: the SQL of `0005_evil.sql`, and the table the one-line error must name.
    static let migrationAttacks: [(sql: String, named: String)] = [
        ("DELETE FROM wp_posts;", "wp_posts"),
        ("UPDATE wp_molam_orders SET status = status;\nDROP TABLE wp_options;", "wp_options"),
        ("UPDATE wp_users SET user_pass = 'pwned' WHERE ID = 1;", "wp_users"),
        ("""
         CREATE TRIGGER molam_evil AFTER UPDATE ON wp_posts
         BEGIN INSERT INTO wp_molam_refunds (order_id, refund_ref, amount_minor) VALUES (1, 'x', 1); END;
         """, "wp_posts"),
        ("""
         CREATE TRIGGER wp_molam_orders_evil AFTER UPDATE ON wp_molam_orders
         BEGIN DELETE FROM wp_posts; END;
         """, "wp_posts"),
        ("""
         PRAGMA writable_schema = 1;
         UPDATE sqlite_master SET sql = 'CREATE TABLE wp_users (ID)' WHERE name = 'wp_users';
         """, "writable_schema"),
        ("ATTACH DATABASE '/tmp/molam-evil-attach.db' AS evil;\nCREATE TABLE evil.t (x);", "ATTACH"),
        ("CREATE TABLE wp_molam_secret (x TEXT);", "wp_molam_secret"),
        ("ALTER TABLE wp_molam_refunds RENAME TO wp_evil_copy;", "wp_evil_copy"),
    ]

    @Test("A migration reaching outside the plugin's tables fails, is rolled back, and is named in one line",
          arguments: migrationAttacks.indices)
    func migrationAttack(index: Int) throws {
        let attack = Self.migrationAttacks[index]
        let site = try Self.site()
        let before = try site.snapshot()
        let release = try Self.release(site, files: ["migrations/0005_evil.sql": attack.sql])
        let result = try site.upgrade(release)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("0005_evil.sql") && result.stderr.contains("denied"), "\(result.stderr)")
        #expect(result.stderr.contains(attack.named), "\(result.stderr)")
        let after = try site.snapshot()
        #expect(after.tree == before.tree)
        #expect(after.databaseDump == before.databaseDump)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/molam-evil-attach.db"))
    }

    @Test("A dry run checks migrations under the same policy; check refuses a core claim; nothing changes")
    func dryRunAndCheck() throws {
        let site = try Self.site()
        let before = try site.snapshot()
        let evil = try Self.release(
            site, files: ["migrations/0005_evil.sql": "DELETE FROM wp_molam_orders;\nDROP TABLE wp_options;"])
        let dry = try site.upgrade(evil, extra: ["--dry-run"])
        #expect(dry.status != 0, "\(dry.stdout)")
        #expect(dry.stderrLines.count == 1)
        #expect(dry.stderr.contains("0005_evil.sql") && dry.stderr.contains("wp_options"), "\(dry.stderr)")
        let claim = try Self.release(site) { manifest in
            manifest["tables"] = (manifest["tables"] as? [String] ?? []) + ["wp_posts"]
        }
        let check = try site.run(["check", "--archive", claim.path, "--sha256", claim.sha256])
        #expect(check.status == 4, "\(check.stdout) \(check.stderr)")
        #expect((check.stdout + check.stderr).contains("wp_posts"))
        #expect(try site.snapshot() == before)
    }

    @Test("VACUUM INTO in a migration creates no file, and the run is rolled back")
    func vacuumIntoMigration() throws {
        let site = try Self.site()
        let before = try site.snapshot()
        let target = site.root + "/stolen.db"
        let release = try Self.release(site, files: ["migrations/0005_evil.sql": "VACUUM INTO '\(target)';"])
        let result = try site.upgrade(release)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("0005_evil.sql"))
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(try site.snapshot() == before)
    }

    @Test("An sql smoke check that writes or VACUUMs INTO a file fails the check and writes nothing",
          arguments: ["VACUUM INTO '{target}'", "DELETE FROM wp_posts", "UPDATE wp_molam_orders SET status = 'x'",
                      "PRAGMA journal_mode = OFF"])
    func smokeWrites(query: String) throws {
        let site = try Self.site()
        let before = try site.snapshot()
        let target = site.root + "/smoke-stolen.db"
        let release = try Self.release(site) { manifest in
            manifest["smoke"] = [["type": "sql", "query": query.replacing("{target}", with: target)]]
        }
        let result = try site.upgrade(release)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("denied"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(try site.snapshot().databaseDump == before.databaseDump)
        #expect(try site.snapshot().tree == before.tree)
    }

    @Test("A release claiming a core table, or a namespace covering them, is refused (exit 4) before any change",
          arguments: ["tables:wp_options", "tables:wp_users", "tables:wp_wc_orders", "tables:wp_other_plugin",
                      "tables:molam_schema_migrations", "namespace:wc_", "namespace:p"])
    func coreClaims(claim: String) throws {
        let site = try Self.site()
        let before = try site.snapshot()
        let parts = claim.split(separator: ":").map(String.init)
        let release = try Self.release(site) { manifest in
            if parts[0] == "tables" {
                manifest["tables"] = (manifest["tables"] as? [String] ?? []) + [parts[1]]
            } else {
                manifest["namespace"] = parts[1]
            }
        }
        let result = try site.upgrade(release)
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains(parts[1]), "\(result.stderr)")
        #expect(try site.snapshot() == before)
        #expect(!FileManager.default.fileExists(atPath: site.stateDirectory + "/backups/molam-form"))
    }

    @Test("rollback --to never drops a core table, even when the installed manifest claims it")
    func rollbackKeepsCoreTables() throws {
        let site = try Self.site()
        let good = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz)
        #expect(try site.upgrade(good).status == 0)
        // A bad manifest already installed (by hand, or by a release from before these checks).
        let manifestPath = site.pluginDirectory + "/" + PluginManifest.fileName
        let text = try String(contentsOfFile: manifestPath, encoding: .utf8)
        try text.replacing("\"wp_molam_refunds\"", with: "\"wp_molam_refunds\", \"wp_options\", \"wp_users\"")
            .write(toFile: manifestPath, atomically: false, encoding: .utf8)
        let options = try site.query("SELECT * FROM wp_options ORDER BY rowid").map(\.values)
        let result = try site.run(["rollback", "--to", "3.9.0"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try site.installedVersion() == "3.9.0")
        #expect(try site.query("SELECT * FROM wp_options ORDER BY rowid").map(\.values) == options)
        #expect(try site.query("SELECT user_pass FROM wp_users").first?["user_pass"].stringValue == "$P$Bsecret")
    }

    @Test("A site with table prefix shop7_: {prefix} tables upgrade; core claims and outside writes are refused")
    func otherPrefix() throws {
        let site = try TestSite(pluginName: "molam-form")
        let db = try SQLiteConnection(path: site.databasePath, mode: .readWriteCreate)
        try db.executeScript("""
            CREATE TABLE shop7_posts (ID INTEGER PRIMARY KEY, post_title TEXT);
            INSERT INTO shop7_posts VALUES (1, 'Hello');
            CREATE TABLE shop7_options (option_name TEXT PRIMARY KEY, option_value TEXT);
            INSERT INTO shop7_options VALUES ('siteurl', 'http://shop7');
            CREATE TABLE shop7_molam_orders (id INTEGER PRIMARY KEY, ref TEXT);
            INSERT INTO shop7_molam_orders VALUES (1, 'o-1');
            """)
        try Self.prefixedPlugin(version: "1.0.0", into: site.root + "/wp-content/plugins")
        let prefix = ["--table-prefix", "shop7_"]

        let bad = try Self.prefixedRelease(
            site, version: "1.1.0", tables: ["{prefix}molam_orders", "{prefix}options"])
        let refused = try site.upgrade(bad, extra: prefix)
        #expect(refused.status == 4, "\(refused.stderr)")
        #expect(refused.stderr.contains("shop7_options"), "\(refused.stderr)")

        let dumpBefore = try dump(site.databasePath)
        let evil = try Self.prefixedRelease(
            site, version: "1.1.0", tables: ["{prefix}molam_orders", "{prefix}molam_refunds"],
            migration: "CREATE TABLE shop7_molam_refunds (id INTEGER PRIMARY KEY);\nDELETE FROM shop7_posts;")
        let denied = try site.upgrade(evil, extra: prefix)
        #expect(denied.status == 1, "\(denied.stderr)")
        #expect(denied.stderrLines.count == 1)
        #expect(denied.stderr.contains("shop7_posts") && denied.stderr.contains("denied"), "\(denied.stderr)")
        #expect(try dump(site.databasePath) == dumpBefore)

        let good = try Self.prefixedRelease(
            site, version: "1.1.0", tables: ["{prefix}molam_orders", "{prefix}molam_refunds"],
            migration: "CREATE TABLE shop7_molam_refunds (id INTEGER PRIMARY KEY, order_id INTEGER);")
        let upgraded = try site.upgrade(good, extra: prefix)
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        #expect(try site.query("SELECT count(*) AS n FROM shop7_molam_refunds").first?["n"].intValue == 0)
        let rolledBack = try site.run(["rollback", "--to", "1.0.0", "--restore-tables"] + prefix)
        #expect(rolledBack.status == 0, "\(rolledBack.stderr)")
        #expect(try site.query("SELECT name FROM sqlite_schema WHERE name = 'shop7_molam_refunds'").isEmpty)
        #expect(try site.query("SELECT count(*) AS n FROM shop7_posts").first?["n"].intValue == 1)
    }

    /// A minimal plugin on a prefixed site: manifest with `{prefix}` tables, namespace molam_, no smoke.
    @discardableResult
    static func prefixedPlugin(
        version: String, tables: [String] = ["{prefix}molam_orders"], migration: String? = nil, into parent: String
    ) throws -> String {
        let root = parent + "/molam-form"
        try FileManager.default.createDirectory(atPath: root + "/migrations", withIntermediateDirectories: true)
        let manifest: [String: Any] = [
            "name": "molam-form", "version": version, "namespace": "molam_", "tables": tables,
            "migrations": "migrations",
        ]
        try JSONSerialization.data(withJSONObject: manifest).write(
            to: URL(fileURLWithPath: root + "/" + PluginManifest.fileName))
        try "<?php // \(version)\n".write(toFile: root + "/molam-form.php", atomically: false, encoding: .utf8)
        if let migration {
            try migration.write(toFile: root + "/migrations/0001_refunds.sql", atomically: false, encoding: .utf8)
        }
        return root
    }

    static func prefixedRelease(
        _ site: TestSite, version: String, tables: [String], migration: String? = nil
    ) throws -> (path: String, sha256: String) {
        let parent = site.root + "/build-\(UUID().uuidString)"
        let tree = try prefixedPlugin(version: version, tables: tables, migration: migration, into: parent)
        return try site.release(from: tree, format: .tarGz)
    }
}
