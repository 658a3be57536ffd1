import Foundation
import TestSupport
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The central API as the seeds document it (115bis, 115ter): the wrapped rollout answer, its
/// integer id and unknown fields, "no active rollout" as null or 404, and the seeds' decision
/// fields in `check --json`.
@Suite("central API as the seeds document it, end to end")
struct SeedsAPITests {
    /// The seeds' `GET /api/plugins/rollouts/:plugin_name` example, for this fixture's plugin.
    static func seedsRollout(version: String = "4.0.0") -> [String: Any] {
        [
            "id": 1, "plugin_name": "molam-form", "version": version, "rollout_percentage": 100,
            "rollout_strategy": "geo", "target_countries": ["US", "FR", "SN"], "status": "active",
            "merchants_upgraded": 142, "error_rate": 0.012,
        ]
    }

    @Test("The seeds' wrapped rollout, integer id and unknown fields included, upgrades the host")
    func wrappedSeedsRollout() throws {
        let host = try CentralAPISite()
        host.api.setRollout(plugin: "molam-form", Self.seedsRollout())
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")

        let check = try host.run(["check", "--json"])
        #expect(check.status == 0, "\(check.stderr)")
        let decision = try #require(
            try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any])
        #expect(decision["should_upgrade"] as? Bool == true)
        #expect(decision["rollout_id"] as? Int == 1, "the seeds' integer id keeps its type")
        #expect(decision["rollout_percentage"] as? Int == 100)
        #expect(decision["rollout_strategy"] as? String == "geo")
        #expect(decision["version"] as? String == "4.0.0")
        #expect((decision["reason"] as? String ?? "").contains("rollout 1"))
        #expect(decision["decision"] as? String == "upgrade")

        let result = try host.run(["upgrade"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try host.site.installedVersion() == "4.0.0")
        let history = try host.run(["history", "--json"])
        #expect(history.stdout.contains("rollout 1 of molam-form 4.0.0"))
    }

    @Test("A POST-style answer (ok, no strategy, no targets, no threshold) is a random rollout")
    func optionalFieldsAbsent() throws {
        let host = try CentralAPISite()
        host.api.setRolloutShape(.bare)
        host.api.setRollout(plugin: "molam-form", [
            "ok": true,
            "rollout": ["id": 1, "plugin_name": "molam-form", "version": "4.0.0", "rollout_percentage": 100,
                        "status": "active"] as [String: Any],
        ])
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        let check = try host.run(["check", "--json"])
        let decision = try #require(
            try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any])
        #expect(decision["rollout_strategy"] as? String == "random")
        #expect(decision["should_upgrade"] as? Bool == true)
        let result = try host.run(["upgrade", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try host.site.installedVersion() == "4.0.0")
    }

    @Test("A bare rollout object is still understood")
    func bareRollout() throws {
        let host = try CentralAPISite()
        host.api.setRolloutShape(.bare)
        host.api.setRollout(plugin: "molam-form", Self.seedsRollout())
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        let result = try host.run(["upgrade", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try host.site.installedVersion() == "4.0.0")
    }

    @Test("No active rollout, as {\"rollout\": null} or as 404: skipped, exit 0, nothing changed",
          arguments: [true, false])
    func noActiveRollout(null: Bool) throws {
        let host = try CentralAPISite()
        if null { host.api.setNoActiveRollout(plugin: "molam-form") }
        let before = try host.site.snapshot()
        let result = try host.run(["upgrade"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("skipped: no rollout is published"))
        #expect(try host.site.snapshot() == before)
        let check = try host.run(["check", "--json"])
        let decision = try #require(
            try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any])
        #expect(decision["should_upgrade"] as? Bool == false)
        #expect(decision["rollout_id"] is NSNull)
    }

    @Test("A string where the seeds put a number is one line naming the field, exit 75")
    func strictTypes() throws {
        let host = try CentralAPISite()
        var rollout = Self.seedsRollout()
        rollout["rollout_percentage"] = "25"
        host.api.setRollout(plugin: "molam-form", rollout)
        let before = try host.site.snapshot()
        let result = try host.run(["upgrade"])
        #expect(result.status == 75)
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("'rollout_percentage'"))
        #expect(try host.site.snapshot() == before)
    }
}

/// A release's `download_url` is not signed: whatever the API puts there, the agent downloads only
/// over https (http to loopback), never reads a local file, and says so in one line with exit 4.
@Suite("download URLs from the API, end to end")
struct DownloadURLTests {
    @Test("file:// to a root-only secret is refused before it is read: exit 4, no hash anywhere")
    func fileURLIsNoHashOracle() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0")
        let secret = host.site.root + "/secret.key"
        try Data("root-only secret 1f9c".utf8).write(to: URL(fileURLWithPath: secret))
        chmod(secret, 0o600)
        let secretHash = try sha256(ofFile: secret)
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0") { $0["download_url"] = "file://" + secret }
        let before = try host.site.snapshot()

        let result = try host.run(["upgrade", "--json"])
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stdout.contains("download_url"))
        #expect(!result.stdout.contains(secretHash) && !result.stderr.contains(secretHash))
        #expect(try host.site.snapshot() == before)
        #expect(!host.api.requests.contains { $0.path.hasPrefix("/downloads/") })
        #expect(try host.stateBytes().range(of: Data(secretHash.utf8)) == nil, "journaled")
        #expect(!host.api.reports.contains { String(decoding: $0.rawBody, as: UTF8.self).contains(secretHash) })

        let plain = try host.run(["upgrade"])
        #expect(plain.status == 4)
        #expect(plain.stderrLines.count == 1, "\(plain.stderr)")
    }

    @Test("file:// to a FIFO, ftp://, plain http to a remote host: refused at once, exit 4",
          arguments: ["fifo", "ftp://127.0.0.1/molam-form.tar.gz", "http://203.0.113.9/molam-form.tar.gz",
                      "gopher://127.0.0.1/x"])
    func otherSchemes(url: String) throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0")
        var target = url
        if url == "fifo" {
            let fifo = host.site.root + "/release.fifo"
            #expect(mkfifo(fifo, 0o600) == 0)
            target = "file://" + fifo
        }
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0") { $0["download_url"] = target }
        let tool = try startTool(["upgrade", "--config", host.configPath])
        let ended = waitUntil(timeout: 30) { tool.hasExited }
        if !ended { tool.kill(SIGKILL) }
        let result = try tool.wait()
        #expect(ended, "the run hung on \(target)")
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderrLines.count == 1 && result.stderr.contains("download_url"), "\(result.stderr)")
        #expect(try host.site.installedVersion() == "3.9.0")
        // The run lock is free again: the next cron run is not locked out.
        #expect(try host.run(["upgrade"]).status == 4)
    }
}
