import Foundation

/// `resolve`: what is installed, the database it writes, and what the central API proposes.
/// Reads only; its undo is nothing.
enum ResolveStep {
    struct Resolved {
        var installed: PluginManifest
        var database: any PluginDatabase
        /// The central API client, when the release comes from it.
        var api: CentralAPI?
        var rollout: Rollout?
    }

    static func run(_ run: PipelineRun, _ options: Pipeline.UpgradeOptions) throws -> Resolved {
        let context = run.context
        let site = context.site
        return try run.step(.resolve, "reading the installed plugin and the release") {
            let (manifest, database) = try openSite(context)
            try run.journal.describeRun(run: run.id, plugin: manifest.name, from: manifest.version.description, to: nil)
            // The host trusts the version it runs: the floor for later releases starts there.
            try run.journal.acceptVersion(
                manifest.version, plugin: manifest.name, pluginDirectory: site.pluginDirectory, now: context.clock())
            var resolved = Resolved(installed: manifest, database: database)
            let installed = "installed \(manifest.name) \(manifest.version)"
            guard options.archive == nil else { return (resolved, "\(installed); release \(options.source)") }
            let client = try CentralRelease.client(context)
            resolved.api = client
            if options.force, let wanted = options.expectedVersion {
                return (resolved, "\(installed); --force --to \(wanted): rollout not consulted")
            }
            let found = try CentralRelease.rollout(client, plugin: manifest.name)
            resolved.rollout = found
            let detail = found.map {
                "rollout \($0.id) of \($0.pluginName) \($0.versionText): \($0.status.rawValue), "
                    + "\($0.percentage) % (\($0.strategy.rawValue))"
            } ?? "no rollout for \(manifest.name)"
            if let found, found.status != .rolledBack {
                try run.journal.describeRun(run: run.id, plugin: nil, from: nil, to: found.version.description)
            }
            return (resolved, "\(installed); \(detail)")
        }
    }

    /// The installed plugin, as far as it may own tables, and its database.
    static func openSite(_ context: UpgradeContext) throws -> (PluginManifest, any PluginDatabase) {
        let site = context.site
        // A link the web server's user planted is refused, never followed; one of the agent's own
        // (swap: symlink) leads to the release the site runs.
        let tree = try LiveTree.directory(of: site.pluginDirectory)
        var manifest: PluginManifest
        do {
            manifest = try PluginManifest.load(pluginDirectory: tree)
        } catch {
            throw UpgradeError.configuration("installed plugin: \(error)")
        }
        // What the installed version may really own: a core table its manifest claims (a bad release
        // installed before these checks existed) is never backed up, restored or dropped.
        manifest = manifest.resolvingTables(prefix: site.tablePrefix)
        manifest.tables = TableOwnership(sitePrefix: site.tablePrefix, installed: manifest).installedTables
        do {
            return (manifest, try context.services.openDatabase(site.database))
        } catch {
            throw UpgradeError.configuration("plugin database: \(error)")
        }
    }
}
