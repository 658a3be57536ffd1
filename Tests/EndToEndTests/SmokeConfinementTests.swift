import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// Replaces a tree's smoke checks by one command check, and `bin/smoke` by `script` when given.
private func setSmoke(tree: String, run: [String], timeout: Int = 20, script: String? = nil) throws {
    let path = tree + "/molam-plugin.json"
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard var manifest = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw TestFailure("\(path) is not a JSON object")
    }
    manifest["smoke"] = [["type": "command", "run": run, "timeout_s": timeout] as [String: Any]]
    try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        .write(to: URL(fileURLWithPath: path))
    if let script {
        try script.write(toFile: tree + "/bin/smoke", atomically: false, encoding: .utf8)
        chmod(tree + "/bin/smoke", 0o755)
    }
}

/// A release of acme-pay `version` whose only smoke check runs `run` (and `script` as bin/smoke).
private func release(
    _ site: TestSite, version: String = "1.1.0", run: [String] = ["bin/smoke"], timeout: Int = 20,
    script: String? = nil
) throws -> (path: String, sha256: String) {
    let tree = try AcmePay.write(version: version, into: site.root + "/build-\(UUID().uuidString)")
    try setSmoke(tree: tree, run: run, timeout: timeout, script: script)
    return try site.release(from: tree, format: .tarGz)
}

private func readTrimmed(_ path: String) -> String? {
    (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Whether `pid` is gone (or a zombie nobody will wake), waiting for it with a deadline: SIGKILL is
/// delivered asynchronously.
private func processGone(_ pid: pid_t, within seconds: Double = 10) -> Bool {
    waitUntil(timeout: seconds) {
        // The state follows the command name, which is in parentheses.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }
}

/// A smoke script that records who ran it, with which groups and environment, in `<site root>/out`.
private let whoAmIScript = """
    #!/bin/sh
    out="$MOLAM_PLUGIN_DIR/../../../out"
    id -u > "$out/uid"
    id -G > "$out/groups"
    env > "$out/env"
    echo "smoke ran"

    """

@Suite("smoke commands: confined to the tree, least privilege, nothing left running")
struct SmokeConfinementTests {
    /// A site whose installed acme-pay runs `whoAmIScript`, with a world-writable `out/` beside
    /// (not above) the plugin for the script's answers.
    private func whoAmISite() throws -> TestSite {
        let site = try AcmePay.site()
        try setSmoke(tree: site.pluginDirectory, run: ["bin/smoke"], script: whoAmIScript)
        try FileManager.default.createDirectory(atPath: site.root + "/out", withIntermediateDirectories: true)
        chmod(site.root + "/out", 0o777)
        return site
    }

    /// Runs `verify --json` and returns the exit status and the first check's detail.
    private func verify(_ site: TestSite, environment: [String: String] = [:]) throws -> (Int32, String, String) {
        let result = try runTool(["verify", "--json"] + site.siteOptions, environment: environment)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let detail = ((json?["checks"] as? [[String: Any]])?.first?["detail"] as? String) ?? ""
        return (result.status, detail, result.stderr)
    }

    @Test("A root-owned tree whose bin/ the web user owns runs its smoke check as www-data, never as root",
          .enabled(if: geteuid() == 0, "needs root to switch users"))
    func webUserDirectoryInRootTree() throws {
        let site = try whoAmISite()
        try shell(["chown", "33:33", site.pluginDirectory + "/bin"])
        let secret = "agent-secret-" + UUID().uuidString
        let (status, detail, stderr) = try verify(site, environment: ["MOLAM_TEST_SECRET": secret])
        #expect(status == 0, "\(stderr)")
        #expect(readTrimmed(site.root + "/out/uid") == "33")
        #expect(readTrimmed(site.root + "/out/groups") == "33")   // no supplementary group of root's
        #expect(detail == "smoke ran (ran as www-data)")
        // The agent's environment is not handed over; the command gets a fixed one.
        let env = readTrimmed(site.root + "/out/env") ?? ""
        #expect(!env.contains(secret))
        #expect(env.contains("PATH=/usr/local/bin:/usr/bin:/bin"))
        #expect(env.contains("MOLAM_PLUGIN_VERSION=1.0.0"))
        #expect(env.contains("MOLAM_DB=sqlite://\(site.databasePath)"))
    }

    @Test("A smoke check run as the web user gains nothing from a set-user-ID root program",
          .enabled(if: geteuid() == 0, "needs root to switch users"))
    func noNewPrivileges() throws {
        let site = try whoAmISite()
        let program = site.root + "/suid-id"
        try shell(["cp", "/usr/bin/id", program])
        chmod(program, 0o4755)
        try setSmoke(tree: site.pluginDirectory, run: ["bin/smoke"], script: """
            #!/bin/sh
            "$MOLAM_PLUGIN_DIR/../../../suid-id" -u > "$MOLAM_PLUGIN_DIR/../../../out/euid"

            """)
        try shell(["chown", "33:33", site.pluginDirectory + "/bin"])
        // The control: run directly by the web user, the program does make it root.
        try shell(["sh", "-c", "runuser -u www-data -- \(program) -u > \(site.root)/out/control"])
        #expect(readTrimmed(site.root + "/out/control") == "0")
        let (status, detail, stderr) = try verify(site)
        #expect(status == 0, "\(stderr)")
        #expect(detail.hasSuffix("(ran as www-data)"))
        #expect(readTrimmed(site.root + "/out/euid") == "33")
    }

    @Test("A tree nobody but root can write, under a root-owned plugins/, runs as root (the agent's user)")
    func rootOwnedAllTheWay() throws {
        let site = try whoAmISite()
        let (status, detail, stderr) = try verify(site)
        #expect(status == 0, "\(stderr)")
        #expect(readTrimmed(site.root + "/out/uid") == "\(geteuid())")
        #expect(detail.hasPrefix("smoke ran (ran as "))
    }

    @Test("A world-writable directory above the tree makes the check run as nobody; a sticky one does not",
          .enabled(if: geteuid() == 0, "needs root to switch users"))
    func worldWritableAncestor() throws {
        let site = try whoAmISite()
        let plugins = site.root + "/wp-content/plugins"
        chmod(plugins, 0o777)
        var (status, detail, stderr) = try verify(site)
        #expect(status == 0, "\(stderr)")
        #expect(readTrimmed(site.root + "/out/uid") == "65534")
        #expect(detail == "smoke ran (ran as nobody)")
        // Sticky: others may add entries but not replace root's plugin directory.
        chmod(plugins, 0o1777)
        (status, detail, stderr) = try verify(site)
        #expect(status == 0, "\(stderr)")
        #expect(readTrimmed(site.root + "/out/uid") == "0")
        #expect(detail == "smoke ran (ran as root)")
    }

    @Test("A directory above the tree writable by the web server's group runs the check as nobody in that group",
          .enabled(if: geteuid() == 0, "needs root to switch users"))
    func groupWritableAncestor() throws {
        let site = try whoAmISite()
        let plugins = site.root + "/wp-content/plugins"
        try shell(["chown", "0:33", plugins])
        chmod(plugins, 0o775)
        let (status, detail, stderr) = try verify(site)
        #expect(status == 0, "\(stderr)")
        #expect(readTrimmed(site.root + "/out/uid") == "65534")
        #expect(readTrimmed(site.root + "/out/groups") == "33")
        #expect(detail == "smoke ran (ran as nobody:www-data)")
    }

    @Test("A smoke command that is a symlink, even to a file inside the tree, is refused and its target never runs")
    func symlinkRefused() throws {
        let site = try whoAmISite()
        let marker = site.root + "/out/evil-ran"
        let evil = FileManager.default.temporaryDirectory.appendingPathComponent("evil-\(UUID().uuidString)").path
        defer { unlink(evil) }
        try "#!/bin/sh\ntouch '\(marker)'\n".write(toFile: evil, atomically: false, encoding: .utf8)
        chmod(evil, 0o755)
        unlink(site.pluginDirectory + "/bin/smoke")
        symlink(evil, site.pluginDirectory + "/bin/smoke")
        var (status, detail, stderr) = try verify(site)
        #expect(status == 1)
        #expect(detail.contains("'bin/smoke' is a symbolic link"), "\(detail)")
        #expect(stderr.isEmpty, "\(stderr)")
        let plain = try site.run(["verify"])
        #expect(plain.status == 1)
        #expect(plain.stderrLines.count == 1, "\(plain.stderr)")
        #expect(plain.stderr.contains(
            "smoke check 1 failed: cannot run 'bin/smoke': 'bin/smoke' is a symbolic link"))
        #expect(!FileManager.default.fileExists(atPath: marker))

        // A link inside the tree is refused as well: a link can be re-pointed between check and use.
        unlink(site.pluginDirectory + "/bin/smoke")
        try whoAmIScript.write(toFile: site.pluginDirectory + "/real-smoke", atomically: false, encoding: .utf8)
        chmod(site.pluginDirectory + "/real-smoke", 0o755)
        symlink("../real-smoke", site.pluginDirectory + "/bin/smoke")
        (status, detail, stderr) = try verify(site)
        #expect(status == 1)
        #expect(detail.contains("symbolic link"), "\(detail)")
        #expect(!FileManager.default.fileExists(atPath: site.root + "/out/uid"))
        // A directory on the way that is a link is refused too.
        rename(site.pluginDirectory + "/bin", site.pluginDirectory + "/bin2")
        symlink("bin2", site.pluginDirectory + "/bin")
        (status, detail, _) = try verify(site)
        #expect(status == 1)
        #expect(detail.contains("'bin' is a symbolic link"), "\(detail)")
    }

    @Test("A release whose smoke command is absolute or leaves the tree is refused (exit 4), nothing changed",
          arguments: [["/bin/sh", "-c", "id"], ["../../x"], ["bin/../../../x"], [""]])
    func escapingCommandRefused(run: [String]) throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let result = try site.upgrade(try release(site, run: run))
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("smoke[0].run"), "\(result.stderr)")
        #expect(try site.snapshot() == before)
        #expect(try site.installedVersion() == "1.0.0")
    }

    /// A smoke script that starts a daemon the way real ones do (fork, setsid, the starter exits so
    /// the daemon is orphaned), waits until it has written its pid, then `ending`.
    private static func daemonScript(ending: String) -> String {
        """
        #!/bin/sh
        marker="$MOLAM_PLUGIN_DIR/../../../daemon.pid"
        ( setsid sh -c 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 600' "$marker" \
            </dev/null >/dev/null 2>&1 & )
        while [ ! -s "$marker" ]; do :; done
        \(ending)

        """
    }

    @Test("A daemon started by a smoke check is killed when the check passes and when it times out",
          arguments: [true, false])
    func daemonDiesWithCheck(passes: Bool) throws {
        let site = try AcmePay.site()
        let marker = site.root + "/daemon.pid"
        let script = Self.daemonScript(ending: passes ? "echo started a daemon" : "exec sleep 600")
        let result = try site.upgrade(try release(site, timeout: passes ? 20 : 2, script: script))
        let pid = pid_t(readTrimmed(marker) ?? "") ?? 0
        defer { if pid > 0 { kill(pid, SIGKILL) } }
        #expect(pid > 0, "the daemon never started: \(result.stderr)")
        // The outcome is the check's own: the clean-up does not turn a pass into a failure.
        #expect(result.status == (passes ? 0 : 1), "\(result.stderr)")
        if !passes { #expect(result.stderr.contains("timed out after 2 s"), "\(result.stderr)") }
        #expect(processGone(pid), "daemon \(pid) outlived its smoke check")
    }

    @Test("When the agent is killed during a smoke check, the check's process dies with it")
    func checkDiesWithAgent() throws {
        let site = try AcmePay.site()
        let hanging = try AcmePay.release(site, version: "1.1.0", variant: .hangingSmoke, format: .tarGz)
        let marker = site.root + "/smoke.pid"
        let started = try startTool(
            ["upgrade", "--archive", hanging.path, "--sha256", hanging.sha256] + site.siteOptions)
        #expect(waitUntil(timeout: 60) { FileManager.default.fileExists(atPath: marker) })
        let pid = pid_t(readTrimmed(marker) ?? "") ?? 0
        defer { if pid > 0 { kill(pid, SIGKILL) } }
        #expect(pid > 0)
        #expect(!processGone(pid, within: 0))
        started.kill(SIGKILL)
        _ = try started.wait()
        #expect(processGone(pid), "smoke process \(pid) outlived the killed agent")
    }
}
