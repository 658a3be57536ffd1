import Foundation
import MolamSQLite
import Testing

/// A unique directory per test, removed when the test lets go of it.
final class SQLiteScratchDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("molam-sqlite-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

@Suite struct SQLiteConnectionTests {
    @Test("opening a missing file read-write fails with the path and closes the handle")
    func openMissing() throws {
        let dir = try SQLiteScratchDirectory()
        let missing = dir.file("nope.db")
        let error = #expect(throws: SQLiteError.self) {
            try SQLiteConnection(path: missing, mode: .readWrite)
        }
        #expect(error?.code == 14)
        #expect(error?.path == missing)
        #expect(error?.description.contains(missing) == true)
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    @Test("values of every storage class round-trip through bindings")
    func roundTrip() throws {
        let dir = try SQLiteScratchDirectory()
        let db = try SQLiteConnection(path: dir.file("v.db"))
        try db.execute("CREATE TABLE v(a, b, c, d, e, f, g);")
        let values: [SQLiteValue] = [
            .null, .integer(Int64.min), .real(2.5), .text("héllo \"x\""), .blob([0, 1, 255]),
            .text(""), .blob([]),
        ]
        try db.run("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?)", values)
        #expect(db.lastInsertRowID == 1)
        #expect(db.changes == 1)
        let rows = try db.query("SELECT * FROM v")
        #expect(rows.count == 1)
        #expect(rows[0].values == values)
        #expect(rows[0].columns == ["a", "b", "c", "d", "e", "f", "g"])
        #expect(rows[0]["D"] == .text("héllo \"x\""))
        #expect(rows[0]["missing"] == .null)
        #expect(rows[0][99] == .null)
        #expect(try db.scalar("SELECT typeof(g) FROM v") == .text("blob"))
        #expect(try db.scalar("SELECT 1 WHERE 0") == nil)
        #expect(SQLiteValue.blob([10, 255]).description == "x'0aff'")
        #expect(SQLiteValue.null.description == "NULL")
        #expect(SQLiteValue.text("42").intValue == 42)
    }

    @Test("a statement reused from the cache starts clean")
    func cacheReuse() throws {
        let dir = try SQLiteScratchDirectory()
        let db = try SQLiteConnection(path: dir.file("c.db"))
        try db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);")
        for expected in [Int64(1), 2, 3, 1] {
            #expect(try db.scalar("SELECT x FROM t WHERE x = ?", [.integer(expected)]) == .integer(expected))
        }
        // A scalar read leaves no read transaction open behind it.
        #expect(db.isAutocommit)
        try db.run("DROP TABLE t")
    }

    @Test("single-statement calls refuse a second statement and a wrong number of bindings")
    func refusals() throws {
        let dir = try SQLiteScratchDirectory()
        let db = try SQLiteConnection(path: dir.file("r.db"))
        #expect(throws: SQLiteError.self) { try db.run("CREATE TABLE a(x); CREATE TABLE b(x)") }
        #expect(try db.query("SELECT 1; -- trailing comment\n").count == 1)
        #expect(throws: SQLiteError.self) { try db.run("SELECT ?", []) }
    }

    @Test("a failing script statement reports its line and SQL")
    func scriptLine() throws {
        let dir = try SQLiteScratchDirectory()
        let path = dir.file("s.db")
        let db = try SQLiteConnection(path: path)
        let script = """
            -- header comment; with a semicolon
            CREATE TABLE t(id INTEGER PRIMARY KEY);
            /* block
               comment */ INSERT INTO t VALUES (1);
            INSERT INTO t
                VALUES (1);
            """
        let error = #expect(throws: SQLiteError.self) { try db.executeScript(script) }
        #expect(error?.line == 5)
        #expect(error?.code == 19)
        #expect(error?.extendedCode == 1555)
        #expect(error?.sql?.hasPrefix("INSERT INTO t") == true)
        let description = error?.description ?? ""
        #expect(description.hasPrefix("SQLite error 19 (constraint failed: UNIQUE constraint failed: t.id)"))
        #expect(description.hasSuffix("at line 5 of \(path)"))
        #expect(!description.contains("\n"))

        let parseError = #expect(throws: SQLiteError.self) {
            try db.executeScript("SELECT 1;\n\nSELEC 2;")
        }
        #expect(parseError?.line == 3)
    }

    @Test("transaction rolls back when its body throws and commits otherwise")
    func transactions() throws {
        struct Boom: Error {}
        let dir = try SQLiteScratchDirectory()
        let db = try SQLiteConnection(path: dir.file("t.db"))
        try db.execute("CREATE TABLE t(x)")
        #expect(throws: Boom.self) {
            try db.transaction { try db.run("INSERT INTO t VALUES (1)"); throw Boom() }
        }
        #expect(try db.scalar("SELECT count(*) FROM t") == .integer(0))
        try db.transaction(.deferred) {
            try db.run("INSERT INTO t VALUES (1)")
            #expect(throws: Boom.self) {
                try db.savepoint("inner \"one\"") { try db.run("INSERT INTO t VALUES (2)"); throw Boom() }
            }
            try db.savepoint("kept") { try db.run("INSERT INTO t VALUES (3)") }
        }
        #expect(try db.query("SELECT x FROM t ORDER BY x").map { $0[0] } == [.integer(1), .integer(3)])
        #expect(db.isAutocommit)
    }

    @Test("user_version, integrity_check, attach and detach")
    func connectionState() throws {
        let dir = try SQLiteScratchDirectory()
        let db = try SQLiteConnection(path: dir.file("u.db"))
        #expect(try db.userVersion == 0)
        try db.setUserVersion(7)
        #expect(try db.userVersion == 7)
        #expect(try db.integrityCheck() == ["ok"])
        try db.attach(path: dir.file("other db.sqlite"), as: "o")
        try db.execute("CREATE TABLE o.x(a); INSERT INTO o.x VALUES (1);")
        #expect(try db.scalar("SELECT count(*) FROM o.x") == .integer(1))
        try db.detach("o")
        #expect(throws: SQLiteError.self) { try db.scalar("SELECT count(*) FROM o.x") }
        #expect(SQLiteConnection.quoteIdentifier("a\"b") == "\"a\"\"b\"")
    }

    @Test("withTimeout interrupts a runaway query")
    func timeout() throws {
        let dir = try SQLiteScratchDirectory()
        let db = try SQLiteConnection(path: dir.file("q.db"))
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            + "SELECT count(*) FROM c"
        let error = #expect(throws: SQLiteError.self) {
            try db.withTimeout(0.05) { () throws(SQLiteError) in _ = try db.scalar(endless) }
        }
        #expect(error?.isInterrupted == true)
        // The handler is gone afterwards: ordinary queries run to completion.
        #expect(try db.scalar("SELECT 1") == .integer(1))
    }

    @Test("a read-only connection cannot write")
    func readOnly() throws {
        let dir = try SQLiteScratchDirectory()
        let path = dir.file("ro.db")
        try SQLiteConnection(path: path).execute("CREATE TABLE t(x)")
        let db = try SQLiteConnection(path: path, mode: .readOnly)
        let error = #expect(throws: SQLiteError.self) { try db.run("INSERT INTO t VALUES (1)") }
        #expect(error?.code == 8)
    }
}
