import Foundation
import Testing
@testable import UpgradeKit

/// The table ownership policy, the manifest fields it reads, and the site's table prefix.
@Suite("table ownership")
struct TableOwnershipTests {
    func manifest(
        _ version: String, tables: [String], namespace: String? = nil
    ) throws -> PluginManifest {
        PluginManifest(
            name: "molam-form", version: try #require(SemanticVersion(version)), tables: tables,
            namespace: namespace)
    }

    @Test("WordPress and WooCommerce core tables, the ledger and SQLite's tables are never ownable")
    func protectedNames() {
        let protected = [
            "wp_options", "WP_Options", "wp_posts", "wp_usermeta", "wp_2_posts", "wp_blogs", "wp_wc_orders",
            "wp_woocommerce_sessions", "wp_actionscheduler_actions", "molam_schema_migrations", "sqlite_sequence",
        ]
        for name in protected {
            #expect(TableOwnership.protectionReason(name, sitePrefix: "wp_") != nil, "\(name)")
        }
        #expect(TableOwnership.protectionReason("shop7_options", sitePrefix: "shop7_") != nil)
        #expect(TableOwnership.protectionReason("shop7_3_postmeta", sitePrefix: "shop7_") != nil)
        #expect(TableOwnership.protectionReason("options", sitePrefix: "") != nil)
        for name in ["wp_molam_orders", "wp_options_molam", "acme_payments", "shop7_molam_orders"] {
            #expect(TableOwnership.protectionReason(name, sitePrefix: "shop7_") == nil, "\(name)")
        }
    }

    @Test("Without a declared namespace, the installed tables' common prefix is the namespace")
    func inferred() throws {
        let two = try manifest("3.9.0", tables: ["wp_molam_orders", "wp_molam_settings"])
        #expect(TableOwnership(sitePrefix: "wp_", installed: two).installedNamespace == "wp_molam_")
        let one = try manifest("1.0.0", tables: ["acme_payments"])
        #expect(TableOwnership(sitePrefix: "wp_", installed: one).installedNamespace == "acme_")
        let loose = try manifest("1.0.0", tables: ["wp_a_x", "wp_b_y"])
        #expect(TableOwnership(sitePrefix: "wp_", installed: loose).installedNamespace == nil)
        let none = try manifest("1.0.0", tables: [])
        #expect(TableOwnership(sitePrefix: "wp_", installed: none).installedNamespace == nil)
        // A core table claimed by the installed manifest is not owned, and shapes no namespace.
        let bad = try manifest("1.0.0", tables: ["wp_options", "wp_molam_orders"])
        let ownership = TableOwnership(sitePrefix: "wp_", installed: bad)
        #expect(ownership.installedTables == ["wp_molam_orders"])
        #expect(!ownership.mayRestore("wp_options"))
        #expect(ownership.mayRestore("molam_schema_migrations"))
    }

    @Test("A release may keep the installed tables and add new ones only inside its namespace")
    func releaseChecks() throws {
        let installed = try manifest("3.9.0", tables: ["wp_molam_orders", "wp_molam_settings"])
        let ownership = TableOwnership(sitePrefix: "wp_", installed: installed)
        try ownership.check(try manifest("4.0.0", tables: ["wp_molam_orders", "wp_molam_refunds"]))
        try ownership.check(try manifest("4.0.0", tables: ["wp_molam_orders", "WP_MOLAM_X"], namespace: "molam_"))
        let refused: [PluginManifest] = [
            try manifest("4.0.0", tables: ["wp_molam_orders", "wp_options"]),
            try manifest("4.0.0", tables: ["wp_yoast_indexable"], namespace: "molam_"),
            try manifest("4.0.0", tables: ["wp_wc_x"], namespace: "wc_"),
            try manifest("4.0.0", tables: [], namespace: "p"),
            try manifest("4.0.0", tables: ["molam_schema_migrations"]),
            // Moving the namespace would hand the release another plugin's tables.
            try manifest("4.0.0", tables: ["wp_yoast_indexable"], namespace: "yoast_"),
        ]
        for release in refused {
            #expect(throws: OwnershipRefusal.self, "\(release.tables) \(String(describing: release.namespace))") {
                try ownership.check(release)
            }
        }
        try ownership.check(try manifest("4.0.0", tables: ["wp_molam_pay_x"], namespace: "molam_pay_"))
        let tables = ownership.migrationTables(for: try manifest("4.0.0", tables: ["wp_molam_orders", "wp_molam_r"]))
        #expect(tables.owned == ["wp_molam_orders", "wp_molam_settings", "wp_molam_r"])
        #expect(tables.creatable == ["wp_molam_orders", "wp_molam_r"])
    }

    @Test("namespace and preserve are validated; {prefix} in tables becomes the site's prefix")
    func manifestFields() throws {
        func parse(_ extra: String) throws -> PluginManifest {
            let json = #"{"name": "molam-form", "version": "4.0.0", "tables": ["{prefix}molam_orders"]"#
                + extra + "}"
            return try PluginManifest.parse(Data(json.utf8), source: "test.json")
        }
        let good = try parse(#", "namespace": "molam_", "preserve": ["certs/", "config.local.php", "a/b.txt"]"#)
        #expect(good.namespace == "molam_")
        #expect(good.preserve == ["certs/", "config.local.php", "a/b.txt"])
        #expect(good.resolvingTables(prefix: "shop7_").tables == ["shop7_molam_orders"])
        #expect(good.resolvingTables(prefix: "").tables == ["molam_orders"])
        for bad in [#", "namespace": """#, #", "namespace": "1x_""#, #", "namespace": "a-b""#] {
            #expect(throws: ManifestError.self, "\(bad)") { try parse(bad) }
        }
        for path in ["/etc/passwd", "../x", "", "a//b", "./x", "a/../../b", "certs//"] {
            let error = #expect(throws: ManifestError.self, "\(path)") {
                try parse(#", "preserve": [""# + path + #""]"#)
            }
            #expect(error?.field == "preserve[0]")
        }
    }

    @Test("table_prefix in agent.json may be empty, defaults to wp_, and is validated")
    func tablePrefixConfiguration() throws {
        func load(_ entry: String) throws -> AgentConfiguration {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID()).json").path
            let json = #"{"plugins": [{"name": "molam-form", "plugin_dir": "/srv/p", "db": "sqlite:///srv/s.db""#
                + entry + "}]}"
            try json.write(toFile: path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            defer { try? FileManager.default.removeItem(atPath: path) }
            return try AgentConfiguration.load(path: path)
        }
        #expect(try load("").sites.first?.tablePrefix == "wp_")
        #expect(try load(#", "table_prefix": """#).sites.first?.tablePrefix == "")
        #expect(try load(#", "table_prefix": "shop7_""#).sites.first?.tablePrefix == "shop7_")
        let error = #expect(throws: ConfigurationError.self) { try load(#", "table_prefix": "wp-; DROP""#) }
        #expect(error?.description.contains("table_prefix") == true)
        let options = try AgentConfiguration.resolve(
            configPath: nil, pluginDirectory: "/srv/p", database: "sqlite:///srv/s.db", stateDirectory: "/tmp/s",
            tablePrefix: "")
        #expect(options.sites.first?.tablePrefix == "")
        #expect(throws: ConfigurationError.self) {
            try AgentConfiguration.resolve(
                configPath: nil, pluginDirectory: "/srv/p", database: "sqlite:///srv/s.db", stateDirectory: "/tmp/s",
                tablePrefix: String(repeating: "x", count: 65))
        }
    }
}
