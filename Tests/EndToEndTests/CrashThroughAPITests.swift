import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The points only a central-API run reaches (eligibility, the HTTP download), and the reports: after a
/// kill anywhere and the next command, every report reaches the API exactly once.
@Suite("crash matrix through the central API")
struct CrashThroughAPITests {
    @Test("kill -9 at a fault point of a cron upgrade, then recover and flush: one version, every report once",
          arguments: [("before-eligibility", "4.0.0"), ("after-eligibility", "4.0.0"), ("mid-download", "4.0.0"),
                      ("after-download", "4.0.0"), ("after-swap", "4.0.0"), ("after-verify", "4.0.0"),
                      ("before-tidy", "4.0.0"), ("after-migrate", "4.0.2"), ("mid-rollback", "4.0.2"),
                      ("before-tidy", "4.0.2")])
    func killAt(point: String, version: String) throws {
        let host = try CentralAPISite()
        host.setRollout(version: version)
        try host.publish(TestSite.fixturePlugin(version), version: version)
        let oldTree = try TreeSnapshot.take(host.site.pluginDirectory)
        let oldDump = try normalizedDump(host.site.databasePath)

        let killed = try runTool(
            ["upgrade", "--config", host.configPath], environment: [FaultInjection.environmentVariable: "\(point)=kill"])
        #expect(killed.status == 128 + SIGKILL, "\(point): \(killed.stderr)")
        let recovered = try host.run(["recover"])
        #expect(recovered.status == 0, "\(point): \(recovered.stderr)")
        let flushed = try host.run(["flush"])
        #expect(flushed.status == 0, "\(point): \(flushed.stderr)")

        let tree = try TreeSnapshot.take(host.site.pluginDirectory)
        let dump = try normalizedDump(host.site.databasePath)
        if tree == oldTree {
            #expect(dump == oldDump, "\(point): old tree but not the old tables")
        } else {
            #expect(version == "4.0.0", "\(point): a release whose smoke fails is live")
            #expect(tree == (try TreeSnapshot.take(TestSite.fixturePlugin("4.0.0"))), "\(point): neither version")
            #expect(dump == molamFormReferenceDump, "\(point): new tree but not the migrated tables")
        }
        // Reports: none lost, none twice, none pending.
        #expect(host.api.duplicateDeliveries == 0 && host.api.idempotencyConflicts == 0, "\(point)")
        let status = try #require(
            try JSONSerialization.jsonObject(with: Data(host.run(["status", "--json"]).stdout.utf8)) as? [String: Any])
        #expect(status["pending_reports"] as? Int == 0, "\(point)")
        #expect((status["unfinished_runs"] as? [Any])?.isEmpty == true, "\(point)")
        if tree == oldTree, point != "before-eligibility", point != "after-eligibility", point != "mid-download",
           point != "after-download" {
            // Past the backup, a run put back by recovery reports its rollback to the API.
            #expect(host.reportKinds.contains("initiate") && host.reportKinds.contains("complete"), "\(point)")
        }
    }
}

/// The fixture site's tables after an uninterrupted upgrade of molam-form 3.9.0 to 4.0.0, made once.
let molamFormReferenceDump: String = {
    guard let site = try? TestSite.molamForm(),
          let release = try? site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz),
          let result = try? site.upgrade(release), result.status == 0
    else { return "reference upgrade failed" }
    return (try? normalizedDump(site.databasePath)) ?? "reference dump failed"
}()
