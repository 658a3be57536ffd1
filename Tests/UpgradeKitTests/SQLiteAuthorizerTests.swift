import Foundation
import MolamSQLite
import Testing

/// The access policy against real SQLite files: what a migration or a read-only check may do, and
/// that every refusal leaves the file as it was and names what was refused.
@Suite struct SQLiteAuthorizerTests {
    /// A site database with core tables, an owned table with AUTOINCREMENT, and an outside one.
    func site(_ dir: SQLiteScratchDirectory) throws -> SQLiteConnection {
        let db = try SQLiteConnection(path: dir.file("site.db"))
        try db.executeScript("""
            CREATE TABLE wp_posts (ID INTEGER PRIMARY KEY, post_title TEXT);
            INSERT INTO wp_posts VALUES (1, 'Hello'), (2, 'Order 17');
            CREATE TABLE wp_options (option_name TEXT PRIMARY KEY, option_value TEXT);
            INSERT INTO wp_options VALUES ('siteurl', 'http://shop');
            CREATE TABLE wp_core_seq (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
            INSERT INTO wp_core_seq (v) VALUES ('a'), ('b');
            CREATE TABLE wp_molam_orders (id INTEGER PRIMARY KEY AUTOINCREMENT, ref TEXT);
            INSERT INTO wp_molam_orders (ref) VALUES ('o-1');
            """)
        return db
    }

    let migration = SQLiteAccessPolicy(
        mode: .ownedWritesOnly, ownedTables: ["wp_molam_orders", "WP_MOLAM_NEW"], creatableTables: ["wp_molam_new"])

    func fileHash(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// Runs `sql` under the migration policy in a transaction, as migrations run; returns the
    /// denial, checking the file did not change.
    func denied(
        _ sql: String, policy: SQLiteAccessPolicy? = nil, inTransaction: Bool = true
    ) throws -> SQLiteDenial? {
        let dir = try SQLiteScratchDirectory()
        let db = try site(dir)
        let before = try fileHash(dir.file("site.db"))
        let error = #expect(throws: SQLiteError.self, "\(sql)") {
            let run = {
                try db.withAccessPolicy(policy ?? migration) { () throws(SQLiteError) in
                    try db.executeScript(sql)
                }
            }
            if inTransaction { try db.transaction(.immediate, run) } else { try run() }
        }
        #expect(try fileHash(dir.file("site.db")) == before, "\(sql) changed the file")
        return error?.denial
    }

    @Test("writes and DDL on tables outside the owned set are denied, naming the table")
    func outsideWritesDenied() throws {
        let cases: [(String, String, String)] = [
            ("DELETE FROM wp_posts", "DELETE FROM", "wp_posts"),
            ("UPDATE wp_options SET option_value = 'x'", "UPDATE", "wp_options"),
            ("INSERT INTO wp_posts VALUES (3, 'x')", "INSERT INTO", "wp_posts"),
            ("DROP TABLE wp_options", "DROP TABLE", "wp_options"),
            ("ALTER TABLE wp_posts ADD COLUMN evil TEXT", "ALTER TABLE", "wp_posts"),
            ("CREATE INDEX evil ON wp_posts(post_title)", "CREATE INDEX on", "wp_posts"),
            ("CREATE TRIGGER evil AFTER INSERT ON wp_posts BEGIN INSERT INTO wp_molam_orders(ref) VALUES ('x'); END",
             "CREATE TRIGGER on", "wp_posts"),
            ("CREATE TEMP TRIGGER evil AFTER DELETE ON wp_posts BEGIN SELECT 1; END",
             "CREATE TEMP TRIGGER on", "wp_posts"),
            ("CREATE VIEW wp_posts_view AS SELECT * FROM wp_posts", "CREATE VIEW", "wp_posts_view"),
            ("UPDATE sqlite_sequence SET seq = 100 WHERE name = 'wp_core_seq'", "UPDATE", "sqlite_sequence"),
            ("CREATE TABLE wp_other (x)", "CREATE TABLE", "wp_other"),
        ]
        for (sql, action, object) in cases {
            let denial = try denied(sql)
            #expect(denial?.action == action, "\(sql): \(String(describing: denial))")
            #expect(denial?.object == object, "\(sql)")
            #expect(denial?.reason == .notOwned, "\(sql)")
        }
    }

    @Test("an owned table the release did not declare may be changed but not created")
    func createOnlyDeclared() throws {
        let policy = SQLiteAccessPolicy(
            mode: .ownedWritesOnly, ownedTables: ["wp_molam_orders", "wp_molam_old"], creatableTables: [])
        let denial = try denied("CREATE TABLE wp_molam_old (x)", policy: policy)
        #expect(denial?.reason == .notDeclared)
        #expect(denial?.object == "wp_molam_old")
    }

    @Test("ATTACH, VACUUM, VACUUM INTO, writing pragmas, transactions and load_extension are denied")
    func forbiddenActions() throws {
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("molam-vac-\(UUID()).db").path
        let cases = [
            "ATTACH DATABASE '\(target)' AS evil", "VACUUM INTO '\(target)'", "VACUUM",
            "PRAGMA writable_schema = 1", "PRAGMA journal_mode = OFF", "PRAGMA user_version = 7",
            "PRAGMA main.foreign_keys = OFF", "PRAGMA optimize", "PRAGMA incremental_vacuum",
            "BEGIN", "COMMIT", "SAVEPOINT s", "SELECT load_extension('/tmp/evil.so')",
            "SELECT fts3_tokenizer('simple')",
        ]
        for sql in cases {
            // Outside a transaction too: inside one, SQLite itself refuses VACUUM before asking.
            for inTransaction in [true, false] {
                let denial = try denied(sql, inTransaction: inTransaction)
                if sql.hasPrefix("VACUUM") && inTransaction { continue }
                #expect(denial?.reason == .forbidden, "\(sql): \(String(describing: denial))")
            }
        }
        // ANALYZE first asks to create sqlite_stat1, which is refused as not owned.
        for sql in ["ANALYZE", "ANALYZE wp_molam_orders"] {
            #expect(try denied(sql) != nil, "\(sql)")
        }
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    @Test("writable_schema tricks cannot edit the schema of a core table")
    func writableSchema() throws {
        let denial = try denied("""
            PRAGMA writable_schema = ON;
            UPDATE sqlite_master SET sql = 'CREATE TABLE wp_posts (ID INTEGER PRIMARY KEY)' WHERE name = 'wp_posts';
            """)
        #expect(denial?.action == "PRAGMA")
        // Even were the pragma allowed, SQLITE_DBCONFIG_DEFENSIVE keeps sqlite_master read-only.
        let dir = try SQLiteScratchDirectory()
        let db = try site(dir)
        let permissive = SQLiteAccessPolicy(mode: .ownedWritesOnly, ownedTables: ["wp_molam_orders"])
        #expect(throws: SQLiteError.self) {
            try db.withAccessPolicy(permissive) { () throws(SQLiteError) in
                try db.executeScript("UPDATE sqlite_master SET sql = 'x' WHERE name = 'wp_posts'")
            }
        }
        #expect(try db.scalar("SELECT sql FROM sqlite_master WHERE name = 'wp_posts'")?.stringValue?
            .hasPrefix("CREATE TABLE wp_posts (ID INTEGER PRIMARY KEY, post_title") == true)
    }

    @Test("a trigger on an owned table whose body writes a core table is refused when created")
    func triggerBodyProbed() throws {
        let denial = try denied("""
            CREATE TRIGGER wp_molam_orders_evil AFTER INSERT ON wp_molam_orders
            BEGIN DELETE FROM wp_posts; END;
            """)
        #expect(denial?.trigger == "wp_molam_orders_evil")
        #expect(denial?.object == "wp_posts")
    }

    @Test("the owned tables can be fully migrated: DDL, AUTOINCREMENT, indexes, triggers, rename and drop")
    func ownedMigrationWorks() throws {
        let dir = try SQLiteScratchDirectory()
        let db = try site(dir)
        let policy = SQLiteAccessPolicy(
            mode: .ownedWritesOnly, ownedTables: ["wp_molam_orders", "wp_molam_new", "wp_molam_tmp"],
            creatableTables: ["wp_molam_new", "wp_molam_tmp"])
        try db.withAccessPolicy(policy) { () throws(SQLiteError) in
            try db.executeScript("""
                PRAGMA table_info(wp_posts);
                CREATE TABLE wp_molam_new (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER, note TEXT);
                INSERT INTO wp_molam_new (order_id, note) SELECT id, ref FROM wp_molam_orders;
                INSERT INTO wp_molam_new (order_id, note) SELECT ID, post_title FROM wp_posts;
                CREATE INDEX wp_molam_new_order ON wp_molam_new(order_id);
                CREATE TRIGGER wp_molam_new_touch AFTER UPDATE ON wp_molam_new
                BEGIN UPDATE wp_molam_orders SET ref = ref WHERE id = NEW.order_id; END;
                ALTER TABLE wp_molam_orders ADD COLUMN currency TEXT NOT NULL DEFAULT 'XOF';
                UPDATE wp_molam_new SET note = upper(note);
                CREATE TABLE wp_molam_tmp (id INTEGER PRIMARY KEY AUTOINCREMENT);
                INSERT INTO wp_molam_tmp DEFAULT VALUES;
                DROP TABLE wp_molam_tmp;
                CREATE TEMP TABLE scratch AS SELECT * FROM wp_posts;
                DELETE FROM scratch;
                """)
        }
        #expect(try db.scalar("SELECT count(*) FROM wp_molam_new")?.intValue == 3)
        #expect(try db.scalar("SELECT seq FROM sqlite_sequence WHERE name = 'wp_molam_new'")?.intValue == 3)
        #expect(try db.scalar("SELECT count(*) FROM sqlite_sequence WHERE name = 'wp_molam_tmp'")?.intValue == 0)
        #expect(try db.scalar("SELECT count(*) FROM wp_posts")?.intValue == 2)
        // Outside the policy the connection is back to normal.
        try db.execute("PRAGMA user_version = 3")
        #expect(try db.userVersion == 3)
    }

    @Test("the read-only policy allows queries and denies every write, with the statement's number")
    func readOnly() throws {
        let dir = try SQLiteScratchDirectory()
        let db = try site(dir)
        let value = try db.withAccessPolicy(.readOnly) { () throws(SQLiteError) in
            try db.scalar("SELECT count(*) FROM wp_posts JOIN wp_molam_orders ON 1")
        }
        #expect(value?.intValue == 2)
        let error = #expect(throws: SQLiteError.self) {
            try db.withAccessPolicy(.readOnly) { () throws(SQLiteError) in
                try db.executeScript("SELECT 1; INSERT INTO wp_molam_orders (ref) VALUES ('x');")
            }
        }
        #expect(error?.statement == 2)
        #expect(error?.denial?.object == "wp_molam_orders")
        #expect(try db.scalar("SELECT count(*) FROM wp_molam_orders")?.intValue == 1)
    }
}
