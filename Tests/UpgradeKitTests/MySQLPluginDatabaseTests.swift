import Foundation
import MolamMySQL
import Testing
import TestSupport
@testable import UpgradeKit

/// The MySQL engine on a real MariaDB server the tests start themselves (`MariaDBTestServer`): the
/// migration ledger, the dump, the grants, read-only smoke queries, and DESIGN.md's "Rows": shadows,
/// change capture and the rename cut-over, with a writer inserting orders throughout.
@Suite("MySQL plugin database", .serialized)
struct MySQLPluginDatabaseTests {
    static let orders = "shop7_molam_orders"

    /// A fresh database with the plugin's orders table (shop prefix `shop7_`), a WordPress core table
    /// and `rows` orders; the engine on it, as root.
    struct Site {
        let server: MariaDBTestServer
        let name: String
        let admin: MySQLConnection
        let location: MySQLLocation

        init(rows: Int = 20, hint: String = "site") throws {
            server = try MariaDBTestServer.shared()
            name = server.uniqueDatabaseName(hint)
            admin = try MySQLConnection(MySQLEndpoint(socket: server.socketPath, user: "root", database: "mysql"))
            try admin.execute("CREATE DATABASE \(MySQLConnection.quoteIdentifier(name)) CHARACTER SET utf8mb4")
            try admin.execute("USE \(MySQLConnection.quoteIdentifier(name))")
            try admin.execute("""
                CREATE TABLE \(MySQLPluginDatabaseTests.orders)(
                    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    order_ref VARCHAR(64) NOT NULL UNIQUE,
                    amount_minor BIGINT NOT NULL,
                    note TEXT NULL,
                    payload VARBINARY(64) NULL,
                    status VARCHAR(16) NOT NULL DEFAULT 'paid'
                ) ENGINE=InnoDB
                """)
            try admin.execute("CREATE TABLE shop7_users(ID BIGINT PRIMARY KEY, user_login VARCHAR(60)) ENGINE=InnoDB")
            try admin.execute("INSERT INTO shop7_users VALUES (1, 'admin')")
            for number in 0..<rows {
                try admin.execute(
                    "INSERT INTO \(MySQLPluginDatabaseTests.orders)(order_ref, amount_minor, note, payload) VALUES (?, ?, ?, ?)",
                    [.text("seed-\(number)"), .int(Int64(number)), .text("line 1\nit's \"quoted\" \\ 🎉"),
                     .bytes([0, 1, 0x0A, 0x27, 0xFF])])
            }
            location = MySQLLocation(
                user: "root", host: "localhost", port: nil, socket: server.socketPath, database: name,
                charset: nil, credentials: .none)
        }

        func open() throws -> MySQLPluginDatabase { try MySQLPluginDatabase(location: location) }

        /// A new account given exactly what `molam-upgrade grants` prints for `tables`, and the location
        /// that connects as it (its password in a 0600 file); `dropAccount` removes both.
        func confinedAccount(tables: [String]) throws -> (name: String, location: MySQLLocation) {
            let account = "molam_\(UInt32.random(in: 0...UInt32.max))"
            try admin.execute("CREATE USER '\(account)'@'localhost' IDENTIFIED BY 'pw-\(account)'")
            for statement in MySQLGrants.statements(account: "'\(account)'@'localhost'", database: name, tables: tables) {
                try admin.execute(String(statement.dropLast()))
            }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("molam-\(account)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let passwordFile = directory + "/password"
            _ = FileManager.default.createFile(
                atPath: passwordFile, contents: Data("pw-\(account)\n".utf8), attributes: [.posixPermissions: 0o600])
            var confined = location
            confined.user = account
            confined.credentials = .passwordFile(passwordFile)
            return (account, confined)
        }

        func dropAccount(_ account: String) {
            _ = try? admin.execute("DROP USER '\(account)'@'localhost'")
            try? FileManager.default.removeItem(
                atPath: FileManager.default.temporaryDirectory.appendingPathComponent("molam-\(account)").path)
        }

        func count(_ sql: String) throws -> Int64 { try admin.query(sql).first?[0].intValue ?? -1 }

        func tables() throws -> [String] {
            try admin.query("SHOW TABLES").compactMap { $0[0].stringValue }.sorted()
        }

        func columns(_ table: String) throws -> [String] {
            try admin.query("""
                SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?
                ORDER BY ordinal_position
                """, [.text(table)]).compactMap { $0[0].stringValue }
        }

        func triggers() throws -> [String] {
            try admin.query("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()")
                .compactMap { $0[0].stringValue }.sorted()
        }

        func drop() { _ = try? admin.execute("DROP DATABASE IF EXISTS \(MySQLConnection.quoteIdentifier(name))") }
    }

    /// Inserts an order every millisecond or so on its own connection until stopped; remembers every
    /// insert the server acknowledged.
    final class OrderWriter: @unchecked Sendable {
        private let lock = NSCondition()
        private var acknowledged: [String] = []
        private var failures: [String] = []
        private var stopped = false

        init(endpoint: MySQLEndpoint) {
            Thread { [self] in
                guard let connection = try? MySQLConnection(endpoint) else {
                    fail("cannot connect")
                    return
                }
                var number = 0
                while !lock.withLock({ stopped }) {
                    number += 1
                    let reference = "live-\(number)"
                    do {
                        try connection.execute(
                            "INSERT INTO \(MySQLPluginDatabaseTests.orders)(order_ref, amount_minor) VALUES (?, ?)",
                            [.text(reference), .int(Int64(number))])
                        lock.withLock { acknowledged.append(reference); lock.broadcast() }
                    } catch {
                        fail("\(error)")
                    }
                    usleep(1000)
                }
            }.start()
        }

        private func fail(_ error: String) { lock.withLock { failures.append(error); lock.broadcast() } }

        func waitForMore(_ count: Int) -> Bool {
            lock.withLock {
                let target = acknowledged.count + count
                let deadline = Date().addingTimeInterval(20)
                while acknowledged.count < target && failures.isEmpty {
                    if !lock.wait(until: deadline) { return false }
                }
                return failures.isEmpty
            }
        }

        func stop() -> (acknowledged: [String], failures: [String]) {
            lock.withLock {
                stopped = true
                return (acknowledged, failures)
            }
        }
    }

    static func migration(_ version: Int, _ name: String, _ sql: String, down: String? = nil) -> Migration {
        Migration(version: version, name: name, sql: sql, downSQL: down,
                  checksum: String(repeating: "\(version % 10)", count: 64), file: "/r/migrations/000\(version)_\(name).sql")
    }

    @Test("migrations are applied once, ledgered, and a changed one is refused")
    func ledger() throws {
        let site = try Site()
        defer { site.drop() }
        let database = try site.open()
        let first = Self.migration(1, "add_currency", "ALTER TABLE \(Self.orders) ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'XOF'; CREATE TABLE shop7_molam_refunds(id INT PRIMARY KEY)")
        #expect(try database.pendingMigrations([first]).count == 1)
        try database.applyMigrations([first], now: Date())
        #expect(try database.pendingMigrations([first]).isEmpty)
        #expect(try site.columns(Self.orders).contains("currency"))
        #expect(try database.appliedMigrations().map(\.version) == [1])
        let changed = Migration(version: 1, name: "add_currency", sql: "SELECT 1", checksum: String(repeating: "f", count: 64), file: first.file)
        #expect(throws: PluginDatabaseError.self) { try database.pendingMigrations([changed]) }

        // A failing statement names the migration and which statement, and the ledger keeps only what stuck.
        let broken = Self.migration(2, "broken", "ALTER TABLE \(Self.orders) ADD COLUMN x INT; INSERT INTO no_such_table VALUES (1)")
        let error = #expect(throws: PluginDatabaseError.self) { try database.applyMigrations([broken], now: Date()) }
        #expect("\(error!)".contains("0002_broken.sql"))
        #expect("\(error!)".contains("statement 2"))
        #expect(try database.appliedMigrations().map(\.version) == [1])
    }

    @Test("a failed upgrade's rollback keeps every order written meanwhile, and puts the schema back")
    func shadowRollbackKeepsOrders() throws {
        let site = try Site(rows: 12_000, hint: "rows")
        defer { site.drop() }
        let database = try site.open()
        let before = try site.columns(Self.orders)
        let writer = OrderWriter(endpoint: MySQLEndpoint(socket: site.server.socketPath, user: "root", database: site.name))
        #expect(writer.waitForMore(20))
        let summary = try database.prepareShadows([Self.orders, "shop7_molam_refunds", TableOwnership.ledgerTable])
        #expect(summary.tables == [Self.orders])
        #expect(summary.rows >= 12_000)
        #expect(writer.waitForMore(20))
        // The release: a new column live code fills, a new table, and an old column gone.
        try database.applyMigrations([Self.migration(1, "v2", """
            ALTER TABLE \(Self.orders) ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'XOF', DROP COLUMN note;
            CREATE TABLE shop7_molam_refunds(id INT AUTO_INCREMENT PRIMARY KEY, amount BIGINT);
            UPDATE \(Self.orders) SET status = 'migrated' WHERE id <= 10
            """)], now: Date())
        try site.admin.execute("INSERT INTO shop7_molam_refunds(amount) VALUES (5)")
        #expect(writer.waitForMore(30))
        try site.admin.execute("UPDATE \(Self.orders) SET amount_minor = 777 WHERE order_ref = 'seed-3'")
        try site.admin.execute("DELETE FROM \(Self.orders) WHERE order_ref = 'seed-4'")

        let merged = try database.prepareShadowRestore(mayTouch: { _ in true })
        #expect(writer.waitForMore(20))
        let restored = try database.restoreShadows(alsoDrop: ["shop7_molam_refunds"], mayTouch: { _ in true })
        #expect(writer.waitForMore(20))
        try database.dropRetiredTables()
        let (acknowledged, failures) = writer.stop()

        #expect(failures.isEmpty, "the shop's writes failed: \(failures.prefix(3))")
        #expect(merged.merged + restored.merged > 0)
        #expect(restored.restored.contains(Self.orders))
        #expect(restored.dropped == ["shop7_molam_refunds"])
        #expect(try site.columns(Self.orders) == before)
        let present = Set(try site.admin.query("SELECT order_ref FROM \(Self.orders)").compactMap { $0[0].stringValue })
        let lost = acknowledged.filter { !present.contains($0) }
        #expect(lost.isEmpty, "\(lost.count) of \(acknowledged.count) orders lost")
        #expect(try site.count("SELECT amount_minor FROM \(Self.orders) WHERE order_ref = 'seed-3'") == 777)
        #expect(try site.count("SELECT count(*) FROM \(Self.orders) WHERE order_ref = 'seed-4'") == 0)
        // The migration's own update is the release's, not live traffic: it went with the schema, but
        // on seed-3, which live traffic changed after it, the live row's columns won.
        #expect(try site.count("SELECT count(*) FROM \(Self.orders) WHERE status = 'migrated'") == 1)
        #expect(try site.count("SELECT count(*) FROM \(Self.orders) WHERE status = 'migrated' AND order_ref = 'seed-3'") == 1)
        // A column the release dropped keeps its old value on a row changed meanwhile.
        #expect(try site.count("SELECT count(*) FROM \(Self.orders) WHERE note LIKE 'line 1%'") == 11_999)
        #expect(try site.count("SELECT count(*) FROM _molam_quarantine_shop7_molam_refunds") == 1)
        let leftovers = try site.tables().filter { $0.hasPrefix("_molam_") && !$0.hasPrefix("_molam_quarantine_") }
        #expect(leftovers.isEmpty)
        #expect(try site.triggers().isEmpty)
        #expect(try !database.hasShadows())
        // The id counter never hands out an id the shop already used.
        let highest = try site.count("SELECT max(id) FROM \(Self.orders)")
        try site.admin.execute("INSERT INTO \(Self.orders)(order_ref, amount_minor) VALUES ('after', 1)")
        #expect(try site.count("SELECT id FROM \(Self.orders) WHERE order_ref = 'after'") > highest)
    }

    @Test("a restore run again after a crash that followed its rename finishes the job, losing nothing")
    func restoreAfterCrashPastRename() throws {
        let site = try Site(rows: 5, hint: "crash")
        defer { site.drop() }
        let database = try site.open()
        _ = try database.prepareShadows([Self.orders])
        try database.applyMigrations([Self.migration(1, "col", "ALTER TABLE \(Self.orders) ADD COLUMN c INT")], now: Date())
        try site.admin.execute("INSERT INTO \(Self.orders)(order_ref, amount_minor) VALUES ('before-crash', 1)")
        _ = try database.prepareShadowRestore(mayTouch: { _ in true })
        // What the cut-over's rename did before the agent died, and a shop write on the old table
        // that came in between.
        try site.admin.execute("INSERT INTO \(Self.orders)(order_ref, amount_minor) VALUES ('late', 2)")
        try site.admin.execute("""
            RENAME TABLE \(Self.orders) TO _molam_retired_\(Self.orders), _molam_shadow_\(Self.orders) TO \(Self.orders)
            """)
        let again = try MySQLPluginDatabase(location: site.location)
        _ = try again.restoreShadows(alsoDrop: [], mayTouch: { _ in true })
        try again.dropRetiredTables()
        #expect(try !site.columns(Self.orders).contains("c"))
        #expect(try site.count("SELECT count(*) FROM \(Self.orders) WHERE order_ref IN ('before-crash', 'late')") == 2)
        #expect(try site.tables().filter { $0.hasPrefix("_molam_") }.isEmpty)
        #expect(try site.triggers().isEmpty)
    }

    @Test("a row the old schema cannot take is quarantined, never dropped")
    func quarantine() throws {
        let site = try Site(rows: 5, hint: "quarantine")
        defer { site.drop() }
        let database = try site.open()
        _ = try database.prepareShadows([Self.orders])
        try database.applyMigrations([Self.migration(1, "wide", "ALTER TABLE \(Self.orders) MODIFY order_ref VARCHAR(200) NOT NULL")], now: Date())
        try site.admin.execute("INSERT INTO \(Self.orders)(order_ref, amount_minor) VALUES (?, 1)", [.text(String(repeating: "r" as String, count: 150))])
        try site.admin.execute("INSERT INTO \(Self.orders)(order_ref, amount_minor) VALUES ('short', 2)")
        let summary = try database.restoreShadows(alsoDrop: [], mayTouch: { _ in true })
        #expect(summary.quarantined[Self.orders] == 1)
        #expect(try site.count("SELECT count(*) FROM \(Self.orders) WHERE order_ref = 'short'") == 1)
        #expect(try site.count("SELECT count(*) FROM _molam_quarantine_\(Self.orders)") == 1)
        let kept = try site.admin.query("SELECT `row` FROM _molam_quarantine_\(Self.orders)").first?[0].stringValue ?? ""
        #expect(kept.contains(String(repeating: "r" as String, count: 150)))
    }

    @Test("the dump round-trips every value and a tampered one is refused")
    func dump() throws {
        let site = try Site(rows: 3, hint: "dump")
        defer { site.drop() }
        let database = try site.open()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("molam-dump-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/tables.sql"
        let original = try site.admin.query("SELECT id, order_ref, note, HEX(payload) FROM \(Self.orders) ORDER BY id").map { $0.values }
        let summary = try database.backupTables([Self.orders, "shop7_molam_gone"], to: file)
        #expect(summary.tables == [Self.orders: 3])
        #expect(summary.missing == ["shop7_molam_gone"])
        #expect(try database.verifyTableBackup(at: file) == summary)
        #expect(throws: PluginDatabaseError.self) { try database.backupTables([Self.orders], to: file) }

        try site.admin.execute("DELETE FROM \(Self.orders)")
        try site.admin.execute("CREATE TABLE shop7_molam_gone(id INT PRIMARY KEY)")
        try site.admin.execute("INSERT INTO \(Self.orders)(order_ref, amount_minor) VALUES ('written-since', 9)")
        let kept = try database.quarantineRowsSince(backup: file, tables: [Self.orders], keep: true)
        #expect(kept == [Self.orders: 1])
        let restored = try database.restoreTables(from: file, alsoDrop: [], mayTouch: { $0 != "shop7_users" })
        #expect(restored.restored == [Self.orders])
        #expect(restored.dropped == ["shop7_molam_gone"])
        let back = try site.admin.query("SELECT id, order_ref, note, HEX(payload) FROM \(Self.orders) ORDER BY id").map { $0.values }
        #expect(back == original)
        #expect(try site.count("SELECT count(*) FROM _molam_quarantine_\(Self.orders)") == 1)

        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes.removeLast(20)
        try bytes.write(to: URL(fileURLWithPath: file))
        #expect(throws: PluginDatabaseError.self) { try database.verifyTableBackup(at: file) }
    }

    @Test("only an account whose grants stop at the plugin's tables may migrate, and the server enforces it")
    func grants() throws {
        let site = try Site(rows: 1, hint: "grants")
        defer { site.drop() }
        let root = try site.open()
        let confinement = MigrationConfinement(plugin: "molam-form", owned: [Self.orders], creatable: ["shop7_molam_refunds"])
        #expect(try root.confinementProblem(confinement) != nil)
        var allowed = confinement
        allowed.allowWideGrants = true
        #expect(try root.confinementProblem(allowed) == nil)

        let (account, location) = try site.confinedAccount(tables: [Self.orders, "shop7_molam_refunds"])
        defer { site.dropAccount(account) }
        let confined = try MySQLPluginDatabase(location: location)
        #expect(try confined.confinementProblem(confinement) == nil)
        try confined.applyMigrations([Self.migration(1, "ok", "CREATE TABLE shop7_molam_refunds(id INT PRIMARY KEY); ALTER TABLE \(Self.orders) ADD COLUMN c INT")],
                                     now: Date(), confinement: confinement)
        let error = #expect(throws: PluginDatabaseError.self) {
            try confined.applyMigrations([Self.migration(2, "evil", "UPDATE shop7_users SET user_login = 'owned'")], now: Date(), confinement: confinement)
        }
        #expect("\(error!)".contains("0002_evil.sql"))
        #expect(try site.admin.query("SELECT user_login FROM shop7_users").first?[0].stringValue == "admin")
        #expect(!"\(error!)".contains("pw-\(account)"))
        // Shadows, capture and the rename work under the confined account too.
        _ = try confined.prepareShadows([Self.orders, "shop7_molam_refunds"])
        _ = try confined.restoreShadows(alsoDrop: [], mayTouch: { _ in true })
        try confined.dropRetiredTables()
        #expect(try !confined.hasShadows())
    }

    @Test("roles it may take, column grants and routines running as another account make an account too wide")
    func grantsBeyondTheAccount() throws {
        let site = try Site(rows: 1, hint: "widen")
        defer { site.drop() }
        let confinement = MigrationConfinement(plugin: "molam-form", owned: [Self.orders], creatable: [])
        let (account, location) = try site.confinedAccount(tables: [Self.orders])
        defer { site.dropAccount(account) }
        let grantee = "'\(account)'@'localhost'"
        // Each connection reads the grants as they are when it asks.
        let problem = { () throws -> String? in try MySQLPluginDatabase(location: location).confinementProblem(confinement) }
        #expect(try problem() == nil)

        // A role, even one holding nothing itself: a role granted to it may hold anything.
        let outer = "\(account)_outer", wide = "\(account)_wide"
        try site.admin.execute("CREATE ROLE \(wide)")
        defer { _ = try? site.admin.execute("DROP ROLE \(wide)") }
        try site.admin.execute("GRANT ALL ON \(MySQLPluginDatabase.quote(site.name)).* TO \(wide)")
        try site.admin.execute("CREATE ROLE \(outer)")
        defer { _ = try? site.admin.execute("DROP ROLE \(outer)") }
        try site.admin.execute("GRANT \(wide) TO \(outer)")
        try site.admin.execute("GRANT \(outer) TO \(grantee)")
        #expect(try problem()?.contains("may take the role") == true)
        try site.admin.execute("REVOKE \(outer) FROM \(grantee)")
        #expect(try problem() == nil)

        // A column of a core table.
        try site.admin.execute("GRANT UPDATE (user_login) ON \(MySQLPluginDatabase.quote(site.name)).shop7_users TO \(grantee)")
        #expect(try problem()?.contains("on the column user_login of \(site.name).shop7_users") == true)
        try site.admin.execute("REVOKE UPDATE (user_login) ON \(MySQLPluginDatabase.quote(site.name)).shop7_users FROM \(grantee)")
        #expect(try problem() == nil)

        // A procedure that runs as its definer (the administrator here) and writes a core table.
        let procedure = "\(MySQLPluginDatabase.quote(site.name)).molam_touch_users"
        try site.admin.execute("CREATE PROCEDURE \(procedure)() SQL SECURITY DEFINER UPDATE shop7_users SET user_login = user_login")
        try site.admin.execute("GRANT EXECUTE ON PROCEDURE \(procedure) TO \(grantee)")
        #expect(try problem()?.contains("may run \(site.name).molam_touch_users, which runs with the rights of") == true)
        try site.admin.execute("ALTER PROCEDURE \(procedure) SQL SECURITY INVOKER")
        #expect(try problem() == nil)

        // Grants to PUBLIC (every account) are not in the views the account can read: the server,
        // asked to prepare a write, says it would take it.
        let db = MySQLPluginDatabase.quote(site.name)
        try site.admin.execute("GRANT DELETE ON \(db).shop7_users TO PUBLIC")
        #expect(try problem()?.contains("may write \(site.name).shop7_users") == true)
        try site.admin.execute("REVOKE DELETE ON \(db).shop7_users FROM PUBLIC")
        try site.admin.execute("GRANT CREATE ON \(db).* TO PUBLIC")
        #expect(try problem()?.contains("may create any table in \(site.name)") == true)
        try site.admin.execute("REVOKE CREATE ON \(db).* FROM PUBLIC")
        #expect(try problem() == nil)
        #expect(try site.count("SELECT count(*) FROM shop7_users") == 1)
    }

    @Test("smoke queries are read-only, answer rows, and stop in time")
    func smoke() throws {
        let site = try Site(rows: 4, hint: "smoke")
        defer { site.drop() }
        let database = try site.open()
        #expect(try database.smokeQuery("SELECT count(*) FROM \(Self.orders)", timeoutSeconds: 5) == "4")
        #expect(throws: PluginDatabaseError.self) { try database.smokeQuery("DELETE FROM shop7_users", timeoutSeconds: 5) }
        #expect(throws: PluginDatabaseError.self) { try database.smokeQuery("DROP TABLE shop7_users", timeoutSeconds: 5) }
        #expect(throws: PluginDatabaseError.self) {
            try database.smokeQuery("SELECT * FROM shop7_users INTO OUTFILE '/tmp/molam-smoke-\(UUID())'", timeoutSeconds: 5)
        }
        let error = #expect(throws: PluginDatabaseError.self) { try database.smokeQuery("SELECT SLEEP(5)", timeoutSeconds: 0.3) }
        if case .timeout? = error {} else { Issue.record("expected a timeout, got \(String(describing: error))") }
        #expect(try site.count("SELECT count(*) FROM shop7_users") == 1)
    }

    @Test("down migrations revert newest first and take their ledger rows; a dry run's scratch copy goes away")
    func revertAndScratch() throws {
        let site = try Site(rows: 2, hint: "revert")
        defer { site.drop() }
        let database = try site.open()
        let one = Self.migration(1, "a", "ALTER TABLE \(Self.orders) ADD COLUMN a INT", down: "ALTER TABLE \(Self.orders) DROP COLUMN a")
        let two = Self.migration(2, "b", "CREATE TABLE shop7_molam_b(id INT PRIMARY KEY)", down: "DROP TABLE shop7_molam_b")
        try database.applyMigrations([one, two], now: Date())
        try database.revertMigrations([two, one], confinement: nil)
        #expect(try database.appliedMigrations().isEmpty)
        #expect(try !site.columns(Self.orders).contains("a"))
        #expect(try !site.tables().contains("shop7_molam_b"))

        var scratchName = ""
        do {
            let scratch = try database.scratchCopy(of: [Self.orders], in: "/nonexistent")
            guard case .mysql(let location) = scratch.location else { Issue.record("not MySQL"); return }
            scratchName = location.database
            try scratch.applyMigrations([one], now: Date())
            #expect(try scratch.existingTables().contains(Self.orders))
        }
        #expect(try !site.columns(Self.orders).contains("a"))
        #expect(try site.admin.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = ?", [.text(scratchName)]).isEmpty)
    }
}
