import Foundation
import MolamSQLite
import Testing
import UpgradeKit

/// DESIGN.md's "Rows" through the binary: an operator's rollback after commit goes back through the
/// down migrations and keeps the orders written since; without them it is refused.
@Suite("rows kept by rollbacks, end to end")
struct RowsEndToEndTests {
    static func insertOrders(_ site: TestSite, _ references: [String]) throws {
        let db = try SQLiteConnection(path: site.databasePath, mode: .readWrite)
        for reference in references {
            try db.run("INSERT INTO wp_molam_orders(order_ref, amount_minor, status) VALUES (?, 100, 'paid')",
                       [.text(reference)])
        }
    }

    @Test("rollback after an upgrade: down migrations, the orders written since kept, schema as before")
    func rollbackKeepsOrders() throws {
        let site = try TestSite.molamForm()
        let before = try site.snapshot()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .zip)
        #expect(try site.upgrade(release).status == 0)
        try Self.insertOrders(site, ["after-upgrade-1", "after-upgrade-2"])
        let result = try site.run(["rollback", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let steps = (json?["steps"] as? [[String: Any]]) ?? []
        let migrate = steps.first { $0["name"] as? String == "migrate" }
        #expect((migrate?["detail"] as? String)?.contains("0004_orders_add_currency.down.sql") == true,
                "\(migrate ?? [:])")
        #expect(try site.installedVersion() == "3.9.0")
        let kept = try site.query("SELECT count(*) AS n FROM wp_molam_orders WHERE order_ref LIKE 'after-upgrade-%'")
        #expect(kept.first?["n"].intValue == 2)
        let schema = { (path: String) throws -> [String] in
            try SQLiteConnection(path: path, mode: .readOnly)
                .query("SELECT type, name, sql FROM sqlite_schema ORDER BY rowid").map { "\($0.values)" }
        }
        #expect(try site.snapshot().tree == before.tree)
        #expect(try schema(site.databasePath).joined(separator: "\n").contains("currency") == false)
    }

    @Test("without a down migration: exit 4 in one line counting the rows; --restore-tables quarantines them")
    func missingDownRefused() throws {
        let site = try AcmePay.site()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        #expect(try site.upgrade(release).status == 0)
        let db = try SQLiteConnection(path: site.databasePath, mode: .readWrite)
        try db.run("INSERT INTO acme_payments(reference, amount, state) VALUES ('late-1', 10, 'paid')")
        let refused = try site.run(["rollback"])
        #expect(refused.status == 4, "\(refused.stderr)")
        #expect(refused.stderrLines.count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("--restore-tables") && refused.stderr.contains("would drop 4 rows"),
                "\(refused.stderr)")
        let restored = try site.run(["rollback", "--restore-tables"])
        #expect(restored.status == 0, "\(restored.stderr)")
        let quarantined = try site.query("SELECT row FROM _molam_quarantine_acme_payments")
        #expect(quarantined.count == 1)
        #expect(quarantined.first?["row"].stringValue?.contains("late-1") == true)
        #expect(try site.query("SELECT * FROM acme_payments WHERE reference = 'late-1'").isEmpty)
    }
}

@Suite("recovery from what is on disk, end to end")
struct LostJournalTests {
    @Test("kill -9 right after the swap, then the journal's WAL lost: recover still puts the old version back",
          arguments: ["after-swap", "after-migrate"])
    func lostWAL(point: String) throws {
        let crash = try CrashSite(scenario: .succeeding)
        #expect(try crash.upgrade(faults: "\(point)=kill").status == 128 + SIGKILL)
        let journal = crash.site.stateDirectory + "/journal.db"
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: journal + suffix) }
        let recovered = try crash.site.run(["recover"])
        #expect(recovered.status == 0, "\(recovered.stderr)")
        #expect(try crash.checkExactlyOneVersion(context: "WAL lost after \(point)") == .old)
        #expect(try crash.upgrade(faults: nil).status == 0)
        #expect(try crash.checkExactlyOneVersion(context: "upgrade after the lost WAL") == .new)
    }
}
