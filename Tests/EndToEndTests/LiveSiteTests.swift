import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

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

