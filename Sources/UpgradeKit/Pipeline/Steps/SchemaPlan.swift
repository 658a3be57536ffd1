import Foundation

/// What a rollback after commit does to the owned tables, decided before anything changes: nothing
/// (no schema changed between the versions), the down migrations of the migrations the version put
/// back does not know (newest first), the up migrations it has and the database lacks, or, when the
/// operator asks for it, the backup's tables, with the rows written since kept in quarantine.
enum SchemaPlan {
    case keep
    case revert([Migration])
    case apply([Migration])
    case restoreTables

    /// Refuses (exit 4) a plan that would need to restore tables when the operator did not ask for it;
    /// a fleet rollback never restores tables.
    static func make(
        _ run: PipelineRun, installed: PluginManifest, target: PluginManifest, targetRoot: String,
        backup: BackupSet, database: any PluginDatabase, options: Pipeline.RollbackOptions
    ) throws -> SchemaPlan {
        let site = run.context.site
        let targetMigrations = try Pipeline.loadMigrations(
            target, root: targetRoot, tablePrefix: site.tablePrefix, refusing: false)
        let known = Set(targetMigrations.map(\.version))
        let installedMigrations = Dictionary(
            try Pipeline.loadMigrations(
                installed, root: site.treeDirectory, tablePrefix: site.tablePrefix, refusing: false).map { ($0.version, $0) },
            uniquingKeysWith: { first, _ in first })
        let applied = try database.appliedMigrations().map(\.version)
        let extra = applied.filter { !known.contains($0) }.sorted(by: >)
        let reverts = extra.compactMap { installedMigrations[$0] }
        let missing = extra.filter { installedMigrations[$0]?.downSQL == nil }
        if options.restoreTables { return .restoreTables }
        if missing.isEmpty && !reverts.isEmpty { return .revert(reverts) }
        if missing.isEmpty {
            do {
                let pending = try database.pendingMigrations(targetMigrations)
                return pending.isEmpty ? .keep : .apply(pending)
            } catch {
                try refuse(run, "its migrations do not match this database's ledger (\(error))", backup, database,
                           options: options, to: target)
            }
        }
        let names = missing.map { version in
            installedMigrations[version].map { String($0.fileName.dropLast(".sql".count)) + ".down.sql" }
                ?? "the down migration of version \(version)"
        }
        try refuse(run, "it needs \(names.joined(separator: ", ")), which \(installed.name) \(installed.version) "
                   + "does not ship", backup, database, options: options, to: target)
    }

    private static func refuse(
        _ run: PipelineRun, _ why: String, _ backup: BackupSet, _ database: any PluginDatabase,
        options: Pipeline.RollbackOptions, to target: PluginManifest
    ) throws -> Never {
        let rollback = "rolling back to \(target.name) \(target.version)"
        if options.fleet {
            throw UpgradeError.refused(
                "\(rollback): \(why); a fleet rollback never restores tables, so it is refused; nothing was changed")
        }
        let written = (try? database.quarantineRowsSince(
            backup: backup.tables, tables: backup.pluginTables, keep: false)) ?? [:]
        let rows = written.values.reduce(0, +)
        throw UpgradeError.refused(
            "\(rollback): \(why); restoring the tables from the backup instead would drop \(rows) row"
                + "\(rows == 1 ? "" : "s") written since it (they would be kept in _molam_quarantine_ tables): "
                + "pass --restore-tables to do that; nothing was changed")
    }
}
