import Foundation
import Testing
import UpgradeKit

@Suite("plugin manifest")
struct PluginManifestTests {
    @Test("The DESIGN.md example parses with every smoke check type and its defaults")
    func example() throws {
        let json = """
            {"name": "molam-form", "version": "4.0.0", "tables": ["wp_molam_orders", "wp_molam_settings"],
             "migrations": "migrations",
             "smoke": [
               {"type": "command", "run": ["bin/smoke"], "timeout_s": 30},
               {"type": "sql", "query": "SELECT count(*) FROM wp_molam_orders"},
               {"type": "http", "url": "http://127.0.0.1:8080/molam/health", "expect_status": 200}
             ]}
            """
        let manifest = try PluginManifest.parse(Data(json.utf8), source: "m.json")
        #expect(manifest.name == "molam-form")
        #expect(manifest.version == SemanticVersion("4.0.0"))
        #expect(manifest.tables == ["wp_molam_orders", "wp_molam_settings"])
        #expect(manifest.smoke == [
            .command(run: ["bin/smoke"], timeoutSeconds: 30),
            .sql(query: "SELECT count(*) FROM wp_molam_orders", expect: nil, timeoutSeconds: 10),
            .http(url: "http://127.0.0.1:8080/molam/health", expectStatus: 200, expectBody: nil, timeoutSeconds: 30),
        ])
    }

    @Test("Every fixture manifest parses")
    func fixtures() throws {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        for version in ["3.9.0", "4.0.0", "4.0.1", "4.0.2"] {
            let directory = root.path + "/Fixtures/plugins/molam-form/\(version)/molam-form"
            let manifest = try PluginManifest.load(pluginDirectory: directory)
            #expect(manifest.version.description == version)
        }
    }

    @Test("Bad manifests name the file and the field", arguments: [
        (#"{"version": "1.0.0"}"#, "field 'name' is missing"),
        (#"{"name": "x", "version": "1.0"}"#, "field 'version'"),
        (#"{"name": "Bad Name", "version": "1.0.0"}"#, "field 'name'"),
        (#"{"name": "x", "version": "1.0.0", "colour": "blue"}"#, "field 'colour' is not a known field"),
        (#"{"name": "x", "version": "1.0.0", "tables": "t"}"#, "field 'tables' must be a list"),
        (#"{"name": "x", "version": "1.0.0", "migrations": "../up"}"#, "field 'migrations'"),
        (#"{"name": "x", "version": "1.0.0", "smoke": [{"type": "ftp"}]}"#, "field 'smoke[0].type'"),
        (#"{"name": "x", "version": "1.0.0", "smoke": [{"type": "command", "run": []}]}"#, "field 'smoke[0].run'"),
        (#"{"name": "x", "version": "1.0.0", "smoke": [{"type": "http", "url": "file:///etc"}]}"#,
         "field 'smoke[0].url'"),
        (#"{"name": "x", "version": "1.0.0", "smoke": [{"type": "sql", "query": "x", "timeout_s": -1}]}"#,
         "field 'smoke[0].timeout_s'"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "is not valid JSON"),
    ])
    func rejects(json: String, message: String) {
        #expect {
            _ = try PluginManifest.parse(Data(json.utf8), source: "/p/molam-plugin.json")
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("/p/molam-plugin.json") && text.contains(message)
        }
    }
}
