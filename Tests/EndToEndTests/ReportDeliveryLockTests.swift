import Foundation
import TestSupport
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// Report delivery never holds the run lock and has an overall deadline: a slow API delays no
/// operator, and each report still reaches it once, in order.
@Suite("report delivery and the run lock, end to end")
struct ReportDeliveryLockTests {
    @Test("While a run delivers to a slow API (2 s a report), rollback gets the run lock at once; flush defers")
    func slowAPIDoesNotHoldTheLock() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0")
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        host.api.setPersistentFault(.slow(seconds: 2), on: .reports)

        let started = Date()
        let upgrade = try startTool(["upgrade", "--config", host.configPath])
        defer { if !upgrade.hasExited { upgrade.kill(SIGKILL) } }
        // The first report reaches the API only after the run has finished and let the lock go.
        #expect(waitUntil(timeout: 60) { host.api.requests.contains { $0.method == "POST" } || upgrade.hasExited })
        #expect(!upgrade.hasExited, "the run should still be delivering")
        #expect(try host.site.installedVersion() == "4.0.0")

        // A second deliverer is turned away at once: the first one sends the reports.
        let flush = try host.run(["flush"])
        #expect(flush.status == 75, "\(flush.stderr)")
        #expect(flush.stderr.contains("delivering"), "\(flush.stderr)")

        let rollbackStart = Date()
        let rollback = try host.run(["rollback", "--reason", "urgent"])
        let rollbackSeconds = Date().timeIntervalSince(rollbackStart)
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try host.site.installedVersion() == "3.9.0")
        // It queued its reports for the deliverer still at work rather than waiting for it.
        #expect(rollbackSeconds < 15, "rollback took \(rollbackSeconds) s")
        #expect(!upgrade.hasExited, "the rollback ran while the first run was still delivering")

        // The first run stops at its delivery deadline (20 s), keeping its exit code.
        #expect(waitUntil(timeout: 60) { upgrade.hasExited })
        let first = try upgrade.wait()
        #expect(first.status == 0, "\(first.stderr)")
        let total = Date().timeIntervalSince(started)
        #expect(total < 45, "the upgrade ran \(total) s")
        print("slow API: rollback took \(String(format: "%.2f", rollbackSeconds)) s while the upgrade delivered; "
              + "upgrade ran \(String(format: "%.1f", total)) s")

        // The rest is delivered later, each report once, in the order queued.
        host.api.clearFaults()
        let later = try host.run(["flush", "--json"])
        #expect(later.status == 0, "\(later.stderr)")
        let status = try host.run(["status", "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        #expect(json["pending_reports"] as? Int == 0)
        #expect(host.api.idempotencyConflicts == 0)
        let kinds = host.reportKinds
        #expect(kinds.first == "upgrade")
        #expect(kinds.filter { $0 == "upgrade" }.count == 2, "one upgrade record per run: \(kinds)")
        #expect(kinds.filter { $0 == "step:commit" }.count == 2)
        let firstLog = try #require(kinds.firstIndex(of: "log"))
        let secondUpgrade = try #require(kinds.lastIndex(of: "upgrade"))
        #expect(firstLog < secondUpgrade, "the first run's reports all came before the second's: \(kinds)")
        // The seeds' complete report counts the files put back (an integer, not a flag).
        let complete = try #require(host.api.reports.first { $0.path.hasSuffix("/complete") })
        #expect(Int(complete.body["files_restored"] ?? "") ?? 0 > 0, "\(complete.body)")
        #expect(complete.body["db_restored"] == "true")
    }
}
