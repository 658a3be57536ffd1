import Foundation
import MolamMySQL
import TestSupport
import Testing

/// A database of its own on the shared private MariaDB server, with a root connection to it.
struct MySQLTestDatabase {
    let server: MariaDBTestServer
    let name: String
    let connection: MySQLConnection

    init(_ hint: String) throws {
        server = try MariaDBTestServer.shared()
        name = server.uniqueDatabaseName(hint)
        let admin = try MySQLConnection(MySQLEndpoint(socket: server.socketPath, user: "root", database: ""))
        try admin.execute("CREATE DATABASE \(MySQLConnection.quoteIdentifier(name))")
        connection = try MySQLConnection(
            MySQLEndpoint(socket: server.socketPath, user: "root", database: name))
    }

    func endpoint(user: String = "root", password: String? = nil) -> MySQLEndpoint {
        MySQLEndpoint(socket: server.socketPath, user: user, password: password, database: name)
    }
}

@Suite struct MySQLConnectionTests {
    @Test("root connects through the socket; the endpoint describes itself without a password")
    func connect() throws {
        let db = try MySQLTestDatabase("connect")
        #expect(db.connection.serverVersion.contains("MariaDB"))
        #expect(try db.connection.query("SELECT DATABASE()").first?[0] == .text(db.name))
        #expect(try db.connection.query("SELECT @@character_set_client").first?[0] == .text("utf8mb4"))
        let endpoint = MySQLEndpoint(
            port: 3307, socket: "/run/m.sock", user: "shop", password: "hunter2-secret", database: "wp")
        #expect(endpoint.description == "mysql://shop@localhost:3307/wp?socket=/run/m.sock")
        #expect(MySQLEndpoint(host: "db", user: "u", database: "d").description == "mysql://u@db/d")
        var dumped = ""
        dump(endpoint, to: &dumped)
        #expect(dumped.contains("shop") && !dumped.contains("hunter2-secret"))
        #expect(!String(reflecting: endpoint).contains("hunter2-secret"))
    }

    @Test("every value kind round-trips, through bound parameters and both result protocols")
    func valueKinds() throws {
        let db = try MySQLTestDatabase("values")
        try db.connection.execute("""
            CREATE TABLE v (i BIGINT, u BIGINT UNSIGNED, d DOUBLE, f FLOAT, dec_ DECIMAL(30,4),
              t VARCHAR(100), b VARBINARY(100), big LONGBLOB, n INT, dt DATETIME, bits BIT(12), tiny TINYINT,
              bigtext MEDIUMTEXT)
            """)
        let large = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let longText = String(repeating: "é🎉", count: 1_000)
        let values: [MySQLValue] = [
            .int(Int64.min), .uint(UInt64.max), .double(-2.5), .double(3.25),
            .text("12345678901234567890.1234"), .text("héllo 🎉 \u{0} nul"), .bytes([0, 1, 0, 255]),
            .bytes(large), .null, .text("2024-02-29 13:45:07"),
            .uint(0b1010_0000_0101), .int(-128), .text(longText),
        ]
        let inserted = try db.connection.execute(
            "INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        #expect(inserted == 1)

        let text = try db.connection.query("SELECT * FROM v")
        let binary = try db.connection.query("SELECT * FROM v WHERE 1 = ?", [.int(1)])
        for (protocolName, rows) in [("text", text), ("binary", binary)] {
            #expect(rows.count == 1, "\(protocolName)")
            guard let row = rows.first else { continue }
            #expect(row.values == values, "\(protocolName)")
            #expect(row.columns.map(\.name) == [
                "i", "u", "d", "f", "dec_", "t", "b", "big", "n", "dt", "bits", "tiny", "bigtext",
            ])
            #expect(row.columns.map(\.isBinary) == [
                false, false, false, false, false, false, true, true, false, false, false, false, false,
            ], "\(protocolName)")
            #expect(row.columns.map(\.isNumeric) == [
                true, true, true, true, true, false, false, false, true, false, false, true, false,
            ], "\(protocolName)")
            #expect(row["T"] == .text("héllo 🎉 \u{0} nul"))
            #expect(row["missing"] == nil)
            #expect(row[99] == .null)
        }
        #expect(MySQLValue.uint(UInt64.max).intValue == nil)
        #expect(MySQLValue.text("12").intValue == 12)
        #expect(MySQLValue.bytes([0x0a, 0xff]).description == "x'0aff'")
        #expect(MySQLValue.null.isNull)
    }

    @Test("execute reports affected rows and the generated id")
    func affectedRows() throws {
        let db = try MySQLTestDatabase("affected")
        try db.connection.execute("CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, x INT)")
        #expect(try db.connection.execute("INSERT INTO a (x) VALUES (1), (2), (3)") == 3)
        #expect(db.connection.lastInsertID == 1)
        #expect(try db.connection.execute("INSERT INTO a (x) VALUES (?)", [.int(4)]) == 1)
        #expect(db.connection.lastInsertID == 4)
        #expect(try db.connection.execute("UPDATE a SET x = x + 10 WHERE x >= 2") == 3)
        #expect(try db.connection.execute("SELECT * FROM a") == 0)
        #expect(try db.connection.execute("SELECT * FROM a WHERE x > ?", [.int(0)]) == 0)
        #expect(try db.connection.query("UPDATE a SET x = 0 WHERE id = ?", [.int(1)]).isEmpty)
        #expect(try db.connection.query("SELECT SUM(x) FROM a").first?[0] == .text("39"))
    }

    @Test("forEachRow streams 50,000 rows and leaves the connection usable after the body throws")
    func streaming() throws {
        let db = try MySQLTestDatabase("stream")
        try db.connection.execute("CREATE TABLE big (n INT PRIMARY KEY, pad VARCHAR(200))")
        try db.connection.execute("SET SESSION max_recursive_iterations = 100000")
        try db.connection.execute("""
            INSERT INTO big
            WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 50000)
            SELECT n, REPEAT('x', 100) FROM seq
            """)
        var count = 0
        var sum: Int64 = 0
        try db.connection.forEachRow("SELECT n, pad FROM big ORDER BY n") { row in
            count += 1
            sum += row[0].intValue ?? 0
            if row["pad"]?.stringValue?.count != 100 { Issue.record("short pad in row \(count)") }
        }
        #expect(count == 50_000)
        #expect(sum == 50_000 * 50_001 / 2)

        struct Stop: Error {}
        var seen = 0
        #expect(throws: Stop.self) {
            try db.connection.forEachRow("SELECT n FROM big") { _ in
                seen += 1
                if seen == 10 { throw Stop() }
            }
        }
        #expect(seen == 10)
        #expect(try db.connection.query("SELECT COUNT(*) FROM big").first?[0] == .int(50_000))
    }

    @Test("a script stops at its failing statement, which the error numbers")
    func scriptFailure() throws {
        let db = try MySQLTestDatabase("script")
        let error = #expect(throws: MySQLError.self) {
            try db.connection.executeScript("""
                CREATE TABLE first_t (id INT);
                INSERT INTO no_such_table VALUES (1);
                CREATE TABLE third_t (id INT);
                """)
        }
        #expect(error?.statementIndex == 2)
        #expect(error?.number == 1146)
        #expect(error?.sqlState == "42S02")
        #expect(error?.description.contains("in statement 2 of \"CREATE TABLE first_t") == true)
        let tables = try db.connection.query("SHOW TABLES").compactMap { $0[0].stringValue }
        #expect(tables == ["first_t"])

        let syntax = #expect(throws: MySQLError.self) {
            try db.connection.executeScript("CREATE TABLE oops (; CREATE TABLE never (id INT);")
        }
        #expect(syntax?.statementIndex == 1)
        #expect(syntax?.number == 1064)

        // Multi-statement mode ended with the script: a second statement in execute is a syntax error.
        let stacked = #expect(throws: MySQLError.self) {
            try db.connection.execute("SELECT 1; DROP TABLE first_t")
        }
        #expect(stacked?.number == 1064)
        #expect(try db.connection.query("SHOW TABLES").count == 1)
    }

    @Test("the server's parser handles compound statements: a trigger with BEGIN … END")
    func scriptTrigger() throws {
        let db = try MySQLTestDatabase("trigger")
        try db.connection.executeScript("""
            CREATE TABLE orders (id INT PRIMARY KEY, total INT);
            CREATE TABLE audit (order_id INT, note VARCHAR(50));
            CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
            BEGIN
              INSERT INTO audit VALUES (NEW.id, 'created; checked');
              IF NEW.total > 100 THEN INSERT INTO audit VALUES (NEW.id, 'large'); END IF;
            END;
            INSERT INTO orders VALUES (1, 50), (2, 500);
            SELECT * FROM orders;
            """)
        let rows = try db.connection.query("SELECT order_id, note FROM audit ORDER BY order_id, note")
        #expect(rows.map { [$0[0], $0[1]] } == [
            [.int(1), .text("created; checked")], [.int(2), .text("created; checked")],
            [.int(2), .text("large")],
        ])
        #expect(db.connection.lastInsertID == 0)
    }

    @Test("a wrong password fails without the password anywhere in the error")
    func wrongPassword() throws {
        let db = try MySQLTestDatabase("password")
        try db.connection.execute("CREATE USER 'pw_user'@'localhost' IDENTIFIED BY 'right-horse-42'")
        try db.connection.execute(
            "GRANT SELECT ON \(MySQLConnection.quoteIdentifier(db.name)).* TO 'pw_user'@'localhost'")
        let secret = "wrong-battery-staple-7"
        let endpoint = db.endpoint(user: "pw_user", password: secret)
        let error = #expect(throws: MySQLError.self) { try MySQLConnection(endpoint) }
        #expect(error?.number == 1045)
        #expect(error?.sqlState == "28000")
        #expect(error.map { "\($0) \(String(reflecting: $0)) \($0.message)" }?.contains(secret) == false)
        #expect(!endpoint.description.contains(secret))
        let right = try MySQLConnection(db.endpoint(user: "pw_user", password: "right-horse-42"))
        #expect(try right.query("SELECT CURRENT_USER()").first?[0] == .text("pw_user@localhost"))
    }

    @Test("quote and quoteIdentifier survive quotes, backslashes, NULs and newlines")
    func quoting() throws {
        let db = try MySQLTestDatabase("quote")
        let nasty = "it's a \\ back\u{0}slash\nnew 'line' \"q\" 🎉 \u{1a}"
        #expect(try db.connection.query("SELECT \(db.connection.quote(nasty))").first?[0] == .text(nasty))
        #expect(try db.connection.query("SELECT \(db.connection.quote(""))").first?[0] == .text(""))
        try db.connection.execute("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")
        #expect(try db.connection.query("SELECT \(db.connection.quote(nasty))").first?[0] == .text(nasty))

        let table = "we`ird name"
        #expect(MySQLConnection.quoteIdentifier(table) == "`we``ird name`")
        try db.connection.execute("CREATE TABLE \(MySQLConnection.quoteIdentifier(table)) (x INT)")
        #expect(try db.connection.query("SHOW TABLES").first?[0] == .text(table))
    }

    @Test("a user granted INSERT on t1 only is refused INSERT on t2 with error 1142")
    func confinedUser() throws {
        let db = try MySQLTestDatabase("confined")
        let name = MySQLConnection.quoteIdentifier(db.name)
        try db.connection.executeScript("""
            CREATE TABLE t1 (x INT); CREATE TABLE t2 (x INT);
            CREATE USER 'c_\(db.name.suffix(20))'@'localhost' IDENTIFIED BY 'x';
            GRANT SELECT ON \(name).* TO 'c_\(db.name.suffix(20))'@'localhost';
            GRANT INSERT ON \(name).t1 TO 'c_\(db.name.suffix(20))'@'localhost';
            """)
        let confined = try MySQLConnection(db.endpoint(user: "c_\(db.name.suffix(20))", password: "x"))
        #expect(try confined.execute("INSERT INTO t1 VALUES (1)") == 1)
        let error = #expect(throws: MySQLError.self) { try confined.execute("INSERT INTO t2 VALUES (1)") }
        #expect(error?.number == 1142)
        #expect(error?.sqlState == "42000")
        #expect(error?.statement == "INSERT INTO t2 VALUES (1)")
        let prepared = #expect(throws: MySQLError.self) {
            try confined.execute("INSERT INTO t2 VALUES (?)", [.int(2)])
        }
        #expect(prepared?.number == 1142)
        #expect(try db.connection.query("SELECT COUNT(*) FROM t2").first?[0] == .int(0))
    }

    @Test("misuse throws: wrong parameter count, unknown table, a closed connection")
    func misuse() throws {
        let db = try MySQLTestDatabase("misuse")
        let count = #expect(throws: MySQLError.self) { try db.connection.query("SELECT ?, ?", [.int(1)]) }
        #expect(count?.number == 2034)
        let missing = #expect(throws: MySQLError.self) { try db.connection.query("SELECT * FROM nowhere") }
        #expect(missing?.number == 1146)
        #expect(missing?.statement == "SELECT * FROM nowhere")
        let suffix = "(error 1146, SQLSTATE 42S02) in \"SELECT * FROM nowhere\""
        #expect(missing?.description.hasSuffix(suffix) == true)
        db.connection.close()
        db.connection.close()
        let closed = #expect(throws: MySQLError.self) { try db.connection.execute("SELECT 1") }
        #expect(closed?.number == 2006)
    }
}
