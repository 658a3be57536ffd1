import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

@Suite("crashes, locks and the command line")
struct CrashAndConcurrencyTests {
    @Test("A second run while the lock is held exits 75 at once, naming the holder, and changes nothing")
    func lockHeld() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        try FileManager.default.createDirectory(atPath: site.stateDirectory, withIntermediateDirectories: true)
        // A real flock held by this test process, as another agent run would hold it.
        let lock = try StateLock(stateDirectory: site.stateDirectory, command: "upgrade (test holder)")
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let started = try startTool(
            ["upgrade", "--archive", release.path, "--sha256", release.sha256] + site.siteOptions)
        // It must not wait for the lock: it finishes long before the holder lets go.
        #expect(waitUntil(timeout: 20) { started.hasExited })
        let result = try started.wait()
        #expect(result.status == 75)
        #expect(result.stderr.contains("upgrade (test holder)"))
        #expect(result.stderrLines.count == 1)
        #expect(try site.snapshot() == before)
        withExtendedLifetime(lock) {}
    }

    @Test("kill -9 during the smoke check, then recover: the site is exactly the old version")
    func killDuringSmoke() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", variant: .hangingSmoke, format: .tarGz)
        let marker = site.root + "/smoke.pid"
        let started = try startTool(
            ["upgrade", "--archive", release.path, "--sha256", release.sha256] + site.siteOptions)
        let reachedSmoke = waitUntil(timeout: 60) { FileManager.default.fileExists(atPath: marker) }
        #expect(reachedSmoke)
        started.kill(SIGKILL)
        #expect(try started.wait().status == 128 + SIGKILL)
        killSmokeGroup(marker: marker)
        // Mid-upgrade the new version is live and migrated.
        #expect(try site.installedVersion() == "1.1.0")

        let status = try site.run(["status", "--json"])
        let unfinished = (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?[
            "unfinished_runs"] as? [Any]
        #expect(unfinished?.count == 1)

        let recovered = try site.run(["recover", "--json"])
        #expect(recovered.status == 0, "\(recovered.stderr)")
        let after = try site.snapshot()
        #expect(after.tree == before.tree)
        #expect(after.databaseDump == before.databaseDump)
        let history = try site.run(["history", "--json", "--limit", "1"])
        let run = ((try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [String: Any])?["runs"]
            as? [[String: Any]])?.first
        #expect(run?["status"] as? String == "rolled_back")
        #expect((run?["steps"] as? [[String: Any]])?.last?["name"] as? String == "rollback")
        // No staging or half-written directories are left.
        let work = (try? FileManager.default.contentsOfDirectory(atPath: site.stateDirectory + "/work")) ?? []
        #expect(work.isEmpty)
        // A second recover finds nothing to do.
        #expect(try site.run(["recover"]).stdout.contains("nothing to recover"))
    }

    @Test("An interrupted run is recovered first by the next upgrade, which then proceeds")
    func nextRunRecoversFirst() throws {
        let site = try AcmePay.site()
        let hanging = try AcmePay.release(site, version: "1.1.0", variant: .hangingSmoke, format: .zip)
        let marker = site.root + "/smoke.pid"
        let started = try startTool(
            ["upgrade", "--archive", hanging.path, "--sha256", hanging.sha256] + site.siteOptions)
        #expect(waitUntil(timeout: 60) { FileManager.default.fileExists(atPath: marker) })
        started.kill(SIGKILL)
        _ = try started.wait()
        killSmokeGroup(marker: marker)
        let good = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.upgrade(good)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("recovered run"))
        #expect(try site.installedVersion() == "1.1.0")
        #expect(try site.query("SELECT max(version) AS v FROM molam_schema_migrations").first?["v"].intValue == 3)
    }

    @Test("Bad command lines get one line on stderr and exit 2", arguments: [
        ["upgrade", "--frobnicate"],
        ["upgrade", "--archive"],
        ["upgrade", "--archive", "/tmp/x.zip"],
        ["upgrade", "--archive", "/tmp/x.zip", "--sha256", "xyz"],
        ["upgrade", "--archive", "/tmp/x.zip", "--sha256", String(repeating: "a", count: 64), "--to", "four"],
        ["upgrade", "--force=yes"],
        ["rollback", "--to", "1.0"],
        ["history", "--limit", "-3"],
        ["explode"],
        ["status", "extra-argument"],
        ["status", "--db", "postgres://x"],
        ["status", "--db", "sqlite://relative.db"],
        ["status", "--config", "/nonexistent/agent.json"],
    ])
    func badCommandLines(arguments: [String]) throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        var full = arguments
        if !arguments.contains("--db") && !arguments.contains("--config") && arguments.first != "explode" {
            full += site.siteOptions
        } else if arguments.contains("--db") {
            full += ["--plugin-dir", site.pluginDirectory, "--state-dir", site.stateDirectory]
        }
        let result = try runTool(full)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("molam-upgrade: "))
        #expect(result.stdout.isEmpty)
        #expect(try site.snapshot() == before)
        #expect(!FileManager.default.fileExists(atPath: site.stateDirectory + "/backups"))
    }

    @Test("--help works on every command and names its options")
    func help() throws {
        let overview = try runTool(["--help"])
        #expect(overview.status == 0)
        for command in ["upgrade", "check", "rollback", "backup", "verify", "recover", "status", "history", "stats",
                        "flush", "cleanup"] {
            #expect(overview.stdout.contains(command))
            let help = try runTool([command, "--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("USAGE: molam-upgrade \(command)"))
            #expect(try runTool(["help", command]).stdout == help.stdout)
        }
        #expect(try runTool(["upgrade", "--help"]).stdout.contains("--dry-run"))
        #expect(try runTool(["--version"]).stdout.hasPrefix("molam-upgrade "))
    }
}

/// A safety net: the hanging smoke script gets SIGKILL when the agent dies (PR_SET_PDEATHSIG), but
/// a test must not leave a 600 s sleep behind if that ever regresses.
private func killSmokeGroup(marker: String) {
    guard let text = try? String(contentsOfFile: marker, encoding: .utf8),
          let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return }
    kill(-pid, SIGKILL)
}
