import Foundation
import Testing
@testable import UpgradeKit

@Suite("the live site: version matching, broken pages, settings, PHP messages")
struct LiveSiteSettingsTests {
    let version = SemanticVersion("4.0.1")!

    @Test("{version} matches the version standing alone, not inside a longer one")
    func versionStandsAlone() {
        #expect(SiteProbe.body("4.0.1", contains: "{version}", version: version))
        #expect(SiteProbe.body(#"{"version":"4.0.1"}"#, contains: "{version}", version: version))
        #expect(SiteProbe.body("v4.0.1.", contains: "{version}", version: version) == false)
        #expect(SiteProbe.body("running 4.0.1.", contains: "{version}", version: version))
        #expect(!SiteProbe.body("4.0.10", contains: "{version}", version: version))
        #expect(!SiteProbe.body("14.0.1", contains: "{version}", version: version))
        #expect(!SiteProbe.body("4.0.1-beta", contains: "{version}", version: version))
        #expect(!SiteProbe.body("4.0.1.2", contains: "{version}", version: version))
        #expect(SiteProbe.body("4.0.10 then 4.0.1", contains: "{version}", version: version))
        #expect(SiteProbe.body(#"{"version":"4.0.1"}"#, contains: #""version":"{version}""#, version: version))
        #expect(!SiteProbe.body(#"{"version":"4.0.10"}"#, contains: #""version":"{version}""#, version: version))
    }

    @Test("A PHP fatal error or WordPress's critical-error page is a broken site, whatever the status")
    func brokenPages() {
        #expect(SiteProbe.brokenReason(status: 500, body: "") == "HTTP 500 (server error)")
        #expect(SiteProbe.brokenReason(status: 200, body: "<b>Fatal error</b>:  Uncaught Error: Call to undefined "
            + "function molam_x() in /p/molam-form.php:3")?.contains("Call to undefined function molam_x()") == true)
        #expect(SiteProbe.brokenReason(
            status: 500, body: "<p>There has been a critical error on this website.</p>")?.contains("critical error") == true)
        #expect(SiteProbe.brokenReason(status: 404, body: #"{"code":"rest_no_route"}"#) == nil)
        #expect(SiteProbe.brokenReason(status: 200, body: "4.0.1") == nil)
    }

    @Test("php -l's message and line are read from its output")
    func phpLintOutput() {
        let parse = PHPSyntaxCheck.parse(
            "PHP Parse error:  syntax error, unexpected token \"}\", expecting \";\" in includes/x.php on line 3\n"
                + "Errors parsing includes/x.php\n", file: "includes/x.php")
        #expect(parse == PHPSyntaxCheck.Failure(
            file: "includes/x.php", line: 3, message: "syntax error, unexpected token \"}\", expecting \";\""))
        let fatal = PHPSyntaxCheck.parse(
            "\nFatal error: 'break' not in the 'loop' or 'switch' context in a.php on line 2\nErrors parsing a.php\n",
            file: "a.php")
        #expect(fatal.line == 2)
        #expect(fatal.message == "'break' not in the 'loop' or 'switch' context")
        #expect(fatal.description == "a.php line 2: 'break' not in the 'loop' or 'switch' context")
    }

    func configFile(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID()).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        return path
    }

    @Test("version_url, version_expect, version_timeout_s and after_swap are read from a plugins[] entry")
    func settingsRead() throws {
        let path = try configFile(#"""
            {"php": "/opt/php/bin/php", "php_lint": false,
             "plugins": [{"name": "molam-form", "plugin_dir": "/srv/p", "db": "sqlite:///srv/site.db",
                          "version_url": "http://127.0.0.1:8080/?rest_route=/molam/v1/version",
                          "version_expect": "\"version\":\"{version}\"", "version_timeout_s": 12,
                          "after_swap": ["/usr/sbin/service", "php8.2-fpm", "reload"]}]}
            """#)
        let configuration = try AgentConfiguration.load(path: path)
        let live = try #require(configuration.sites.first).live
        #expect(live.versionURL == "http://127.0.0.1:8080/?rest_route=/molam/v1/version")
        #expect(live.versionExpect == #""version":"{version}""#)
        #expect(live.versionTimeoutSeconds == 12)
        #expect(live.afterSwap == ["/usr/sbin/service", "php8.2-fpm", "reload"])
        // A hook to reset opcache makes links the swap, unless the entry says otherwise.
        #expect(live.swapMode == .symlink)
        #expect(configuration.settings.php == "/opt/php/bin/php")
        #expect(configuration.settings.phpLint == false)
    }

    @Test("Bad live-site settings are one line naming the file and the key",
          arguments: [
              (#""version_url": "ftp://x/v""#, "plugins[0].version_url"),
              (#""version_expect": "4.0""#, "plugins[0].version_expect"),
              (#""version_timeout_s": -1"#, "plugins[0].version_timeout_s"),
              (#""version_timeout_s": "10""#, "plugins[0].version_timeout_s"),
              (#""after_swap": ["service", "reload"]"#, "plugins[0].after_swap"),
              (#""after_swap": []"#, "plugins[0].after_swap"),
          ])
    func badSettings(entry: String, key: String) throws {
        let path = try configFile(
            #"{"plugins": [{"name": "p", "plugin_dir": "/srv/p", "db": "sqlite:///srv/site.db", "#
                + entry + "}]}")
        #expect {
            try AgentConfiguration.load(path: path)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains(key) && !"\(error)".contains("\n")
        }
    }

    @Test("when: before_swap is for command checks; any other value is refused with the field named")
    func manifestWhen() throws {
        let good = try PluginManifest.parse(Data(#"""
            {"name": "p", "version": "1.0.0", "smoke": [
              {"type": "command", "run": ["bin/pre"], "when": "before_swap"},
              {"type": "command", "run": ["bin/smoke"], "when": "after_swap"},
              {"type": "sql", "query": "SELECT 1"}]}
            """#.utf8), source: "m.json")
        #expect(good.beforeSwap == [.command(run: ["bin/pre"], timeoutSeconds: 30)])
        #expect(good.smoke.count == 2)
        for (body, field) in [
            (#"{"type": "sql", "query": "SELECT 1", "when": "before_swap"}"#, "smoke[0].when"),
            (#"{"type": "command", "run": ["x"], "when": "later"}"#, "smoke[0].when"),
        ] {
            let data = Data((#"{"name": "p", "version": "1.0.0", "smoke": ["# + body + "]}").utf8)
            #expect {
                try PluginManifest.parse(data, source: "m.json")
            } throws: { error in
                (error as? ManifestError)?.field == field
            }
        }
    }
}
