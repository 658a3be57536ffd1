import Foundation
import Testing
import UpgradeKit

@Suite("read-only and housekeeping commands")
struct CommandsEndToEndTests {
    @Test("check judges a release without changing anything")
    func check() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let good = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.run(["check", "--archive", good.path, "--sha256", good.sha256, "--json"])
        #expect(result.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["decision"] as? String == "upgrade")
        #expect(json?["release_version"] as? String == "1.1.0")
        let older = try AcmePay.release(site, version: "0.9.0", format: .tarGz)
        #expect(try site.run(["check", "--archive", older.path, "--sha256", older.sha256]).status == 4)
        #expect(try site.snapshot() == before)
        #expect(!FileManager.default.fileExists(atPath: site.stateDirectory))
    }

    @Test("verify runs the installed version's smoke checks")
    func verify() throws {
        let site = try TestSite.molamForm()
        let result = try site.run(["verify", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["passed"] as? Bool == true)
        #expect((json?["checks"] as? [Any])?.count == 2)
    }

    @Test("backup, status, stats and cleanup report what the journal holds")
    func housekeeping() throws {
        let site = try TestSite.molamForm()
        let backup = try site.run(["backup"])
        #expect(backup.status == 0, "\(backup.stderr)")
        let good = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .zip)
        #expect(try site.upgrade(good).status == 0)
        // 4.0.1 rewrote migration 0004, which 4.0.0 already applied: refused before any change.
        let rewritten = try site.release(from: TestSite.fixturePlugin("4.0.1"), format: .zip)
        let refused = try site.upgrade(rewritten)
        #expect(refused.status == 4)
        #expect(refused.stderr.contains("0004"))
        let bad = try site.release(from: TestSite.fixturePlugin("4.0.2"), format: .zip)
        #expect(try site.upgrade(bad).status == 1)

        let status = try JSONSerialization.jsonObject(with: Data(try site.run(["status", "--json"]).stdout.utf8))
            as? [String: Any]
        #expect(status?["installed_version"] as? String == "4.0.0")
        #expect((status?["backups"] as? [Any])?.count == 3)

        let stats = try JSONSerialization.jsonObject(with: Data(try site.run(["stats", "--json"]).stdout.utf8))
            as? [String: Any]
        let plugin = (stats?["plugins"] as? [[String: Any]])?.first
        #expect(plugin?["upgrades"] as? Int == 2)
        #expect(plugin?["succeeded"] as? Int == 1)
        #expect(plugin?["success_rate"] as? Double == 0.5)
        #expect(stats?["rollbacks_last_24h"] as? Int == 1)
        #expect((stats?["average_rollback_ms"] as? Double).map { $0 >= 0 } == true)
        let table = try site.run(["stats"])
        #expect(table.stdout.contains("50.0 %"))

        // Nothing is old enough to expire: cleanup keeps every backup.
        let cleanup = try site.run(["cleanup", "--json"])
        #expect(cleanup.status == 0)
        let cleaned = try JSONSerialization.jsonObject(with: Data(cleanup.stdout.utf8)) as? [String: Any]
        #expect((cleaned?["removed"] as? [Any])?.isEmpty == true)
        #expect((cleaned?["kept"] as? [Any])?.count == 3)
    }
}
