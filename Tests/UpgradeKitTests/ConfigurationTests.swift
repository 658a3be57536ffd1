import Foundation
import Testing
import UpgradeKit

@Suite("configuration")
struct ConfigurationTests {
    @Test("Command-line options stand in for a config file entirely")
    func optionsOnly() throws {
        let site = try SiteConfiguration.resolve(
            configPath: nil, pluginDirectory: "/srv/wp/plugins/molam-form/", database: "sqlite:///srv/wp/site.db",
            stateDirectory: "/var/lib/x")
        #expect(site.pluginDirectory == "/srv/wp/plugins/molam-form")
        #expect(site.database == .sqlite(path: "/srv/wp/site.db"))
        #expect(site.stateDirectory == "/var/lib/x")
    }

    @Test("A config file fills what the options leave out, and the options win")
    func fileAndOverrides() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try #"{"state_dir": "/var/lib/molam", "plugins": [{"name": "molam-form", "plugin_dir": "/srv/p", "db": "sqlite:///srv/site.db"}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let fromFile = try SiteConfiguration.resolve(
            configPath: path, pluginDirectory: nil, database: nil, stateDirectory: nil)
        #expect(fromFile.pluginDirectory == "/srv/p")
        #expect(fromFile.stateDirectory == "/var/lib/molam")
        let overridden = try SiteConfiguration.resolve(
            configPath: path, pluginDirectory: "/other", database: nil, stateDirectory: nil)
        #expect(overridden.pluginDirectory == "/other")
        #expect(overridden.database == .sqlite(path: "/srv/site.db"))
    }

    @Test("Bad configuration names the file and the key", arguments: [
        (#"{"plugins": [{"plugin_dir": 3}]}"#, "plugins[0].plugin_dir"),
        (#"{"colour": "blue"}"#, "'colour'"),
        (#"{"plugins": [{"plugin_dir": "/p", "db": "mysql://x"}]}"#, "mysql://"),
        ("not json", "is not a JSON object"),
    ])
    func rejects(json: String, message: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            _ = try SiteConfiguration.resolve(configPath: path, pluginDirectory: nil, database: nil,
                                              stateDirectory: "/s")
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test("DSNs must be absolute sqlite paths", arguments: ["sqlite://relative.db", "postgres://h/db", "site.db"])
    func badDSN(dsn: String) {
        #expect(throws: ConfigurationError.self) { try DatabaseLocation.parse(dsn) }
    }
}
