import Foundation
import Testing
import UpgradeKit

@Suite("configuration")
struct ConfigurationTests {
    /// Writes `json` as a private (0600) config file, as an operator would.
    func configFile(_ json: String, mode: Int = 0o600) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID()).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    static let full = #"""
        {"merchant_id": "6F1C2B2E-4C84-4D52-9C4A-2B7C0E6E9A11", "country": "SN", "tier": "gold",
         "api_url": "https://api.molam.example", "token_file": "/etc/molam-upgrade/token",
         "state_dir": "/var/lib/molam",
         "release_public_keys": ["ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="],
         "plugins": [{"name": "molam-form", "plugin_dir": "/srv/a/p", "db": "sqlite:///srv/a/site.db"},
                     {"name": "molam-form", "plugin_dir": "/srv/b/p", "db": "sqlite:///srv/b/site.db"}]}
        """#

    @Test("Command-line options stand in for a config file entirely")
    func optionsOnly() throws {
        let configuration = try AgentConfiguration.resolve(
            configPath: nil, pluginDirectory: "/srv/wp/plugins/molam-form/", database: "sqlite:///srv/wp/site.db",
            stateDirectory: "/var/lib/x")
        let site = try #require(configuration.sites.first)
        #expect(configuration.sites.count == 1)
        #expect(site.pluginDirectory == "/srv/wp/plugins/molam-form")
        #expect(site.database == .sqlite(path: "/srv/wp/site.db"))
        #expect(site.stateDirectory == "/var/lib/x")
        #expect(configuration.settings.apiURL == nil)
    }

    @Test("A full config file: every key read, several installs, options win")
    func fileAndOverrides() throws {
        let path = try configFile(Self.full)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let configuration = try AgentConfiguration.resolve(
            configPath: path, pluginDirectory: nil, database: nil, stateDirectory: nil)
        #expect(configuration.settings.merchantID == "6F1C2B2E-4C84-4D52-9C4A-2B7C0E6E9A11")
        #expect(configuration.settings.country == "SN")
        #expect(configuration.settings.tier == "gold")
        #expect(configuration.settings.apiURL == "https://api.molam.example")
        #expect(configuration.settings.tokenFile == "/etc/molam-upgrade/token")
        #expect(configuration.settings.releasePublicKeys == ["ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="])
        #expect(configuration.stateDirectory == "/var/lib/molam")
        #expect(configuration.sites.map(\.pluginDirectory) == ["/srv/a/p", "/srv/b/p"])

        let selected = try AgentConfiguration.resolve(
            configPath: path, pluginDirectory: nil, database: nil, stateDirectory: "/tmp/s", plugin: "/srv/b/p")
        #expect(selected.sites.map(\.pluginDirectory) == ["/srv/b/p"])
        #expect(selected.stateDirectory == "/tmp/s")
        let overridden = try AgentConfiguration.resolve(
            configPath: path, pluginDirectory: "/other", database: "sqlite:///other.db", stateDirectory: nil)
        #expect(overridden.sites.map(\.pluginDirectory) == ["/other"])
        #expect(overridden.settings.apiURL == "https://api.molam.example")
    }

    @Test("Bad configuration names the file and the key", arguments: [
        (#"{"plugins": [{"name": "x", "plugin_dir": 3, "db": "sqlite:///a"}]}"#, "plugins[0].plugin_dir"),
        (#"{"plugins": [{"name": "x", "plugin_dir": "/p"}]}"#, "'plugins[0].db' is missing"),
        (#"{"plugins": [{"plugin_dir": "/p", "db": "sqlite:///a"}]}"#, "'plugins[0].name' is missing"),
        (#"{"plugins": [{"name": "x", "plugin_dir": "/p", "db": "sqlite:///a", "colour": 1}]}"#, "plugins[0].colour"),
        (#"{"colour": "blue"}"#, "'colour'"),
        (#"{"state_dir": "/s"}"#, "'plugins' is missing"),
        (#"{"plugins": [{"name": "x", "plugin_dir": "/p", "db": "mysql://x"}]}"#, "mysql://"),
        (#"{"merchant_id": "nope", "plugins": []}"#, "'merchant_id' ('nope') is not a UUID"),
        (#"{"api_url": "https://a", "token_file": "/t", "plugins": [{"name": "x", "plugin_dir": "/p", "db": "sqlite:///a"}]}"#,
         "'merchant_id' is required with 'api_url'"),
        (#"{"api_url": "ftp://a", "plugins": []}"#, "'api_url'"),
        (#"{"release_public_keys": "k", "plugins": []}"#, "'release_public_keys' must be a list"),
        (#"{"release_public_keys": ["ed25519:AAAA"], "plugins": []}"#, "'release_public_keys[0]'"),
        ("not json", "is not a JSON object"),
    ])
    func rejects(json: String, message: String) throws {
        let path = try configFile(json)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            _ = try AgentConfiguration.resolve(configPath: path, pluginDirectory: nil, database: nil,
                                               stateDirectory: "/s")
        } throws: { error in
            "\(error)".contains(message) && "\(error)".contains(path)
        }
    }

    @Test("A config file or token file that group or others can read is refused", arguments: [0o640, 0o604, 0o620])
    func refusesOpenModes(mode: Int) throws {
        let path = try configFile(Self.full, mode: mode)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            _ = try AgentConfiguration.load(path: path)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("chmod 600")
        }
        let token = try configFile("secret-token-value\n", mode: mode)
        defer { try? FileManager.default.removeItem(atPath: token) }
        let settings = AgentSettings(merchantID: "m", apiURL: "https://a", tokenFile: token)
        #expect {
            _ = try settings.readToken()
        } throws: { error in
            "\(error)".contains(token) && !"\(error)".contains("secret-token-value")
        }
    }

    @Test("The token is read without its trailing newline; control characters are refused")
    func readsToken() throws {
        let token = try configFile("abc.def-123\n")
        defer { try? FileManager.default.removeItem(atPath: token) }
        #expect(try AgentSettings(tokenFile: token).readToken() == "abc.def-123")
        let split = try configFile("abc\nX-Evil: 1\n")
        defer { try? FileManager.default.removeItem(atPath: split) }
        #expect(throws: ConfigurationError.self) { try AgentSettings(tokenFile: split).readToken() }
    }

    @Test("DSNs must be absolute sqlite paths", arguments: ["sqlite://relative.db", "postgres://h/db", "site.db"])
    func badDSN(dsn: String) {
        #expect(throws: ConfigurationError.self) { try DatabaseLocation.parse(dsn) }
    }
}
