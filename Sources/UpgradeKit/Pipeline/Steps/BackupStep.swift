import Foundation

/// `backup`: the installed version's files and the tables either version owns, written and checked
/// before anything risky happens, its place recorded in the run's state. The last step that leaves
/// the site as it is; its undo removes what part of the backup was written.
enum BackupStep {
    /// Backs up `installed`. With `.shadow`, the owned tables are also copied into shadow tables and
    /// live writes recorded from here on, so that a rollback keeps them. Throws when the backup
    /// failed: nothing was changed, and the caller ends the run through `failed`.
    static func run(
        _ run: PipelineRun, installed: PluginManifest, target: PluginManifest, database: any PluginDatabase,
        newTables: [String], tableRestore: TableRestore
    ) throws {
        let context = run.context
        try run.step(.backup, "backing up \(installed.name) \(installed.version)") {
            // The shadows first: the backup file's rows are then copied from them, in short
            // transactions, instead of in one long read of the live tables. The files archive is
            // written meanwhile, on a thread of its own (`BackupSet.create`).
            var shadows = ""
            var tableRestore = tableRestore
            let tables = Pipeline.ownedTables(installed, target)
            let backup = try BackupSet.create(
                pluginDirectory: context.site.pluginDirectory, tree: context.site.treeDirectory, manifest: installed,
                tables: tables, database: database, paths: context.paths, runID: run.id, now: context.clock()
            ) {
                guard tableRestore == .shadow else { return }
                do {
                    let summary = try database.prepareShadows(tables)
                    shadows = "; shadow copies of \(summary.tables.count) tables (\(summary.rows) rows), "
                        + "live writes recorded"
                } catch let error as PluginDatabaseError {
                    guard case .shadowUnsupported = error else { throw error }
                    // The older way, rather than no upgrade: a rollback restores the backup file, and
                    // the rows written in the window are not kept.
                    tableRestore = .file
                    shadows = "; no shadow tables (\(error)): a rollback restores the tables from the backup file"
                    context.progress.note("backup: \(error); a rollback restores the tables from the backup file")
                }
            }
            try run.journal.addBackup(backup.record)
            run.reportBackup(backup.record)
            run.state.backupDirectory = backup.directory
            run.state.backupID = backup.record.id
            // What a restore drops: the release's new tables, and any table absent at the backup (the
            // ledger a first migration creates), which the shadows cannot put back.
            run.state.newTables = newTables + backup.tablesMissing.filter { !newTables.contains($0) }
            try run.save()
            run.state.tableRestore = tableRestore
            try run.save()
            if !backup.skipped.isEmpty { context.progress.note("backup\(backup.skippedNote)") }
            return ((), "\(backup.directory) (\(backup.record.fileCount) files, \(backup.record.sizeBytes) bytes)"
                + backup.skippedNote + shadows)
        }
    }

    /// Whatever part of the backup was written is useless now (the lock is ours: no other run's), and
    /// so is the work directory.
    static func undo(_ run: PipelineRun) {
        guard (try? run.stopIfPoweredOff()) != nil else { return }
        run.tidy()
        Maintenance.removePartialBackups(journal: run.journal, paths: run.context.paths)
        discardShadows(run)
    }

    /// Drops the shadows and the change capture of the run's database, if any; a failure is only
    /// noted (the next run's `recover` drops them).
    static func discardShadows(_ run: PipelineRun) {
        do {
            try run.context.services.openDatabase(run.context.site.database).discardShadows()
        } catch {
            run.context.progress.note("shadow tables not removed yet (the next run removes them): \(error)")
        }
    }

    /// Ends a run whose backup failed: nothing was changed.
    static func failed(_ run: PipelineRun, installed: PluginManifest, _ error: any Error) throws -> RunOutcome {
        undo(run)
        if error is Interrupted { return try run.refuse(error) }
        let message = "backup of \(installed.name) \(installed.version) failed, nothing was changed: \(error)"
        return try run.end(.failed, message, error: message, exitCode: .rolledBack)
    }
}
