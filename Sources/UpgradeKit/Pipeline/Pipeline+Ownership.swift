import Foundation

/// The table ownership policy (Plugin/TableOwnership.swift) as the pipeline's steps use it.
extension Pipeline {
    /// The release with `{prefix}` resolved, once its tables pass the ownership policy; a release
    /// claiming a table it may not own is refused before any change (exit 4).
    static func ownedRelease(
        _ release: PluginManifest, installed: PluginManifest, site: SiteConfiguration
    ) throws -> PluginManifest {
        if let problem = release.releaseProblem() { throw UpgradeError.refused("\(problem)") }
        let resolved = release.resolvingTables(prefix: site.tablePrefix)
        do {
            try TableOwnership(sitePrefix: site.tablePrefix, installed: installed).check(resolved)
        } catch {
            throw UpgradeError.refused("\(error)")
        }
        return resolved
    }

    /// What the release's migrations may touch on this site.
    static func confinement(
        _ installed: PluginManifest, _ target: PluginManifest, site: SiteConfiguration
    ) -> MigrationConfinement {
        let tables = TableOwnership(sitePrefix: site.tablePrefix, installed: installed).migrationTables(for: target)
        return MigrationConfinement(
            plugin: target.name, owned: tables.owned, creatable: tables.creatable, allowWideGrants: site.allowWideGrants)
    }
}
