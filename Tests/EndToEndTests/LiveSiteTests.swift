import Foundation
import MolamHTTP
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The host's PHP (installed by `make test`, like the other Debian packages the suite needs).
private let php = ["/usr/bin/php", "/usr/local/bin/php"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// A real PHP site on loopback (`php -S`, opcache on as Debian ships it) whose `version.php` loads
/// the live plugin's main file as WordPress would (by its absolute path) and prints its version.
private final class PHPSite {
    let docroot: String
    let url: String
    private let process: StartedProcess

    init(site: TestSite, revalidateFrequency: Int) throws {
        guard let php else { throw TestFailure("php is not installed: run `make test`, which installs php-cli") }
        docroot = site.root + "/www"
        try FileManager.default.createDirectory(atPath: docroot, withIntermediateDirectories: true)
        let stubs = "define('ABSPATH', __DIR__); function plugin_dir_path($f) { return dirname($f) . '/'; } "
            + "function plugin_dir_url($f) { return ''; } function add_action(...$a) {} function add_filter(...$a) {}"
        try """
            <?php \(stubs)
            include '\(site.pluginDirectory)/molam-form.php';
            if (function_exists('molam_boom')) molam_boom();
            echo MOLAM_FORM_VERSION;
            """.write(toFile: docroot + "/version.php", atomically: false, encoding: .utf8)
        try "<?php opcache_reset(); echo 'reset';".write(toFile: docroot + "/reset.php", atomically: false, encoding: .utf8)
        var started: (StartedProcess, String)?
        for _ in 0..<20 where started == nil {
            let port = Int.random(in: 20000...60000)
            let candidate = try StartedProcess(
                [php, "-d", "opcache.revalidate_freq=\(revalidateFrequency)", "-S", "127.0.0.1:\(port)", "-t", docroot],
                logPrefix: site.root + "/php-\(port)")
            let address = "http://127.0.0.1:\(port)/version.php"
            if waitUntil(timeout: 10, { Self.get(address) != nil || candidate.hasExited }) && !candidate.hasExited {
                started = (candidate, address)
            } else {
                candidate.stop()
            }
        }
        guard let started else { throw TestFailure("php -S did not start") }
        (process, url) = started
    }

    deinit { process.stop() }

    /// The body of a GET, or nil when the site does not answer.
    static func get(_ url: String) -> (status: Int, body: String)? {
        guard let client = try? HTTPClient(),
              let response = try? client.send(HTTPRequest(url: url, connectTimeout: 2, totalTimeout: 5))
        else { return nil }
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }
}

/// A background program whose output goes to files, stopped (SIGTERM, then reaped) at the end.
private final class StartedProcess {
    let pid: pid_t
    init(_ arguments: [String], logPrefix: String) throws {
        pid = try ChildProcess.spawn(
            arguments, directory: "/", environment: ["PATH": "/usr/bin:/bin"],
            output: .files(stdout: logPrefix + ".out", stderr: logPrefix + ".err"))
    }
    var hasExited: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == pid
    }
    func stop() {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// A copy of the fixture's `version` tree, changed by `edit`, packed as a release.
private func release(
    _ site: TestSite, from version: String = "4.0.0", as newVersion: String? = nil,
    edit: (String) throws -> Void = { _ in }
) throws -> (path: String, sha256: String) {
    let build = site.root + "/build-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
    let tree = build + "/molam-form"
    try shell(["cp", "-a", TestSite.fixturePlugin(version), tree])
    if let newVersion {
        for file in ["molam-form.php", "molam-plugin.json", "bin/smoke"] {
            let path = tree + "/" + file
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try text.replacingOccurrences(of: version, with: newVersion)
                .write(toFile: path, atomically: false, encoding: .utf8)
        }
    }
    try edit(tree)
    return try site.release(from: tree, format: .tarGz)
}

/// Adds `check` to a tree's manifest's smoke checks.
private func addCheck(_ check: [String: Any], to tree: String, first: Bool = false) throws {
    let path = tree + "/molam-plugin.json"
    guard var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        as? [String: Any], var smoke = manifest["smoke"] as? [Any]
    else { throw TestFailure("\(path) has no smoke list") }
    if first { smoke.insert(check, at: 0) } else { smoke.append(check) }
    manifest["smoke"] = smoke
    try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
}

private func history(_ site: TestSite) throws -> String {
    try site.run(["history"]).stdout
}

@Suite("checks before the swap: PHP syntax and before_swap commands against the staged tree")
struct PreSwapCheckTests {
    @Test("A release with a PHP syntax error is refused in stage (exit 4), naming the file and line; nothing changes",
          .enabled(if: php != nil))
    func syntaxErrorRefused() throws {
        let site = try TestSite.molamForm()
        let before = try site.snapshot()
        let broken = try release(site) { tree in
            try "<?php\nfunction molam_lazy() {\n    return 1\n}\n"
                .write(toFile: tree + "/includes/lazy.php", atomically: false, encoding: .utf8)
        }
        let result = try site.upgrade(broken)
        #expect(result.status == 4)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("includes/lazy.php line 4"))
        #expect(result.stderr.contains("syntax error"))
        #expect(try site.snapshot() == before)
        let backups = site.stateDirectory + "/backups/molam-form"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).isEmpty)
    }

    @Test("A compile error that is not a parse error (break outside a loop) is refused too", .enabled(if: php != nil))
    func compileErrorRefused() throws {
        let site = try TestSite.molamForm()
        let broken = try release(site) { tree in
            try "<?php\nfunction molam_x() {}\nbreak;\n"
                .write(toFile: tree + "/includes/x.php", atomically: false, encoding: .utf8)
        }
        let result = try site.upgrade(broken)
        #expect(result.status == 4)
        #expect(result.stderr.contains("includes/x.php line 3"))
        #expect(try site.installedVersion() == "3.9.0")
    }

    @Test("php_lint: false in agent.json turns the syntax check off", .enabled(if: php != nil))
    func lintCanBeTurnedOff() throws {
        let site = try TestSite.molamForm()
        let config = site.root + "/agent.json"
        let entry: [String: Any] = [
            "name": "molam-form", "plugin_dir": site.pluginDirectory, "db": "sqlite://" + site.databasePath,
        ]
        try JSONSerialization.data(withJSONObject: [
            "state_dir": site.stateDirectory, "php_lint": false, "plugins": [entry],
        ] as [String: Any]).write(to: URL(fileURLWithPath: config))
        chmod(config, 0o600)
        let good = try release(site)
        let result = try runTool(["upgrade", "--config", config, "--archive", good.path, "--sha256", good.sha256])
        #expect(result.status == 0, "\(result.stderr)")
        let log = try runTool(["history", "--config", config]).stdout
        #expect(!log.contains("PHP syntax"))
    }

    @Test("A before_swap check sees the staged release at the live path, as the tree's owner, while the site runs the old one",
          .enabled(if: geteuid() == 0))
    func beforeSwapSeesStagedTree() throws {
        let site = try TestSite.molamForm()
        try shell(["chown", "-R", "33:33", site.pluginDirectory])
        let outbox = site.root + "/seen"
        try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: true)
        chmod(outbox, 0o777)
        let good = try release(site) { tree in
            try """
                #!/bin/sh
                { id -u; echo "$MOLAM_PLUGIN_DIR"; echo "$MOLAM_CHECK_PHASE"; pwd
                  grep -m1 'Version:' "$MOLAM_PLUGIN_DIR/molam-form.php"; } > \(outbox)/pre.txt
                """.write(toFile: tree + "/bin/pre", atomically: false, encoding: .utf8)
            chmod(tree + "/bin/pre", 0o755)
            try addCheck(["type": "command", "run": ["bin/pre"], "when": "before_swap"], to: tree)
        }
        // The tree takes the live owner inside staging; the release's bin/pre must run as that user.
        let result = try site.upgrade(good)
        #expect(result.status == 0, "\(result.stderr)")
        let seen = try String(contentsOfFile: outbox + "/pre.txt", encoding: .utf8).split(separator: "\n")
        #expect(seen.count == 5)
        #expect(seen.first == "33")
        #expect(seen.dropFirst().first.map(String.init) == site.pluginDirectory)
        #expect(seen.dropFirst(2).first == "before_swap")
        #expect(seen.dropFirst(3).first.map(String.init) == site.pluginDirectory)
        #expect(seen.last?.contains("4.0.0") == true)
        #expect(try history(site).contains("1 before-swap check passed"))
    }

    @Test("A failing before_swap check refuses the release (exit 4) before any backup or swap")
    func failingBeforeSwapRefuses() throws {
        let site = try TestSite.molamForm()
        let before = try site.snapshot()
        let bad = try release(site) { tree in
            try "#!/bin/sh\necho 'payment gateway class missing' >&2\nexit 1\n"
                .write(toFile: tree + "/bin/pre", atomically: false, encoding: .utf8)
            chmod(tree + "/bin/pre", 0o755)
            try addCheck(["type": "command", "run": ["bin/pre"], "when": "before_swap"], to: tree)
        }
        let result = try site.upgrade(bad)
        #expect(result.status == 4)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("before-swap smoke check 1 (command bin/pre) failed: exit 1: payment gateway class missing"))
        #expect(try site.snapshot() == before)
    }

    @Test("when: before_swap on an http check is refused with the field named")
    func beforeSwapHTTPRefused() throws {
        let site = try TestSite.molamForm()
        let bad = try release(site) { tree in
            try addCheck(["type": "http", "url": "http://127.0.0.1:9/x", "when": "before_swap"], to: tree)
        }
        let result = try site.upgrade(bad)
        #expect(result.status == 4)
        #expect(result.stderr.contains("smoke[2].when"))
    }
}

@Suite("the live site: verify waits for the new version, fails fast on a broken one, rollback waits for the old")
struct LiveSiteWaitTests {
    @Test("With Debian's opcache (revalidate_freq=2), upgraded is said only once the site serves the new version",
          .enabled(if: php != nil))
    func upgradeWaitsForNewVersion() throws {
        let site = try TestSite.molamForm()
        let server = try PHPSite(site: site, revalidateFrequency: 2)
        #expect(PHPSite.get(server.url)?.body == "3.9.0")
        let good = try release(site)
        let result = try site.upgrade(good, extra: ["--version-url", server.url])
        #expect(result.status == 0, "\(result.stderr)")
        // The moment the agent exits, the site serves what it announced.
        #expect(PHPSite.get(server.url)?.body == "4.0.0")
        #expect(try history(site).contains("the site reports 4.0.0"))
    }

    @Test("A release that answers 500 fails at once, and the rollback waits until the site serves the old version",
          .enabled(if: php != nil))
    func brokenReleaseFailsFastAndRollbackWaits() throws {
        let site = try TestSite.molamForm()
        let server = try PHPSite(site: site, revalidateFrequency: 0)
        let fatal = try release(site, as: "4.0.3") { tree in
            let main = tree + "/molam-form.php"
            let text = try String(contentsOfFile: main, encoding: .utf8)
            try (text + "\nfunction molam_boom() { molam_no_such_function(); }\n")
                .write(toFile: main, atomically: false, encoding: .utf8)
        }
        let result = try site.upgrade(fatal, extra: ["--version-url", server.url])
        #expect(result.status == 1)
        #expect(result.stderr.contains("HTTP 500"))
        #expect(!result.stderr.contains("still so after"))
        #expect(PHPSite.get(server.url)?.body == "3.9.0")
        #expect(try history(site).contains("the site reports 3.9.0"))
    }

    @Test("A site that never reports the new version fails verify after version_timeout_s and is rolled back",
          .enabled(if: php != nil))
    func staleSiteTimesOut() throws {
        let site = try TestSite.molamForm()
        let server = try PHPSite(site: site, revalidateFrequency: 0)
        // The site reads another copy of the plugin: it will report 3.9.0 whatever is swapped in.
        try shell(["cp", "-a", site.pluginDirectory, site.root + "/frozen"])
        let page = server.docroot + "/version.php"
        let text = try String(contentsOfFile: page, encoding: .utf8)
        try text.replacingOccurrences(of: site.pluginDirectory, with: site.root + "/frozen")
            .write(toFile: page, atomically: false, encoding: .utf8)
        let config = site.root + "/agent.json"
        let entry: [String: Any] = [
            "name": "molam-form", "plugin_dir": site.pluginDirectory, "db": "sqlite://" + site.databasePath,
            "version_url": server.url, "version_timeout_s": 1,
            "after_swap": ["/bin/sh", "-c", "echo swapped >> \(site.root)/hook.log"],
        ]
        try JSONSerialization.data(withJSONObject: ["state_dir": site.stateDirectory, "plugins": [entry]] as [String: Any])
            .write(to: URL(fileURLWithPath: config))
        chmod(config, 0o600)
        let good = try release(site)
        let result = try runTool(["upgrade", "--config", config, "--archive", good.path, "--sha256", good.sha256])
        #expect(result.status == 1)
        #expect(result.stderr.contains("does not report 4.0.0"))
        #expect(result.stderr.contains("(it reports 3.9.0)"))
        #expect(try site.installedVersion() == "3.9.0")
        // The hook ran after the swap and again after the rollback's swap back.
        let hookLog = try String(contentsOfFile: site.root + "/hook.log", encoding: .utf8)
        #expect(hookLog == "swapped\nswapped\n")
    }
}

/// agent.json for `site` with one plugins[] entry holding `extra`.
private func writeConfig(_ site: TestSite, _ extra: [String: Any]) throws -> String {
    var entry: [String: Any] = [
        "name": "molam-form", "plugin_dir": site.pluginDirectory, "db": "sqlite://" + site.databasePath,
    ]
    for (key, value) in extra { entry[key] = value }
    let config = site.root + "/agent.json"
    try JSONSerialization.data(withJSONObject: ["state_dir": site.stateDirectory, "plugins": [entry]] as [String: Any])
        .write(to: URL(fileURLWithPath: config))
    chmod(config, 0o600)
    return config
}

@Suite("swap: symlink: releases in their own directories, the plugin path a link the agent switches")
struct SymlinkSwapTests {
    private func symlinkConfig(_ site: TestSite, _ server: PHPSite) throws -> String {
        let reset = server.url.replacingOccurrences(of: "version.php", with: "reset.php")
        return try writeConfig(site, [
            "swap": "symlink", "version_url": server.url,
            "after_swap": [php ?? "/usr/bin/php", "-n", "-r", "exit(file_get_contents('\(reset)') === 'reset' ? 0 : 1);"],
        ])
    }

    private func linkTarget(_ site: TestSite) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: site.pluginDirectory)
    }

    private func releases(_ site: TestSite) -> [String] {
        let folder = site.root + "/wp-content/plugins/.molam-releases/molam-form"
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    }

    @Test("Upgrade, failing upgrade and manual rollback switch links; the site serves each version when the agent exits",
          .enabled(if: php != nil && geteuid() == 0))
    func upgradeFailRollback() throws {
        let site = try TestSite.molamForm()
        try shell(["chown", "-R", "33:33", site.pluginDirectory])
        let server = try PHPSite(site: site, revalidateFrequency: 2)
        let config = try symlinkConfig(site, server)
        func upgrade(_ release: (path: String, sha256: String)) throws -> ProcessResult {
            try runTool(["upgrade", "--config", config, "--archive", release.path, "--sha256", release.sha256])
        }
        let good = try release(site)
        let first = try upgrade(good)
        #expect(first.status == 0, "\(first.stderr)")
        let target = try #require(linkTarget(site))
        #expect(target.hasPrefix(".molam-releases/molam-form/4.0.0-"))
        #expect(PHPSite.get(server.url)?.body == "4.0.0")
        // The release directory keeps the live tree's owner; the folders above it are the agent's.
        #expect(FileOwner.of(site.root + "/wp-content/plugins/" + target)?.uid == 33)
        #expect(FileOwner.of(site.root + "/wp-content/plugins/.molam-releases")?.uid == 0)

        let fatal = try release(site, as: "4.0.3") { tree in
            let main = tree + "/molam-form.php"
            let text = try String(contentsOfFile: main, encoding: .utf8)
            try (text + "\nfunction molam_boom() { molam_no_such_function(); }\n")
                .write(toFile: main, atomically: false, encoding: .utf8)
        }
        let failed = try upgrade(fatal)
        #expect(failed.status == 1)
        #expect(linkTarget(site) == target)
        #expect(PHPSite.get(server.url)?.body == "4.0.0")
        // The failed release's directory went with its run.
        #expect(releases(site) == [(target as NSString).lastPathComponent])

        let back = try runTool(["rollback", "--config", config])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(linkTarget(site)?.hasPrefix(".molam-releases/molam-form/3.9.0-") == true)
        #expect(PHPSite.get(server.url)?.body == "3.9.0")
        #expect(try site.installedVersion() == "3.9.0")
        // 3.9.0 live, 4.0.0 kept for a fast rollback.
        #expect(releases(site).count == 2)
        let again = try upgrade(good)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(PHPSite.get(server.url)?.body == "4.0.0")
        #expect(releases(site).count == 2)
        // A backup taken through the link is the install's, and a rollback finds it.
        let newer = try release(site, as: "4.0.5")
        #expect(try upgrade(newer).status == 0)
        let toPrevious = try runTool(["rollback", "--config", config])
        #expect(toPrevious.status == 0, "\(toPrevious.stderr)")
        #expect(try site.installedVersion() == "4.0.0")
        #expect(PHPSite.get(server.url)?.body == "4.0.0")
    }

    @Test("Killed right after the switch, recover puts the old release back and removes the new one",
          .enabled(if: php != nil))
    func crashAfterSwap() throws {
        let site = try TestSite.molamForm()
        let server = try PHPSite(site: site, revalidateFrequency: 0)
        let config = try symlinkConfig(site, server)
        let good = try release(site)
        let first = try runTool(["upgrade", "--config", config, "--archive", good.path, "--sha256", good.sha256])
        #expect(first.status == 0, "\(first.stderr)")
        let before = try #require(linkTarget(site))
        let next = try release(site, as: "4.0.4")
        let killed = try runTool(
            ["upgrade", "--config", config, "--archive", next.path, "--sha256", next.sha256],
            environment: [FaultInjection.environmentVariable: "after-swap=kill"])
        #expect(killed.status == 128 + SIGKILL)
        #expect(linkTarget(site)?.hasPrefix(".molam-releases/molam-form/4.0.4-") == true)
        let recovered = try runTool(["recover", "--config", config])
        #expect(recovered.status == 0, "\(recovered.stderr)")
        #expect(linkTarget(site) == before)
        #expect(PHPSite.get(server.url)?.body == "4.0.0")
        #expect(!releases(site).contains { $0.hasPrefix("4.0.4-") })
    }

    @Test("A link of the agent's shape through folders the web user owns is refused, never followed",
          .enabled(if: geteuid() == 0))
    func foreignLinkRefused() throws {
        let site = try TestSite.molamForm()
        let plugins = site.root + "/wp-content/plugins"
        try FileManager.default.createDirectory(
            atPath: plugins + "/.molam-releases/molam-form", withIntermediateDirectories: true)
        try shell(["mv", site.pluginDirectory, plugins + "/.molam-releases/molam-form/planted"])
        try shell(["chown", "-R", "33:33", plugins + "/.molam-releases"])
        try FileManager.default.createSymbolicLink(
            atPath: site.pluginDirectory, withDestinationPath: ".molam-releases/molam-form/planted")
        let good = try release(site)
        let result = try site.upgrade(good)
        #expect(result.status == 2)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("the agent did not make"))
        #expect(FileManager.default.fileExists(atPath: plugins + "/.molam-releases/molam-form/planted/molam-form.php"))
    }

    @Test("swap: symlink without after_swap is a configuration error naming the key")
    func symlinkNeedsHook() throws {
        let site = try TestSite.molamForm()
        let config = try writeConfig(site, ["swap": "symlink"])
        let result = try runTool(["status", "--config", config])
        #expect(result.status == 2)
        #expect(result.stderr.contains("plugins[0].swap"))
        #expect(result.stderr.contains("after_swap"))
    }
}

@Suite("the private site check: the site run with the staged release before the swap")
struct PrivateSiteCheckTests {
    @Test("A release that dies when it loads is refused before the swap (exit 4); the real site never serves it",
          .enabled(if: php != nil && geteuid() == 0))
    func loadTimeFatalRefused() throws {
        let site = try TestSite.molamForm()
        try shell(["chown", "-R", "33:33", site.pluginDirectory])
        let server = try PHPSite(site: site, revalidateFrequency: 0)
        let config = try writeConfig(site, ["version_url": server.url, "site_root": server.docroot])
        let before = try site.snapshot()
        let fatal = try release(site, as: "4.0.3") { tree in
            let main = tree + "/molam-form.php"
            let text = try String(contentsOfFile: main, encoding: .utf8)
            try (text + "\nfunction molam_boom() { molam_no_such_function(); }\n")
                .write(toFile: main, atomically: false, encoding: .utf8)
        }
        let served = try String(contentsOfFile: site.root + "/php-" + server.url.split(separator: ":")[2]
            .prefix { $0 != "/" } + ".err", encoding: .utf8).split(separator: "\n").count
        let result = try runTool(["upgrade", "--config", config, "--archive", fatal.path, "--sha256", fatal.sha256])
        #expect(result.status == 4)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("private copy of the site"))
        #expect(result.stderr.contains("Call to undefined function molam_no_such_function()"))
        #expect(try site.snapshot() == before)
        // The real site was never asked anything during the run.
        let after = try String(contentsOfFile: site.root + "/php-" + server.url.split(separator: ":")[2]
            .prefix { $0 != "/" } + ".err", encoding: .utf8).split(separator: "\n").count
        #expect(after == served)
        #expect(PHPSite.get(server.url)?.body == "3.9.0")
    }

    @Test("A good release passes the private check and its detail says so; private_site_check: false skips it",
          .enabled(if: php != nil && geteuid() == 0))
    func goodReleasePasses() throws {
        let site = try TestSite.molamForm()
        let server = try PHPSite(site: site, revalidateFrequency: 0)
        let config = try writeConfig(site, ["version_url": server.url, "site_root": server.docroot])
        let good = try release(site)
        #expect(try runTool(["upgrade", "--config", config, "--archive", good.path, "--sha256", good.sha256]).status == 0)
        #expect(try runTool(["history", "--config", config]).stdout.contains("private site check: 1 of 1 request passed"))

        let off = try writeConfig(site, [
            "version_url": server.url, "site_root": server.docroot, "private_site_check": false,
        ])
        let next = try release(site, as: "4.0.5")
        #expect(try runTool(["upgrade", "--config", off, "--archive", next.path, "--sha256", next.sha256]).status == 0)
        let log = try runTool(["history", "--config", off]).stdout
        #expect(log.components(separatedBy: "private site check").count == 2)
    }

    @Test("A private server that fails with the installed release too proves nothing: noted, never a refusal",
          .enabled(if: php != nil && geteuid() == 0))
    func brokenEnvironmentIsInconclusive() throws {
        let site = try TestSite.molamForm()
        let server = try PHPSite(site: site, revalidateFrequency: 0)
        // The site's own answer is fine; the private copy's document root answers 500 whatever runs.
        let elsewhere = site.root + "/private-root"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try "<?php http_response_code(500); echo 'database unreachable';"
            .write(toFile: elsewhere + "/version.php", atomically: false, encoding: .utf8)
        let config = try writeConfig(site, ["version_url": server.url, "site_root": elsewhere])
        let good = try release(site)
        let result = try runTool(["upgrade", "--config", config, "--archive", good.path, "--sha256", good.sha256])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try runTool(["history", "--config", config]).stdout.contains("the installed release breaks here too"))
    }
}
