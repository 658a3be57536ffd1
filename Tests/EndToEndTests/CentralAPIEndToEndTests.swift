import Foundation
import TestSupport
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The built binary against a fake central API on 127.0.0.1: rollouts, signed releases, and reports
/// that arrive once each, in order, whatever the API does in between.
@Suite("central API, end to end")
struct CentralAPIEndToEndTests {
    @Test("A cron run upgrades through the API: rollout, signed release, download, and every report once, in order")
    func cronUpgrade() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0")
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        let result = try host.run(["upgrade", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.isEmpty && result.stderr.isEmpty, "quiet under cron")
        #expect(try host.site.installedVersion() == "4.0.0")

        let kinds = host.reportKinds
        #expect(kinds.first == "upgrade")
        #expect(kinds.filter { $0.hasPrefix("step:") } == [
            "step:lock", "step:recover", "step:resolve", "step:eligibility", "step:download", "step:stage",
            "step:backup", "step:swap", "step:migrate", "step:verify", "step:commit",
        ])
        #expect(kinds.contains("backup"))
        #expect(kinds.last == "log")
        #expect(host.api.duplicateDeliveries == 0 && host.api.idempotencyConflicts == 0)
        #expect(host.api.reports.dropFirst().allSatisfy { !$0.path.contains("{id}") })
        let log = try #require(host.api.reports.last)
        #expect(log.body["status"] == "not_required")
        #expect(log.body["upgrade_id"] == "upg-1")
        let upgrade = try #require(host.api.reports.first)
        #expect(upgrade.body["merchant_id"] == host.merchantID)
        #expect(upgrade.body["from_version"] == "3.9.0" && upgrade.body["to_version"] == "4.0.0")
        let backup = try #require(host.api.reports.first { $0.path == "/api/plugins/backup" })
        #expect(backup.body["version"] == "3.9.0")
        #expect(Int(backup.body["backup_size_bytes"] ?? "") ?? 0 > 0)
        // Every API request carried the agent's user agent; the download went without the token.
        #expect(host.api.requests.allSatisfy { ($0.header("user-agent") ?? "").hasPrefix("molam-upgrade/") })
        #expect(host.api.unauthorizedRequests == 0)

        let status = try host.run(["status", "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        #expect(json["pending_reports"] as? Int == 0)
        #expect(json["installed_version"] as? String == "4.0.0")
    }

    @Test("A cron run with nothing to do makes exactly one request and changes nothing")
    func nothingToDo() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "3.9.0")
        let before = try host.site.snapshot()
        let result = try host.run(["upgrade", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["status"] as? String == "skipped")
        #expect((json["message"] as? String ?? "").contains("already"))
        print("requests made by a cron run with nothing to do: \(host.api.requests.count)")
        #expect(host.api.requests.count == 1)
        #expect(host.api.reports.isEmpty)
        #expect(try host.site.snapshot() == before)
    }

    @Test("Paused, not selected, outside the geo cohort, outside the tier cohort: skipped with the reason, one request",
          arguments: [
              ("paused", 100.0, "random", [String](), [String](), "paused"),
              ("active", 0.0, "random", [], [], "bucket"),
              ("active", 100.0, "geo", ["CI", "ML"], [], "country SN"),
              ("active", 100.0, "merchant_tier", [], ["platinum"], "tier"),
          ])
    func skips(status: String, percentage: Double, strategy: String, countries: [String], tiers: [String],
               reason: String) throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0", percentage: percentage, strategy: strategy, status: status,
                        countries: countries, tiers: tiers)
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        let before = try host.site.snapshot()
        let result = try host.run(["upgrade"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("skipped: "))
        #expect(result.stdout.contains(reason), "\(result.stdout)")
        #expect(host.api.requests.count == 1)
        #expect(try host.site.snapshot() == before)
        let check = try host.run(["check"])
        #expect(check.stdout.hasPrefix("skip: ") && check.stdout.contains(reason), "\(check.stdout)")
    }

    @Test("Geo and tier cohorts are case-insensitive, and --force skips eligibility only")
    func cohortsAndForce() throws {
        let host = try CentralAPISite(country: "sn", tier: "Gold")
        host.setRollout(version: "4.0.0", strategy: "geo", countries: ["SN", "CI"])
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        #expect(try host.run(["check"]).stdout.hasPrefix("upgrade: "))
        host.setRollout(version: "4.0.0", strategy: "merchant_tier", tiers: ["GOLD"])
        #expect(try host.run(["check"]).stdout.hasPrefix("upgrade: "))
        host.setRollout(version: "4.0.0", status: "paused")
        #expect(try host.run(["check"]).stdout.hasPrefix("skip: "))
        let forced = try host.run(["upgrade", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try host.site.installedVersion() == "4.0.0")
    }

    @Test("check reports the formula's decision for many merchant ids")
    func checkMatchesFormula() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0", percentage: 30)
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        var selected = 0
        for index in 0..<12 {
            let merchant = String(format: "00000000-0000-4000-8000-%012d", index * 7919)
            try host.writeConfig(apiURL: host.api.baseURL)
            let config = try String(contentsOfFile: host.configPath, encoding: .utf8)
                .replacingOccurrences(of: host.merchantID, with: merchant)
            unlink(host.configPath)
            _ = FileManager.default.createFile(
                atPath: host.configPath, contents: Data(config.utf8), attributes: [.posixPermissions: 0o600])
            let result = try host.run(["check", "--json"])
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let expected = try RolloutPolicy.bucket(plugin: "molam-form", version: "4.0.0", merchantID: merchant) < 3000
            #expect((json["decision"] as? String == "upgrade") == expected, "\(merchant): \(json)")
            if expected { selected += 1 }
        }
        #expect(selected > 0 && selected < 12)
    }

    @Test("API unreachable or answering garbage for the release check: exit 75, one line, nothing changed")
    func unavailable() throws {
        // A port nothing listens on: the fake, stopped.
        let dead = try FakeCentralAPI(token: "x")
        let deadURL = dead.baseURL
        dead.stop()
        let host = try CentralAPISite(apiURL: deadURL)
        let before = try host.site.snapshot()
        let down = try host.run(["upgrade"])
        #expect(down.status == 75, "\(down.stderr)")
        #expect(down.stderrLines.count == 1 && down.stderr.contains("central API"), "\(down.stderr)")
        #expect(try host.site.snapshot() == before)

        try host.writeConfig(apiURL: host.api.baseURL)
        host.setRollout(version: "4.0.0")
        host.api.inject(.malformedJSON, on: .rollouts)
        let garbage = try host.run(["upgrade"])
        #expect(garbage.status == 75, "\(garbage.stderr)")
        #expect(garbage.stderrLines.count == 1)
        #expect(try host.site.snapshot() == before)
        #expect(!(garbage.stderr + down.stderr).contains(CentralAPISite.token))
    }

    @Test("5xx and 429 with Retry-After on the rollout are retried, and the upgrade goes ahead")
    func retries() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0")
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        host.api.inject(.status(503), on: .rollouts)
        host.api.inject(.tooManyRequests(retryAfter: "1"), on: .releases)
        host.api.inject(.dropConnection, on: .downloads)
        let result = try host.run(["upgrade"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try host.site.installedVersion() == "4.0.0")
        #expect(host.api.requests.filter { $0.path.hasPrefix("/api/plugins/rollouts/") }.count == 2)
        #expect(host.api.requests.filter { $0.path.hasPrefix("/api/plugins/releases/") }.count == 2)
    }

    @Test("A tampered signature, an unsigned release, a tampered archive or a wrong size: exit 4, nothing changed",
          arguments: ["signature", "unsigned", "sha256", "size", "version"])
    func tampering(kind: String) throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0")
        let honest = try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        switch kind {
        case "signature":
            try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0") { object in
                var bytes = Data(base64Encoded: object["signature"] as? String ?? "") ?? Data()
                if !bytes.isEmpty { bytes[0] ^= 1 }
                object["signature"] = bytes.base64EncodedString()
            }
        case "unsigned":
            try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0", sign: false)
        case "sha256":
            // The archive served is another release's bytes: signed metadata, wrong content.
            let other = try host.site.release(from: TestSite.fixturePlugin("4.0.2"), format: .tarGz)
            let data = try #require(FileManager.default.contents(atPath: other.path))
            host.api.serveFile(name: "molam-form-4.0.0.tar.gz", data: data)
            _ = honest
        case "size":
            try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0") { object in
                object["size_bytes"] = ((object["size_bytes"] as? Int64) ?? 0) + 1
            }
        default:
            try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0") { object in
                object["version"] = "4.0.1"
            }
        }
        let before = try host.site.snapshot()
        let result = try host.run(["upgrade"])
        #expect(result.status == 4, "\(kind): \(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(try host.site.snapshot() == before)
        // Refused before any change; the refusal is reported.
        #expect(host.reportKinds.first == "upgrade")
        #expect(host.reportKinds.last == "log")
    }

    @Test("API down during an upgrade that fails: the rollback completes, and a later flush delivers every report once, in order")
    func apiDownThenFlush() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.2")
        try host.publish(TestSite.fixturePlugin("4.0.2"), version: "4.0.2")
        let before = try host.site.snapshot()
        // The rollout and release answer; every report is refused with 503, then the API drops.
        host.api.setPersistentFault(.status(503), on: .reports)
        let result = try host.run(["upgrade"])
        #expect(result.status == 1, "\(result.stderr)")
        let after = try host.site.snapshot()
        #expect(after.tree == before.tree && after.databaseDump == before.databaseDump)
        #expect(host.api.reports.isEmpty)

        let status = try host.run(["status", "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let pending = json["pending_reports"] as? Int ?? 0
        #expect(pending > 10)
        #expect(json["oldest_pending_report_age_s"] is Int)

        host.api.setPersistentFault(.dropConnection, on: .reports)
        let stillDown = try host.run(["flush"])
        #expect(stillDown.status == 75)
        #expect(host.api.reports.isEmpty)

        // The API comes back; one answer is lost after the API processed it.
        host.api.clearFaults()
        host.api.inject(.acceptThenDrop, on: .reports)
        host.api.inject(.tooManyRequests(retryAfter: "0"), on: .reports)
        let flush = try host.run(["flush", "--json"])
        #expect(flush.status == 0, "\(flush.stdout) \(flush.stderr)")
        #expect(host.api.reports.count == pending)
        #expect(host.api.idempotencyConflicts == 0)
        let kinds = host.reportKinds
        #expect(kinds.first == "upgrade")
        let initiate = try #require(kinds.firstIndex(of: "initiate"))
        let complete = try #require(kinds.firstIndex(of: "complete"))
        #expect(initiate < complete)
        #expect(kinds.last == "log")
        let completeReport = host.api.reports[complete]
        #expect(completeReport.path == "/api/plugins/rollback/rb-1/complete")
        #expect(completeReport.body["success"] == "true")
        #expect(host.api.reports.last?.body["status"] == "success")
        #expect(host.api.reports.last?.body["rollback_version"] == "3.9.0")
        #expect(kinds.contains("step:rollback"))

        // Nothing left to send: a second flush sends nothing.
        let requests = host.api.requests.count
        #expect(try host.run(["flush"]).status == 0)
        #expect(host.api.requests.count == requests)
    }

    @Test("A slow API does not change the outcome of a rollback")
    func slowAPIDuringRollback() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.1")
        try host.publish(TestSite.fixturePlugin("4.0.1"), version: "4.0.1")
        host.api.inject(.slow(seconds: 0.3), on: .reports, times: 3)
        let before = try host.site.snapshot()
        let result = try host.run(["upgrade", "--json"])
        #expect(result.status == 1, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["rollback_status"] as? String == "success")
        #expect(try host.site.snapshot() == before)
        #expect(host.reportKinds.contains("complete"))
        #expect(host.api.idempotencyConflicts == 0)
    }

    @Test("A rollout rolled back upstream for the version this host runs rolls it back to the previous one")
    func rolloutRolledBack() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0")
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        #expect(try host.run(["upgrade"]).status == 0)
        #expect(try host.site.installedVersion() == "4.0.0")

        host.setRollout(version: "4.0.0", status: "rolled_back")
        #expect(try host.run(["check"]).stdout.hasPrefix("rollback: "))
        let result = try host.run(["upgrade", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try host.site.installedVersion() == "3.9.0")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["command"] as? String == "rollback")
        let history = try host.run(["history", "--json", "--limit", "1"])
        let runs = try #require(
            (try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [String: Any])?["runs"] as? [[String: Any]])
        #expect(runs.first?["trigger"] as? String == "automatic")
        let initiate = try #require(host.api.reports.first { $0.path == "/api/plugins/rollback/initiate" })
        #expect(initiate.body["trigger"] == "automatic")
        // Once back on 3.9.0, the rolled-back rollout asks for nothing more.
        let again = try host.run(["upgrade"])
        #expect(again.status == 0 && again.stdout.hasPrefix("skipped: "), "\(again.stdout)")
        #expect(try host.site.installedVersion() == "3.9.0")
    }

    @Test("An older release than the highest this install accepted is refused unless --force")
    func versionFloor() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.0")
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        #expect(try host.run(["upgrade"]).status == 0)
        #expect(try host.run(["rollback", "--to", "3.9.0"]).status == 0)
        #expect(try host.site.installedVersion() == "3.9.0")

        // A 3.9.5: newer than what runs, older than what this install already accepted.
        let tree = host.site.root + "/build/molam-form"
        try shell(["mkdir", "-p", host.site.root + "/build"])
        try shell(["cp", "-a", TestSite.fixturePlugin("3.9.0"), tree])
        // The version is written in the manifest and in the plugin's main file (its smoke check reads it).
        for file in ["molam-plugin.json", "molam-form.php"] {
            let path = tree + "/" + file
            let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "3.9.0", with: "3.9.5")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        host.setRollout(version: "3.9.5", id: "r-2")
        try host.publish(tree, version: "3.9.5")
        let refused = try host.run(["upgrade"])
        #expect(refused.status == 4, "\(refused.stderr)")
        #expect(refused.stderr.contains("highest version"), "\(refused.stderr)")
        #expect(try host.site.installedVersion() == "3.9.0")
        let forced = try host.run(["upgrade", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try host.site.installedVersion() == "3.9.5")
    }

    @Test("The token never appears in output, the journal, or any process's command line or environment")
    func tokenNeverLeaks() throws {
        let host = try CentralAPISite()
        host.setRollout(version: "4.0.2")
        try host.publish(TestSite.fixturePlugin("4.0.2"), version: "4.0.2")
        // Slow answers keep the agent alive long enough to read its /proc entries.
        host.api.inject(.slow(seconds: 0.5), on: .rollouts)
        let tool = try startTool(["upgrade", "--json", "--config", host.configPath])
        var seen: [String] = []
        _ = waitUntil(timeout: 10) {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(name) != nil {
                for file in ["cmdline", "environ"] {
                    if let data = FileManager.default.contents(atPath: "/proc/\(name)/\(file)") {
                        seen.append(String(decoding: data, as: UTF8.self))
                    }
                }
            }
            return tool.hasExited
        }
        let result = try tool.wait()
        #expect(result.status == 1, "\(result.stderr)")
        #expect(!seen.isEmpty)
        #expect(!seen.contains { $0.contains(CentralAPISite.token) })
        #expect(!result.stdout.contains(CentralAPISite.token) && !result.stderr.contains(CentralAPISite.token))
        let state = try host.stateBytes()
        #expect(state.range(of: Data(CentralAPISite.token.utf8)) == nil)
        #expect(host.api.requests.filter { $0.path.hasPrefix("/api/") }
            .allSatisfy { $0.header("authorization") == "Bearer " + CentralAPISite.token })
        #expect(host.api.downloadsWithAuthorization <= 1)
    }

    @Test("One host, two shops: one cron run upgrades both, each with its own backups")
    func twoInstalls() throws {
        let second = try TestSite.molamForm()
        let host = try CentralAPISite(extraInstalls: [
            ["name": "molam-form", "plugin_dir": second.pluginDirectory, "db": "sqlite://" + second.databasePath],
        ])
        host.setRollout(version: "4.0.0")
        try host.publish(TestSite.fixturePlugin("4.0.0"), version: "4.0.0")
        let result = try host.run(["upgrade", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try host.site.installedVersion() == "4.0.0")
        #expect(try second.installedVersion() == "4.0.0")
        let status = try host.run(["status", "--json"])
        let installs = try #require(
            (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["installs"]
                as? [[String: Any]])
        #expect(installs.count == 2)
        #expect(installs.allSatisfy { ($0["backups"] as? [Any])?.count == 1 })
        // Each shop can be rolled back on its own.
        let rollback = try host.run(["rollback", "--plugin", second.pluginDirectory])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try second.installedVersion() == "3.9.0")
        #expect(try host.site.installedVersion() == "4.0.0")
        let ambiguous = try host.run(["rollback"])
        #expect(ambiguous.status == 2 && ambiguous.stderr.contains("--plugin"))
    }

    @Test("--archive URL downloads over HTTP with the checksum enforced, and sends no token without an API")
    func archiveURL() throws {
        let host = try CentralAPISite()
        let release = try host.site.release(from: TestSite.fixturePlugin("4.0.0"), format: .zip)
        let data = try #require(FileManager.default.contents(atPath: release.path))
        let url = host.api.serveFile(name: "molam-form-4.0.0.zip", data: data)
        let before = try host.site.snapshot()
        let wrong = try host.site.run(["upgrade", "--archive", url, "--sha256", String(repeating: "0", count: 64)])
        #expect(wrong.status == 4, "\(wrong.stderr)")
        #expect(try host.site.snapshot() == before)
        let result = try host.site.run(["upgrade", "--archive", url, "--sha256", release.sha256])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try host.site.installedVersion() == "4.0.0")
        #expect(host.api.downloadsWithAuthorization == 0)
    }
}
