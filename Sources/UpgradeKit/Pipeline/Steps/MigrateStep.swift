import Foundation

/// `migrate`: the release's pending migrations applied under the confinement of what the plugin
/// owns, and its undo, which puts the owned tables back from the run's backup. A manual rollback's
/// `migrate` restores the tables of the version it puts back (`restore`).
enum MigrateStep {
    static func run(
        _ run: PipelineRun, _ migrations: [Migration], installed: PluginManifest, target: PluginManifest,
        database: any PluginDatabase
    ) throws {
        let context = run.context
        try run.step(.migrate, "applying migrations") {
            let pending = try database.pendingMigrations(migrations)
            guard !pending.isEmpty else { return ((), "no pending migrations") }
            try database.applyMigrations(
                pending, now: context.clock(), confinement: Pipeline.confinement(installed, target, site: context.site))
            return ((), "applied " + pending.map { String(format: "%04d_%@", $0.version, $0.name) }
                .joined(separator: ", "))
        }
    }

    /// A rollback run's `migrate`: the schema of the version put back, as `plan` decided, rows kept.
    static func revert(
        _ run: PipelineRun, _ plan: SchemaPlan, from backup: BackupSet, installed: PluginManifest,
        target: PluginManifest, database: any PluginDatabase
    ) throws {
        let site = run.context.site
        let confinement = Pipeline.confinement(installed, target, site: site)
        try run.step(.migrate, "putting back the schema of \(target.name) \(target.version)") {
            switch plan {
            case .keep:
                return ((), "no schema change between the versions: the tables are kept as they are")
            case .revert(let migrations):
                try database.revertMigrations(migrations, confinement: confinement)
                return ((), "reverted " + migrations.map { String($0.down?.fileName ?? $0.fileName) }
                    .joined(separator: ", ") + "; every row kept")
            case .apply(let migrations):
                try database.applyMigrations(migrations, now: run.context.clock(), confinement: confinement)
                return ((), "applied " + migrations.map(\.fileName).joined(separator: ", "))
            case .restoreTables:
                // installed.tables holds no core table (openSite), and the restore touches none either,
                // even if the backup was taken under a manifest that claimed one.
                let ownership = TableOwnership(sitePrefix: site.tablePrefix, installed: installed)
                let kept = try database.quarantineRowsSince(
                    backup: backup.tables, tables: backup.pluginTables, keep: true)
                let alsoDrop = installed.tables.filter { !backup.record.tables.contains($0) }
                let summary = try database.restoreTables(
                    from: backup.tables, alsoDrop: alsoDrop, mayTouch: ownership.mayRestore)
                let rows = kept.values.reduce(0, +)
                return ((), "--restore-tables: restored \(summary.restored.count) tables from \(backup.tables)"
                    + (summary.dropped.isEmpty ? "" : "; dropped \(summary.dropped.joined(separator: ", "))")
                    + "; \(rows) row\(rows == 1 ? "" : "s") written since the backup kept in "
                    + (kept.isEmpty ? "quarantine" : kept.keys.sorted().map(PluginDatabases.quarantineTable(for:))
                        .joined(separator: ", ")))
            }
        }
    }

    /// After the window: the tables the restore set aside are emptied a chunk at a time and dropped.
    /// A failure is only noted; `recover` drops them later.
    static func afterUndo(_ run: PipelineRun) {
        do {
            try run.context.services.openDatabase(run.context.site.database).dropRetiredTables()
        } catch {
            run.notes.append("the replaced tables are not dropped yet (the next run drops them): \(error)")
        }
    }

    /// Puts the owned tables back as the installed version had them, whenever the new code may have
    /// been live, keeping the rows written since (`TableRestore`). Returns whether it did.
    static func undo(_ run: PipelineRun) throws -> Bool {
        guard let backupDirectory = run.state.backupDirectory else { return false }
        let database = try run.context.services.openDatabase(run.context.site.database)
        database.busyTimeoutSeconds = run.rollbackBusyTimeout
        let prefix = run.context.site.tablePrefix
        // Whatever the run recorded, a restore never writes or drops a table no plugin may own.
        let mayTouch = { (table: String) in TableOwnership.mayRestore(table, sitePrefix: prefix) }
        switch run.state.tableRestore {
        case .none?:
            // No schema changed: the rows written meanwhile are simply kept.
            return false
        case .shadow?:
            guard try database.hasShadows() else {
                // Restored already: the rename and the shadows' removal commit together.
                return run.state.stagedIdentity != nil
            }
            guard run.state.stagedIdentity != nil else {
                try database.discardShadows()
                return false
            }
            // The copying first, then the rename in a transaction of its own, right before the files.
            var summary = try database.prepareShadowRestore(mayTouch: mayTouch)
            let last = try database.restoreShadows(alsoDrop: run.state.newTables ?? [], mayTouch: mayTouch)
            summary.merged += last.merged
            summary.quarantined.merge(last.quarantined, uniquingKeysWith: +)
            if !summary.quarantined.isEmpty {
                run.notes.append("kept " + summary.quarantined.sorted { $0.key < $1.key }
                    .map { "\($0.value) rows of \($0.key) in \(PluginDatabases.quarantineTable(for: $0.key))" }
                    .joined(separator: ", ") + " (the old schema cannot take them)")
            }
            if summary.merged > 0 { run.notes.append("\(summary.merged) rows written meanwhile kept") }
            return true
        case .file?, nil:
            guard run.state.stagedIdentity != nil else { return false }
            _ = try database.restoreTables(
                from: BackupFiles(directory: backupDirectory).tables, alsoDrop: run.state.newTables ?? [],
                mayTouch: mayTouch)
            return true
        }
    }
}
