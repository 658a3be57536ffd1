import Foundation

/// Which database tables a plugin may own, change, create and drop on one site: the single rule
/// used by upgrade, dry run, rollback and recovery (DESIGN.md, "What the agent may touch").
///
/// A release may own the tables the installed version owns, plus new tables whose names start with
/// `<site prefix><namespace>`; WordPress and WooCommerce core tables, the migration ledger and
/// SQLite's own tables are never ownable, whatever a manifest says. Names compare without case,
/// as SQLite compares them.
public struct TableOwnership: Sendable, Equatable {
    /// The site's table prefix (`wp_` unless agent.json's `table_prefix` says otherwise).
    public let sitePrefix: String
    /// The installed version's tables that it may really own (core tables it claims are not).
    public let installedTables: [String]
    /// `<site prefix><namespace>` of the installed version, declared or inferred; nil: none.
    public let installedNamespace: String?

    /// WordPress core tables, after the site prefix (single site and multisite).
    static let coreTables: [String] = [
        "posts", "postmeta", "users", "usermeta", "options", "comments", "commentmeta", "terms", "termmeta",
        "term_taxonomy", "term_relationships", "links", "blogs", "blogmeta", "site", "sitemeta", "signups",
        "registration_log", "blog_versions",
    ]
    /// WooCommerce's table families, after the site prefix.
    static let coreFamilies: [String] = ["woocommerce_", "wc_", "actionscheduler_"]
    /// The migration ledger: written by the agent itself, never by a release.
    public static let ledgerTable = "molam_schema_migrations"

    public init(sitePrefix: String, installed: PluginManifest) {
        self.sitePrefix = sitePrefix
        let ownable = installed.tables.filter { Self.protectionReason($0, sitePrefix: sitePrefix) == nil }
        self.installedTables = ownable
        let declared = installed.namespace.map { sitePrefix + $0 }
        self.installedNamespace = declared ?? Self.inferredNamespace(ownable, sitePrefix: sitePrefix)
    }

    /// Why `name` can never be a plugin's table on a site with `sitePrefix`, or nil when it can.
    public static func protectionReason(_ name: String, sitePrefix: String) -> String? {
        let lowered = name.lowercased()
        let prefix = sitePrefix.lowercased()
        if lowered == ledgerTable { return "it is molam-upgrade's migration ledger" }
        if lowered.hasPrefix("_molam_") { return "it is one of molam-upgrade's own tables" }
        if let reserved = PluginDatabases.reservedTablePrefixes.first(where: { lowered.hasPrefix($0.prefix) }) {
            return "it is \(reserved.owner)"
        }
        // Core tables under the site's prefix, the default "wp_" (a database shared by several
        // installs), and each multisite blog's "<prefix><n>_" prefix.
        for candidate in Set([prefix, "wp_"]) where lowered.hasPrefix(candidate) {
            var rest = Substring(lowered.dropFirst(candidate.count))
            if let underscore = rest.firstIndex(of: "_"), !rest[..<underscore].isEmpty,
               rest[..<underscore].allSatisfy(\.isNumber) {
                rest = rest[rest.index(after: underscore)...]
            }
            if coreTables.contains(String(rest)) { return "it is a WordPress core table" }
            if coreFamilies.contains(where: { rest.hasPrefix($0) }) { return "it is a WooCommerce table" }
        }
        return nil
    }

    /// Why a table namespace (the full `<site prefix><namespace>`) is unsafe, or nil when it is not:
    /// it must not cover any core table or family.
    static func namespaceProblem(_ full: String, sitePrefix: String) -> String? {
        let lowered = full.lowercased()
        let prefix = sitePrefix.lowercased()
        guard !lowered.isEmpty, lowered != prefix else {
            return "it is empty: it would cover every table of the site"
        }
        if let covered = coreTables.map({ prefix + $0 }).first(where: { $0.hasPrefix(lowered) }) {
            return "it covers \(covered)"
        }
        let families = coreFamilies.map { prefix + $0 } + PluginDatabases.reservedTablePrefixes.map(\.prefix)
        if let covered = families.first(where: { $0.hasPrefix(lowered) || lowered.hasPrefix($0) }) {
            return "it covers \(covered)*"
        }
        return nil
    }

    /// The longest common prefix of `tables`, cut after its last "_"; nil when that leaves nothing
    /// beyond the site prefix or covers a core table (then a release may add no table).
    static func inferredNamespace(_ tables: [String], sitePrefix: String) -> String? {
        guard var common = tables.first?.lowercased() else { return nil }
        for table in tables.dropFirst() {
            common = String(zip(common, table.lowercased()).prefix { $0 == $1 }.map(\.0))
        }
        guard let underscore = common.lastIndex(of: "_") else { return nil }
        let namespace = String(common[...underscore])
        // Old manifests may name tables without the site's prefix (acme_payments): the namespace is
        // what their names share, whatever the prefix.
        guard namespaceProblem(namespace, sitePrefix: sitePrefix) == nil else { return nil }
        return namespace
    }

    /// The full namespace a release's new tables must start with.
    public func namespace(of release: PluginManifest) -> String? {
        release.namespace.map { sitePrefix + $0 } ?? installedNamespace
    }

    /// Checks a release's claims before anything changes (`stage`); the error says which table and
    /// why. Every failure here is a refusal (exit 4).
    public func check(_ release: PluginManifest) throws(OwnershipRefusal) {
        let label = "\(release.name) \(release.version)"
        if let declared = release.namespace,
           let problem = Self.namespaceProblem(sitePrefix + declared, sitePrefix: sitePrefix) {
            throw OwnershipRefusal("release \(label): namespace '\(declared)' is refused: \(problem)")
        }
        // A release may narrow its namespace, never move it: a new namespace would hand it the
        // tables of whatever other plugin lives there.
        if let declared = release.namespace, let current = installedNamespace,
           !(sitePrefix + declared).lowercased().hasPrefix(current.lowercased()) {
            throw OwnershipRefusal(
                "release \(label): namespace '\(declared)' (\(sitePrefix + declared)) is outside the installed "
                    + "version's namespace \(current)")
        }
        let installed = Set(installedTables.map { $0.lowercased() })
        let namespace = namespace(of: release)?.lowercased()
        for table in release.tables {
            if let reason = Self.protectionReason(table, sitePrefix: sitePrefix) {
                throw OwnershipRefusal("release \(label) claims table \(table), which no plugin may own: \(reason)")
            }
            let lowered = table.lowercased()
            if installed.contains(lowered) { continue }
            guard let namespace, lowered.hasPrefix(namespace) else {
                let inside = namespace.map { "inside its namespace \($0)" } ?? "(it declares no namespace)"
                throw OwnershipRefusal(
                    "release \(label) claims table \(table), which is neither a table of the installed version "
                        + "nor \(inside)")
            }
        }
    }

    /// The policy migrations of `release` run under: changes on the installed and the release's
    /// tables, CREATE only of the release's.
    public func migrationTables(for release: PluginManifest) -> (owned: [String], creatable: [String]) {
        let creatable = release.tables.filter { Self.protectionReason($0, sitePrefix: sitePrefix) == nil }
        var owned = installedTables
        for table in creatable where !owned.contains(where: { $0.lowercased() == table.lowercased() }) {
            owned.append(table)
        }
        return (owned, creatable)
    }

    /// Whether a restore may write or drop `table`: an ownable table, or the migration ledger (whose
    /// rows are the plugin's and which the agent itself backs up).
    public func mayRestore(_ table: String) -> Bool { Self.mayRestore(table, sitePrefix: sitePrefix) }

    /// `mayRestore` for code that has the site's prefix but no installed manifest (recovery).
    public static func mayRestore(_ table: String, sitePrefix: String) -> Bool {
        table.lowercased() == ledgerTable || protectionReason(table, sitePrefix: sitePrefix) == nil
    }
}

/// A release claims tables it may not own: refused before any change (exit 4).
public struct OwnershipRefusal: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
