import Foundation
import MolamSQLite
import Testing
@testable import UpgradeKit

/// DESIGN.md's "Rows": an order written while a failing upgrade is live survives its rollback, and the
/// schema comes back exactly as it was, with nothing of the agent's left in the database.
@Suite("Rows written during the window")
struct RowsKeptTests {
    /// Inserts an order every millisecond or so on its own connection until stopped; remembers
    /// every insert SQLite acknowledged.
    final class OrderWriter: @unchecked Sendable {
        private let lock = NSCondition()
        private var acknowledged: [String] = []
        private var stopped = false
        private var failures: [String] = []
        private let thread: Thread

        init(database: String) {
            let box = Box()
            thread = Thread {
                guard let connection = try? SQLiteConnection(path: database, mode: .readWrite) else { return }
                connection.busyTimeout = 30
                var number = 0
                while !box.writer!.isStopped {
                    number += 1
                    let reference = "live-\(number)"
                    do {
                        try connection.run(
                            "INSERT INTO wp_molam_orders(order_ref, amount_minor, status) VALUES (?, ?, 'paid')",
                            [.text(reference), .integer(Int64(number))])
                        box.writer!.record(reference)
                    } catch {
                        box.writer!.fail("\(error)")
                    }
                    usleep(1000)
                }
            }
            box.writer = self
            thread.start()
        }

        final class Box: @unchecked Sendable { weak var writer: OrderWriter? }

        var isStopped: Bool { lock.withLock { stopped } }
        func record(_ reference: String) { lock.withLock { acknowledged.append(reference); lock.broadcast() } }
        func fail(_ error: String) { lock.withLock { failures.append(error) } }

        /// Waits until `count` more orders than now were acknowledged (deadline: 20 s).
        func waitForMore(_ count: Int) -> Bool {
            lock.withLock {
                let target = acknowledged.count + count
                let deadline = Date().addingTimeInterval(20)
                while acknowledged.count < target { if !lock.wait(until: deadline) { return false } }
                return true
            }
        }

        func stop() -> (acknowledged: [String], failures: [String]) {
            lock.withLock { stopped = true }
            while thread.isExecuting { usleep(1000) }
            return lock.withLock { (acknowledged, failures) }
        }
    }

    static func schema(_ database: String) throws -> [String] {
        try SQLiteConnection(path: database, mode: .readOnly)
            .query("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid")
            .map { $0.values.map(\.description).joined(separator: " | ") }
    }

    @Test("a failing upgrade with a writer inserting throughout: 0 orders lost, the schema as it was",
          arguments: ["after-migrate", "before-verify", "after-swap"])
    func failingUpgradeKeepsOrders(point: String) throws {
        let site = try InProcessSite()
        let schemaBefore = try Self.schema(site.database)
        let writer = OrderWriter(database: site.database)
        #expect(writer.waitForMore(5))
        site.onFault = { reached in
            // Live traffic inside the window: the new code is live, the migrations (maybe) applied.
            if reached == point {
                #expect(writer.waitForMore(20))
                throw UpgradeError.failed("injected at \(point)")
            }
        }
        let outcome = try site.upgrade("4.0.0")
        #expect(writer.waitForMore(5))
        let (acknowledged, failures) = writer.stop()
        #expect(outcome.status == .rolledBack, "\(outcome.message)")
        #expect(outcome.rollback?.databaseRestored == true)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        let stored = Set(try SQLiteConnection(path: site.database, mode: .readOnly)
            .query("SELECT order_ref FROM wp_molam_orders").compactMap { $0[0].stringValue })
        let lost = acknowledged.filter { !stored.contains($0) }
        #expect(lost.isEmpty, "\(lost.count) of \(acknowledged.count) acknowledged orders lost")
        #expect(try Self.schema(site.database) == schemaBefore)
        let check = try SQLiteConnection(path: site.database, mode: .readOnly)
        #expect(try check.scalar("PRAGMA integrity_check")?.stringValue == "ok")
        #expect(try check.query("SELECT name FROM sqlite_schema WHERE name LIKE '%molam\\_%' ESCAPE '\\' AND name LIKE '\\_%' ESCAPE '\\'").isEmpty)
        #expect(try site.installedVersion() == "3.9.0")
    }

    @Test("an owned table without rowids: no shadows, the rollback restores the backup file as before")
    func withoutRowIDFallsBack() throws {
        let site = try InProcessSite()
        let db = try SQLiteConnection(path: site.database, mode: .readWrite)
        try db.executeScript("""
            CREATE TABLE wp_molam_settings_new (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
            INSERT INTO wp_molam_settings_new SELECT key, value FROM wp_molam_settings;
            DROP TABLE wp_molam_settings;
            ALTER TABLE wp_molam_settings_new RENAME TO wp_molam_settings;
            """)
        let schemaBefore = try Self.schema(site.database)
        site.onFault = { if $0 == "after-migrate" { throw UpgradeError.failed("injected") } }
        let outcome = try site.upgrade("4.0.0")
        #expect(outcome.status == .rolledBack, "\(outcome.message)")
        #expect(try Self.schema(site.database) == schemaBefore)
        #expect(try site.steps(of: outcome.runID).contains("backup:done"))
    }

    @Test("a successful upgrade leaves no shadow table, capture trigger or change log behind")
    func commitDropsShadows() throws {
        let site = try InProcessSite()
        let outcome = try site.upgrade("4.0.0")
        #expect(outcome.status == .succeeded, "\(outcome.message)")
        let names = try SQLiteConnection(path: site.database, mode: .readOnly)
            .query("SELECT name FROM sqlite_schema").compactMap { $0[0].stringValue }
        #expect(!names.contains { $0.hasPrefix("_molam_") }, "\(names)")
    }

    @Test("the index copy keeps the index's definition; a statement that does not read as one is refused")
    func shadowIndexSQL() {
        #expect(SQLitePluginDatabase.shadowIndexSQL(
            "CREATE UNIQUE INDEX \"a \"\"b\" ON t (x, y DESC) WHERE x > 0", name: "s1", table: "_molam_shadow_t")
            == "CREATE UNIQUE INDEX \"s1\" ON \"_molam_shadow_t\" (x, y DESC) WHERE x > 0")
        #expect(SQLitePluginDatabase.shadowIndexSQL("CREATE INDEX [i] ON [t](x)", name: "s", table: "u")
            == "CREATE INDEX \"s\" ON \"u\"(x)")
        #expect(SQLitePluginDatabase.shadowIndexSQL("CREATE TABLE t(x)", name: "s", table: "u") == nil)
    }
}

@Suite("Rollbacks after commit keep rows")
struct RollbackAfterCommitTests {
    typealias OrderWriter = RowsKeptTests.OrderWriter

    static func orderRefs(_ site: InProcessSite) throws -> Set<String> {
        Set(try SQLiteConnection(path: site.database, mode: .readOnly)
            .query("SELECT order_ref FROM wp_molam_orders").compactMap { $0[0].stringValue })
    }

    @Test("operator rollback through the down migrations, a writer inserting throughout: 0 orders lost")
    func downMigrationsKeepRows() throws {
        let site = try InProcessSite()
        let schemaBefore = try RowsKeptTests.schema(site.database)
        #expect(try site.upgrade("4.0.0").status == .succeeded)
        let writer = OrderWriter(database: site.database)
        #expect(writer.waitForMore(20))
        let outcome = try Pipeline.rollback(Pipeline.RollbackOptions(), context: site.context())
        #expect(writer.waitForMore(5))
        let (acknowledged, failures) = writer.stop()
        #expect(outcome.status == .succeeded, "\(outcome.message)")
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        let stored = try Self.orderRefs(site)
        #expect(acknowledged.filter { !stored.contains($0) }.isEmpty)
        #expect(try site.installedVersion() == "3.9.0")
        #expect(try RowsKeptTests.schema(site.database) == schemaBefore)
        let steps = try site.steps(of: outcome.runID)
        #expect(steps.contains("migrate:done"))
    }

    @Test("a missing down migration refuses the rollback (exit 4, rows counted); --restore-tables quarantines them")
    func missingDownMigration() throws {
        let site = try InProcessSite()
        let release = try site.releaseWithoutDowns("4.0.0")
        #expect(try Pipeline.upgrade(
            Pipeline.UpgradeOptions(archive: release.path, sha256: release.sha256), context: site.context()
        ).status == .succeeded)
        let db = try SQLiteConnection(path: site.database, mode: .readWrite)
        for number in 1...3 {
            try db.run("INSERT INTO wp_molam_orders(order_ref, amount_minor) VALUES (?, 100)", [.text("after-\(number)")])
        }
        let refused = try Pipeline.rollback(Pipeline.RollbackOptions(), context: site.context())
        #expect(refused.exitCode == .refused, "\(refused.message)")
        #expect(refused.message.contains("0004_orders_add_currency.down.sql"), "\(refused.message)")
        #expect(refused.message.contains("would drop 3 rows"), "\(refused.message)")
        #expect(refused.message.contains("--restore-tables"))
        #expect(try site.installedVersion() == "4.0.0")

        var fleet = Pipeline.RollbackOptions(olderOnly: true, trigger: .automatic)
        fleet.fleet = true
        let fleetOutcome = try Pipeline.rollback(fleet, context: site.context())
        #expect(fleetOutcome.exitCode == .refused)
        #expect(fleetOutcome.message.contains("fleet rollback never restores tables"), "\(fleetOutcome.message)")

        var restore = Pipeline.RollbackOptions()
        restore.restoreTables = true
        let outcome = try Pipeline.rollback(restore, context: site.context())
        #expect(outcome.status == .succeeded, "\(outcome.message)")
        #expect(try site.installedVersion() == "3.9.0")
        let quarantined = try SQLiteConnection(path: site.database, mode: .readOnly)
            .query("SELECT row FROM _molam_quarantine_wp_molam_orders").compactMap { $0[0].stringValue }
        #expect(quarantined.count == 3)
        #expect(quarantined.allSatisfy { $0.contains("after-") })
        #expect(try Self.orderRefs(site).allSatisfy { !$0.hasPrefix("after-") })
    }
}
