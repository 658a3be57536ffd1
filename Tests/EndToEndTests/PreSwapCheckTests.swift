import Foundation
import Testing
import UpgradeKit
import MolamSQLite
#if canImport(Glibc)
import Glibc
#endif

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

    @Test("A large release is compiled by several PHP processes: errors in each part are all found, a good one passes",
          .enabled(if: php != nil))
    func largeReleaseCheckedInParts() throws {
        let site = try TestSite.molamForm()
        // 1,000 files: PHPSyntaxCheck.filesPerProcess twice, so a 2-core machine runs two
        // processes, and neighbours in the sorted list (every other file to each) go to different ones.
        // Even-numbered files are long, so one process ends well before the other: its end must not
        // take the other's php with it.
        let long = (0..<400).map { "    $x\($0) = strlen('molam') + \($0);" }.joined(separator: "\n")
        func addFiles(_ tree: String) throws {
            try FileManager.default.createDirectory(atPath: tree + "/gen", withIntermediateDirectories: true)
            for number in 0..<1_000 {
                let body = number % 2 == 0 ? long + "\n    return $x0;" : "    return \(number);"
                try "<?php\nfunction molam_gen_\(number)() {\n\(body)\n}\n"
                    .write(toFile: tree + String(format: "/gen/f%04d.php", number), atomically: false, encoding: .utf8)
            }
        }
        let broken = try release(site) { tree in
            try addFiles(tree)
            try "<?php\nfunction molam_gen_500() { return 1 }\n"
                .write(toFile: tree + "/gen/f0500.php", atomically: false, encoding: .utf8)
            try "<?php\n\nfunction molam_gen_501( { }\n"
                .write(toFile: tree + "/gen/f0501.php", atomically: false, encoding: .utf8)
        }
        let refused = try site.upgrade(broken)
        #expect(refused.status == 4)
        #expect(refused.stderr.contains("gen/f0500.php line 2"))
        // Both found (the message names the first and counts the rest).
        #expect(refused.stderr.contains("(and 1 more file(s))"))
        #expect(try site.installedVersion() == "3.9.0")

        let good = try release(site) { tree in try addFiles(tree) }
        let result = try site.upgrade(good)
        #expect(result.status == 0)
        #expect(try site.installedVersion() != "3.9.0")
        let journal = try SQLiteConnection(path: site.stateDirectory + "/journal.db", mode: .readOnly)
        let detail = try journal.scalar("SELECT detail FROM steps WHERE name = 'stage' ORDER BY id DESC LIMIT 1")
        #expect(detail?.stringValue?.contains("PHP syntax of") == true)
        // Every part concluded: none of its files fell back to `php -l` (as when one part's end
        // killed the other's php).
        #expect(detail?.stringValue?.contains("one by one") == false)
    }

    @Test("php_lint_skip leaves a dependency's broken test fixture out of the syntax check", .enabled(if: php != nil))
    func lintSkip() throws {
        let site = try TestSite.molamForm()
        let good = try release(site) { tree in
            try FileManager.default.createDirectory(
                atPath: tree + "/vendor/parser/tests", withIntermediateDirectories: true)
            try "<?php\nfunction broken( {\n".write(
                toFile: tree + "/vendor/parser/tests/invalid.php", atomically: false, encoding: .utf8)
            let path = tree + "/molam-plugin.json"
            guard var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
                as? [String: Any] else { throw TestFailure("\(path) is not an object") }
            manifest["php_lint_skip"] = ["vendor/parser/tests/"]
            try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
        }
        let result = try site.upgrade(good)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try history(site).contains("PHP syntax of 4 files checked"))
    }

    @Test("A file the check's user cannot read is not checked, and that is said, not held against the release",
          .enabled(if: php != nil && geteuid() == 0))
    func unreadableFileSkipped() throws {
        // The live tree is root's, so the check runs as nobody, who cannot read a 0600 file of root's.
        let site = try TestSite.molamForm()
        let good = try release(site) { tree in
            try "<?php\nconst MOLAM_SECRET = 'x';\n"
                .write(toFile: tree + "/includes/secret.php", atomically: false, encoding: .utf8)
            chmod(tree + "/includes/secret.php", 0o600)
        }
        let result = try site.upgrade(good)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try history(site).contains("PHP syntax check skipped: nobody"))
        #expect(try history(site).contains("cannot read includes/secret.php"))
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
