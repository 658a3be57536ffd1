import Foundation
import MolamCrypto
import MolamSQLite
import Testing
import UpgradeKit

/// A WordPress-like site database: two tables the plugin owns (one AUTOINCREMENT with an index
/// and a trigger that writes into wp_options, one WITHOUT ROWID) and two it does not.
private struct SiteFixture {
    let dir: SQLiteScratchDirectory
    let path: String
    static let owned = ["wp_molam_orders", "wp_molam_settings", "molam_schema_migrations"]

    init() throws {
        dir = try SQLiteScratchDirectory()
        path = dir.file("site.db")
        let db = try SQLiteConnection(path: path)
        try db.executeScript("""
            CREATE TABLE wp_posts(ID INTEGER PRIMARY KEY AUTOINCREMENT, post_title TEXT);
            CREATE TABLE wp_options(option_name TEXT PRIMARY KEY, option_value INTEGER);
            CREATE TABLE wp_molam_orders(
                id INTEGER PRIMARY KEY AUTOINCREMENT, ref TEXT NOT NULL, amount INTEGER, status TEXT
            );
            CREATE INDEX wp_molam_orders_ref ON wp_molam_orders(ref);
            CREATE TRIGGER wp_molam_orders_count AFTER INSERT ON wp_molam_orders BEGIN
                UPDATE wp_options SET option_value = option_value + 1 WHERE option_name = 'molam_orders';
            END;
            CREATE TABLE wp_molam_settings(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
            INSERT INTO wp_posts(post_title) VALUES ('Hello world'), ('Shop');
            INSERT INTO wp_options VALUES ('siteurl', 0), ('molam_orders', 0);
            INSERT INTO wp_molam_orders(ref, amount, status) VALUES ('a', 100, 'paid'), ('b', 250, 'paid'),
                ('c', 75, 'refunded'), ('d', 1, 'void');
            DELETE FROM wp_molam_orders WHERE ref IN ('b', 'd');
            INSERT INTO wp_molam_settings VALUES ('schema', '1'), ('mode', 'live');
            """)
    }

    func connection() throws -> SQLiteConnection { try SQLiteConnection(path: path, mode: .readWrite) }

    func sha256() throws -> String { try SHA256.hexDigest(of: Data(contentsOf: URL(fileURLWithPath: path))) }

    /// What `sqlite3 site.db .dump` says about the owned tables: schema rows, every row with its
    /// rowid, and their sqlite_sequence entries.
    func dumpOwned() throws -> [String] {
        let db = try connection()
        let names = Self.owned.map { "'\($0)'" }.joined(separator: ", ")
        var lines = try db.query("""
            SELECT type, name, tbl_name, sql FROM sqlite_schema
            WHERE tbl_name IN (\(names)) ORDER BY type, name
            """).map { $0.values.map(\.description).joined(separator: " | ") }
        let present = "SELECT 1 FROM sqlite_schema WHERE name = ?"
        for table in Self.owned where try db.scalar(present, [.text(table)]) != nil {
            let order = table == "wp_molam_settings" ? "SELECT * FROM \(table) ORDER BY k"
                : "SELECT rowid, * FROM \(table) ORDER BY rowid"
            lines += try db.query(order).map {
                "\(table): " + $0.values.map(\.description).joined(separator: ", ")
            }
        }
        lines += try db.query("SELECT name, seq FROM sqlite_sequence WHERE name IN (\(names)) ORDER BY name")
            .map { "seq: \($0[0]) \($0[1])" }
        return lines
    }

    func writeMigration(
        _ file: String, _ sql: String, in directory: String = "migrations"
    ) throws -> String {
        let folder = dir.file(directory)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data(sql.utf8).write(to: URL(fileURLWithPath: folder + "/" + file))
        return folder
    }
}

@Suite struct PluginDatabaseTests {
    private let upgrade = """
        ALTER TABLE wp_molam_orders ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE wp_molam_refunds(id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, amount INTEGER);
        CREATE INDEX wp_molam_refunds_order ON wp_molam_refunds(order_id);
        INSERT INTO wp_molam_orders(ref, amount, status) VALUES ('e', 9, 'paid');
        UPDATE wp_molam_orders SET status = 'migrated' WHERE ref = 'a';
        """
    private let settings = """
        CREATE UNIQUE INDEX wp_molam_settings_v ON wp_molam_settings(v);
        UPDATE wp_molam_settings SET v = '2' WHERE k = 'schema';
        INSERT INTO wp_molam_settings VALUES ('webhook', 'on');
        """

    @Test("backup, migrate, restore: owned tables dump as before and other tables keep their changes")
    func backupMigrateRestore() throws {
        let site = try SiteFixture()
        let before = try site.dumpOwned()
        let database = try SQLitePluginDatabase(path: site.path)
        let backupPath = site.dir.file("tables.db")
        let summary = try database.backupTables(SiteFixture.owned, to: backupPath)
        #expect(summary.tables == ["wp_molam_orders": 2, "wp_molam_settings": 2])
        #expect(summary.missing == ["molam_schema_migrations"])
        #expect(summary.bytes > 0)
        let attributes = try FileManager.default.attributesOfItem(atPath: backupPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try database.verifyTableBackup(at: backupPath) == summary)

        _ = try site.writeMigration("0001_add_refunds.sql", upgrade)
        let folder = try site.writeMigration("0002_settings_index.sql", settings)
        let migrations = try Migration.load(from: folder)
        var journaled: [Int] = []
        let epoch = Date(timeIntervalSince1970: 0)
        try database.applyMigrations(database.pendingMigrations(migrations), now: epoch, confinement: nil) {
            journaled.append($0.version)
        }
        #expect(journaled == [1, 2])
        let stamps = try database.appliedMigrations().map(\.appliedAt)
        #expect(stamps == ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"])
        #expect(try database.pendingMigrations(migrations).isEmpty)
        let site2 = try site.connection()
        try site2.run("INSERT INTO wp_posts(post_title) VALUES ('written during the upgrade')")
        #expect(try site.dumpOwned() != before)

        let restored = try database.restoreTables(from: backupPath, alsoDrop: ["wp_molam_refunds"])
        #expect(restored.restored == ["wp_molam_orders", "wp_molam_settings"])
        #expect(Set(restored.dropped) == ["molam_schema_migrations", "wp_molam_refunds"])
        #expect(try site.dumpOwned() == before)
        #expect(try database.existingTables() == ["wp_posts", "wp_options", "wp_molam_orders",
                                                  "wp_molam_settings", "sqlite_sequence"])
        #expect(try site2.scalar("SELECT count(*) FROM wp_posts") == .integer(3))
        // One order inserted by the migration fired the trigger; the restore's inserts did not.
        #expect(try site2.scalar("SELECT option_value FROM wp_options WHERE option_name = 'molam_orders'")
            == .integer(5))
        let sequence = "SELECT seq FROM sqlite_sequence WHERE name = 'wp_molam_orders'"
        #expect(try site2.scalar(sequence) == .integer(4))
        #expect(try site2.integrityCheck() == ["ok"])

        // A second restore finds everything as in the backup and writes nothing: the file keeps its bytes.
        let restoredBytes = try Data(contentsOf: URL(fileURLWithPath: database.path))
        let again = try database.restoreTables(from: backupPath, alsoDrop: ["wp_molam_refunds"])
        #expect(again.restored.isEmpty)
        #expect(again.dropped.isEmpty)
        #expect(try site.dumpOwned() == before)
        #expect(try Data(contentsOf: URL(fileURLWithPath: database.path)) == restoredBytes)
        // The old rows are back and the trigger works again for new ones.
        try site2.run("INSERT INTO wp_molam_orders(ref) VALUES ('f')")
        #expect(try site2.scalar("SELECT max(id) FROM wp_molam_orders") == .integer(5))
    }

    @Test("a migration failing on its second statement leaves the file unchanged and names file and line")
    func failedMigration() throws {
        let site = try SiteFixture()
        let hash = try site.sha256()
        _ = try site.writeMigration("0001_add_refunds.sql", upgrade)
        let folder = try site.writeMigration("0002_broken.sql", """
            -- first statement succeeds
            CREATE TABLE wp_molam_log(id INTEGER PRIMARY KEY);
            INSERT INTO wp_molam_missing VALUES (1);
            """)
        let database = try SQLitePluginDatabase(path: site.path)
        let error = #expect(throws: PluginDatabaseError.self) {
            try database.applyMigrations(try Migration.load(from: folder), now: Date())
        }
        guard case .migrationFailed(let migration, let line, let message)? = error else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(migration == "0002_broken.sql")
        #expect(line == 3)
        #expect(message.contains("no such table: wp_molam_missing"))
        let expected = "migration 0002_broken.sql failed at line 3: no such table"
        #expect(error?.description.hasPrefix(expected) == true)
        #expect(try site.sha256() == hash)
        #expect(try database.appliedMigrations().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: site.path + "-journal"))
    }

    @Test("nothing to do leaves the site file byte-identical, backup included")
    func noChanges() throws {
        let site = try SiteFixture()
        let hash = try site.sha256()
        let database = try SQLitePluginDatabase(path: site.path)
        try database.applyMigrations(database.pendingMigrations([]), now: Date())
        _ = try database.backupTables(SiteFixture.owned, to: site.dir.file("b.db"))
        #expect(try database.smokeQuery("SELECT count(*) FROM wp_molam_orders", timeoutSeconds: 5) == "2")
        #expect(try site.sha256() == hash)
    }

    @Test("an applied migration whose file changed is reported, not re-run")
    func checksumMismatch() throws {
        let site = try SiteFixture()
        let folder = try site.writeMigration("0001_add_refunds.sql", upgrade)
        let database = try SQLitePluginDatabase(path: site.path)
        try database.applyMigrations(try Migration.load(from: folder), now: Date())
        _ = try site.writeMigration("0001_add_refunds.sql", upgrade + "\n-- edited\n")
        let error = #expect(throws: PluginDatabaseError.self) {
            try database.pendingMigrations(try Migration.load(from: folder))
        }
        guard case .checksumMismatch(let version, let name, _)? = error else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(version == 1 && name == "add_refunds")
    }

    @Test("migration files are parsed, sorted and validated")
    func loadMigrations() throws {
        let site = try SiteFixture()
        #expect(try Migration.load(from: site.dir.file("none")).isEmpty)
        _ = try site.writeMigration("0010_later.sql", "SELECT 1;")
        _ = try site.writeMigration("0002_first.sql", "SELECT 2;")
        _ = try site.writeMigration("0002_first.down.sql", "SELECT 3;")
        let folder = try site.writeMigration("README.md", "not sql")
        let loaded = try Migration.load(from: folder)
        #expect(loaded.map(\.version) == [2, 10])
        #expect(loaded[0].name == "first" && loaded[0].downSQL == "SELECT 3;")
        #expect(loaded[0].checksum == (try SHA256.hexDigest(of: Data("SELECT 2;".utf8))))

        let bad = try site.writeMigration("2_Bad-Name.sql", "", in: "bad")
        #expect(throws: PluginDatabaseError.self) { try Migration.load(from: bad) }
        _ = try site.writeMigration("0001_a.sql", "", in: "dup")
        let dup = try site.writeMigration("0001_b.sql", "", in: "dup")
        let error = #expect(throws: PluginDatabaseError.self) { try Migration.load(from: dup) }
        guard case .duplicateMigrationVersion(1, let files)? = error else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(files.count == 2)
    }

    @Test("smoke queries read, refuse to write and time out")
    func smokeQueries() throws {
        let site = try SiteFixture()
        let database = try SQLitePluginDatabase(path: site.path)
        let status = "SELECT status FROM wp_molam_orders WHERE ref = 'a'"
        #expect(try database.smokeQuery(status, timeoutSeconds: 5) == "paid")
        #expect(try database.smokeQuery("SELECT NULL", timeoutSeconds: 5) == "NULL")
        #expect(try database.smokeQuery("SELECT 1 WHERE 0", timeoutSeconds: 5) == "NULL")
        #expect(throws: PluginDatabaseError.self) {
            try database.smokeQuery("DELETE FROM wp_posts", timeoutSeconds: 5)
        }
        #expect(try site.connection().scalar("SELECT count(*) FROM wp_posts") == .integer(2))
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            + "SELECT count(*) FROM c"
        let error = #expect(throws: PluginDatabaseError.self) {
            try database.smokeQuery(endless, timeoutSeconds: 0.1)
        }
        guard case .timeout(_, let seconds)? = error else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(seconds == 0.1)
    }

    @Test("a truncated, foreign or existing backup file is refused")
    func badBackups() throws {
        let site = try SiteFixture()
        let database = try SQLitePluginDatabase(path: site.path)
        // Enough rows for the backup to span many pages, so truncation cuts table data.
        try site.connection().execute("""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
            INSERT INTO wp_molam_orders(ref, amount) SELECT printf('r%05d', i), i FROM n;
            """)
        let backupPath = site.dir.file("tables.db")
        _ = try database.backupTables(SiteFixture.owned, to: backupPath)
        #expect(throws: PluginDatabaseError.self) {
            try database.backupTables(["wp_molam_orders"], to: backupPath)
        }

        let bytes = try Data(contentsOf: URL(fileURLWithPath: backupPath))
        let truncated = site.dir.file("truncated.db")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        #expect(throws: PluginDatabaseError.self) {
            try database.verifyTableBackup(at: truncated)
        }

        let garbage = site.dir.file("garbage.db")
        try Data(repeating: 0x5a, count: 8192).write(to: URL(fileURLWithPath: garbage))
        #expect(throws: PluginDatabaseError.self) { try database.verifyTableBackup(at: garbage) }
        #expect(throws: PluginDatabaseError.self) { try database.restoreTables(from: garbage) }
        #expect(throws: PluginDatabaseError.self) {
            try database.verifyTableBackup(at: site.dir.file("absent.db"))
        }
        #expect(throws: PluginDatabaseError.self) {
            try SQLitePluginDatabase(path: site.dir.file("absent.db"))
        }
        #expect(throws: PluginDatabaseError.self) {
            try database.backupTables([""], to: site.dir.file("x.db"))
        }
        #expect(!FileManager.default.fileExists(atPath: site.dir.file("x.db")))
    }
}
