import Foundation
import MolamSQLite
import Testing
@testable import UpgradeKit

/// The backup's chunked copies: the pause after a chunk lets every waiting writer in, and the table
/// backup file holds every row of the shadows whether it is read in chunks (rollback-journal site)
/// or in one transaction (WAL site).
@Suite("Chunked table copies")
struct ChunkedCopyTests {
    @Test("a writer that began waiting during a chunk polls inside the pause that follows it")
    func pauseCoversTheBusyHandlersPolls() {
        // SQLite's default busy handler's sleeps, written out here rather than read from the code under
        // test (sqliteDefaultBusyCallback in main.c), then 100 ms each.
        let delays: [Double] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100] + Array(repeating: 100, count: 40)
        for tenths in stride(from: 5, through: 2_000, by: 5) {
            let took = Double(tenths) / 10
            let pause = SQLitePluginDatabase.pause(after: .microseconds(tenths * 100)) / .milliseconds(1)
            // A writer that began waiting `start` ms into the chunk polls at start + 1, + 3, + 8 …
            for start in stride(from: 0.0, to: took, by: 0.1) {
                var poll = start
                for delay in delays where poll < took { poll += delay }
                #expect(poll <= took + pause - 2.9, "chunk of \(took) ms, writer waiting from \(start) ms")
            }
        }
    }

    @Test("the table backup file holds every row of the shadows, rollback-journal and WAL sites alike",
          arguments: ["delete", "wal"])
    func backupFileFromShadows(journalMode: String) throws {
        let dir = try SQLiteScratchDirectory()
        let path = dir.file("site.db")
        let site = try SQLiteConnection(path: path)
        try site.execute("PRAGMA journal_mode = \(journalMode)")
        try site.executeScript("""
            CREATE TABLE wp_molam_orders(id INTEGER PRIMARY KEY AUTOINCREMENT, ref TEXT NOT NULL UNIQUE, amount INTEGER);
            CREATE INDEX wp_molam_orders_amount ON wp_molam_orders(amount);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25000)
            INSERT INTO wp_molam_orders(ref, amount) SELECT 'order-' || i, i % 97 FROM n;
            DELETE FROM wp_molam_orders WHERE id % 7 = 0;
            """)
        let expected = try site.scalar("SELECT count(*) FROM wp_molam_orders")?.intValue
        let database = try SQLitePluginDatabase(path: path)
        let shadows = try database.prepareShadows(["wp_molam_orders"])
        #expect(Int64(shadows.rows) == expected)
        let file = dir.file("tables.db")
        let summary = try database.backupTables(["wp_molam_orders"], to: file)
        #expect(Int64(summary.tables["wp_molam_orders"] ?? -1) == expected)
        #expect(try database.verifyTableBackup(at: file) == summary)
        let backup = try SQLiteConnection(path: file, mode: .readOnly)
        #expect(try backup.scalar("PRAGMA journal_mode")?.stringValue == "delete")
        try backup.attach(path: path, as: "site")
        let differing = try backup.scalar("""
            SELECT count(*) FROM (SELECT id, ref, amount FROM main.wp_molam_orders
                                  EXCEPT SELECT id, ref, amount FROM site.wp_molam_orders)
            """)?.intValue
        #expect(differing == 0)
        try database.discardShadows()
    }
}
