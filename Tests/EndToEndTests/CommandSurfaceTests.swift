import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// Runs the binary with stdout (and, if asked, stderr) on a pipe whose reader has already gone:
/// what `molam-upgrade status | head -1` does once head has its line. Returns the exit status (128 +
/// signal when killed) and what went to stderr when it was a file.
private func runIntoClosedPipe(_ arguments: [String], closeStderrToo: Bool = false) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binaryPath)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("molam-err-\(UUID().uuidString)").path
    defer { unlink(errPath) }
    let err = Pipe()
    if closeStderrToo {
        process.standardError = err
        try err.fileHandleForReading.close()
    } else {
        guard FileManager.default.createFile(atPath: errPath, contents: nil),
              let handle = FileHandle(forWritingAtPath: errPath) else { throw TestFailure("stderr file") }
        process.standardError = handle
    }
    try out.fileHandleForReading.close()
    try process.run()
    process.waitUntilExit()
    let status = process.terminationReason == .uncaughtSignal
        ? 128 + process.terminationStatus : process.terminationStatus
    return (status, (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// The command line's own defects: output into a closed pipe, local archives that are not files,
/// read commands that needed the whole site.
@Suite("command surface, end to end")
struct CommandSurfaceTests {
    @Test("status into a closed pipe exits 0, quietly, without a backtrace")
    func statusIntoClosedPipe() throws {
        let site = try TestSite.molamForm()
        let (status, stderr) = try runIntoClosedPipe(["status"] + site.siteOptions)
        #expect(status == 0, "\(stderr)")
        #expect(stderr.isEmpty, "\(stderr)")
        let (json, jsonErr) = try runIntoClosedPipe(["history", "--json"] + site.siteOptions)
        #expect(json == 0, "\(jsonErr)")
    }

    @Test("A successful upgrade into a closed pipe exits 0 and the upgrade is done")
    func upgradeIntoClosedPipe() throws {
        let site = try TestSite.molamForm()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz)
        let (status, stderr) = try runIntoClosedPipe(
            ["upgrade", "--archive", release.path, "--sha256", release.sha256] + site.siteOptions)
        #expect(status == 0, "\(stderr)")
        #expect(try site.installedVersion() == "4.0.0")
        // An error with both streams closed keeps its own exit code.
        let (usage, _) = try runIntoClosedPipe(["history", "--limit", "x"] + site.siteOptions, closeStderrToo: true)
        #expect(usage == 2)
    }

    @Test("--archive naming a FIFO, a directory or a device: exit 2 at once, one line, nothing changed",
          arguments: ["fifo", "directory", "/dev/zero"])
    func archiveMustBeRegularFile(kind: String) throws {
        let site = try TestSite.molamForm()
        var path = kind
        if kind == "fifo" {
            path = site.root + "/release.fifo"
            #expect(mkfifo(path, 0o600) == 0)
        } else if kind == "directory" {
            path = site.releases
        }
        let before = try site.snapshot()
        for command in ["upgrade", "check"] {
            let tool = try startTool(
                [command, "--archive", path, "--sha256", String(repeating: "a", count: 64)] + site.siteOptions)
            let ended = waitUntil(timeout: 30) { tool.hasExited }
            if !ended { tool.kill(SIGKILL) }
            let result = try tool.wait()
            #expect(ended, "\(command) hung on \(kind)")
            #expect(result.status == 2, "\(command): \(result.stderr)")
            #expect(result.stderrLines.count == 1 && result.stderr.contains("not a regular file"),
                    "\(command): \(result.stderr)")
        }
        #expect(try site.snapshot() == before)
        // The lock was released: the next run is not refused with 75.
        #expect(try site.run(["status"]).status == 0)
    }

    @Test("history, stats and status read the journal with --state-dir alone")
    func stateDirectoryAlone() throws {
        let site = try TestSite.molamForm()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz)
        #expect(try site.upgrade(release).status == 0)
        let state = ["--state-dir", site.stateDirectory]

        let history = try runTool(["history"] + state)
        #expect(history.status == 0, "\(history.stderr)")
        #expect(history.stdout.contains("upgrade molam-form 3.9.0 → 4.0.0  succeeded"))

        let stats = try runTool(["stats", "--json"] + state)
        #expect(stats.status == 0, "\(stats.stderr)")
        let figures = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        let plugins = try #require(figures["plugins"] as? [[String: Any]])
        #expect(plugins.count == 1 && plugins.first?["plugin"] as? String == "molam-form")
        #expect(plugins.first?["upgrades"] as? Int == 1)

        let status = try runTool(["status", "--json"] + state)
        #expect(status.status == 0, "\(status.stderr)")
        let install = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        #expect(install["plugin_dir"] as? String == site.pluginDirectory)
        #expect(install["installed_version"] as? String == "4.0.0")
        #expect((install["last_run"] as? [String: Any])?["status"] as? String == "succeeded")

        let other = try runTool(["history", "--plugin", "another-plugin"] + state)
        #expect(other.status == 0 && other.stdout.contains("no runs yet"), "\(other.stdout)")
        let empty = try runTool(["history", "--state-dir", site.root + "/no-state-here"])
        #expect(empty.status == 0 && empty.stdout.contains("no runs yet"))
        // A changing command still needs the site.
        #expect(try runTool(["rollback"] + state).status == 2)
    }

    @Test("With several installs configured, history, stats and status need no --plugin; --plugin filters")
    func severalInstalls() throws {
        let second = try TestSite.molamForm()
        let host = try CentralAPISite(extraInstalls: [
            ["name": "molam-form-2", "plugin_dir": second.pluginDirectory, "db": "sqlite://" + second.databasePath],
        ])
        let release = try host.site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz)
        let upgrade = try host.run([
            "upgrade", "--plugin", second.pluginDirectory, "--archive", release.path, "--sha256", release.sha256,
            "--no-report",
        ])
        #expect(upgrade.status == 0, "\(upgrade.stderr)")

        let status = try host.run(["status", "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let installs = try #require(
            (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["installs"]
                as? [[String: Any]])
        #expect(installs.map { $0["installed_version"] as? String } == ["3.9.0", "4.0.0"])

        let history = try host.run(["history"])
        #expect(history.status == 0, "\(history.stderr)")
        #expect(history.stdout.contains("3.9.0 → 4.0.0"))
        let filtered = try host.run(["history", "--plugin", host.site.pluginDirectory])
        #expect(filtered.status == 0 && filtered.stdout.contains("no runs yet"), "\(filtered.stdout)")
        let stats = try host.run(["stats"])
        #expect(stats.status == 0, "\(stats.stderr)")
        #expect(stats.stdout.contains("molam-form"))
    }

    @Test("--wp-config, --db-password-file and --allow-wide-grants: read, refused where they do not fit, never a password")
    func mysqlOptions() throws {
        let site = try TestSite.molamForm()
        let password = "e2e-Pa55-never-shown"
        let socket = site.root + "/no-mysqld.sock"
        let wordPress = site.root + "/wp-config.php"
        try """
            <?php
            define( 'DB_NAME', 'shop' );
            define( 'DB_USER', 'shopuser' );
            define( 'DB_PASSWORD', '\(password)' );
            define( 'DB_HOST', 'localhost:\(socket)' );
            $table_prefix = 'shop7_';
            """.write(toFile: wordPress, atomically: true, encoding: .utf8)
        let place = ["--plugin-dir", site.pluginDirectory, "--state-dir", site.stateDirectory]

        let status = try runTool(["status", "--json", "--wp-config", wordPress] + place)
        #expect(status.status == 0, "\(status.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect(object?["db"] as? String == "mysql://shopuser@localhost/shop?socket=\(socket)")
        #expect(!status.stdout.contains(password) && !status.stderr.contains(password))

        let before = try site.snapshot()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz)
        let refused: [([String], String)] = [
            // Whatever the MySQL engine does with a socket nobody listens on, nothing changes.
            (["upgrade", "--archive", release.path, "--sha256", release.sha256, "--wp-config", wordPress,
              "--allow-wide-grants"] + place, "mysql://shopuser@localhost/shop"),
            (["status", "--db", "mysql://shopuser:\(password)@localhost/shop"] + place, "password_file"),
            (["status", "--db", "sqlite://" + site.databasePath, "--wp-config", wordPress] + place,
             "--db and --wp-config"),
            (["status", "--db", "sqlite://" + site.databasePath, "--db-password-file", site.root + "/pw"] + place,
             "--db-password-file"),
            (["status", "--db", "sqlite://" + site.databasePath, "--allow-wide-grants"] + place,
             "--allow-wide-grants"),
        ]
        for (arguments, message) in refused {
            let result = try runTool(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderrLines.count == 1 && result.stderr.contains(message), "\(result.stderr)")
            #expect(!result.stderr.contains(password) && !result.stdout.contains(password))
        }
        #expect(try site.snapshot() == before)

        let help = try runTool(["upgrade", "--help"])
        for flag in ["--wp-config PATH", "--db-password-file PATH", "--allow-wide-grants"] {
            #expect(help.stdout.contains(flag))
        }
    }
}
