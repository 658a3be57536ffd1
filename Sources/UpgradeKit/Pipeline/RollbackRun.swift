import Foundation

/// The operator's `rollback` (and a rollout rolled back upstream): a run of its own that puts a
/// previous version back from its backup through the same steps as an upgrade, backing up the
/// current version first, and is itself rolled back if the old version fails its checks.
extension Pipeline {
    static func rollback(run: PipelineRun, options: RollbackOptions) throws -> RunOutcome {
        let context = run.context
        let chosen: (installed: PluginManifest, database: any PluginDatabase, backup: BackupSet, kept: String?)
        do {
            chosen = try run.step(.resolve, "choosing the version to put back") {
                let chosen = try chooseBackup(run, options)
                return (chosen, "\(chosen.0.name) \(chosen.0.version) → \(chosen.2.record.version) from "
                    + chosen.2.record.path + (chosen.3 != nil ? " (kept tree available)" : ""))
            }
        } catch {
            return try run.refuse(error)
        }
        let (installed, database, source, keptTree) = chosen
        run.plugin = installed.name
        run.fromVersion = installed.version.description
        run.toVersion = source.record.version
        let to = source.record.version
        run.openReports(plugin: run.plugin, from: run.fromVersion, to: to)
        run.reportRollbackInitiated(
            trigger: options.trigger, reason: options.reason ?? "manual rollback", from: run.fromVersion, to: to)
        try run.skip(.eligibility, options.trigger == .manual ? "manual rollback" : "rollback: \(options.reason ?? "")")
        try run.skip(.download, "restoring from a local backup")

        let target: PluginManifest
        let plan: SchemaPlan
        do {
            let work = try Workspace.prepare(run)
            (target, plan) = try run.step(.stage, "preparing \(installed.name) \(to)") {
                let (target, root, how) = try stageBackup(run, source, keptTree: keptTree, installed: installed, work: work)
                let plan = try SchemaPlan.make(
                    run, installed: installed, target: target, targetRoot: root, backup: source, database: database,
                    options: options)
                // Down (or up) migrations under an account the database cannot confine: refused now.
                switch plan {
                case .revert, .apply:
                    if let problem = try database.confinementProblem(
                        Pipeline.confinement(installed, target, site: context.site)) {
                        throw UpgradeError.refused("rollback to \(to): \(problem)")
                    }
                case .keep, .restoreTables:
                    break
                }
                return ((target, plan), how)
            }
        } catch {
            StageStep.undo(run)
            return try run.refuse((error as? UpgradeError)
                ?? .failed("preparing \(installed.name) \(to) failed, nothing was changed: \(error)"))
        }

        do {
            // Should the version put back fail its checks: nothing to undo in the tables when the schema
            // stays, shadows keeping the rows written meanwhile when migrations run, and the file
            // restore of the explicit --restore-tables path undone from this run's own backup file.
            let tableRestore: TableRestore = switch plan {
            case .keep: .none
            case .revert, .apply: .shadow
            case .restoreTables: .file
            }
            try BackupStep.run(
                run, installed: installed, target: target, database: database, newTables: [],
                tableRestore: tableRestore)
        } catch {
            return try BackupStep.failed(run, installed: installed, error)
        }

        do {
            let window = context.clock()
            defer { run.rollbackWindowMilliseconds = Int(context.clock().timeIntervalSince(window) * 1000) }
            // From the swap on, a signal does not undo what the operator asked for: the rollback runs
            // to its end and then says it was signalled. A signal before (resolve, stage, backup; the
            // last check is after-backup) stops it with nothing changed.
            return try Signals.deferring {
                try SwapStep.run(run)
                try MigrateStep.revert(run, plan, from: source, installed: installed, target: target, database: database)
                try VerifyStep.run(run, expecting: target)
                let reason = options.reason.map { " (\($0))" } ?? ""
                return try CommitStep.run(
                    run, message: "rolled back \(installed.name) \(installed.version) → \(to)\(reason)")
            }
        } catch {
            return try Rollback.automatic(run: run, reason: "\(error)", trigger: .automatic)
        }
    }

    /// The backup to put back: the one of the version asked for, or the newest of another version
    /// (an older one only, when the rollout was rolled back upstream). Checked whole before use.
    private static func chooseBackup(_ run: PipelineRun, _ options: RollbackOptions) throws
        -> (PluginManifest, any PluginDatabase, BackupSet, String?)
    {
        let site = run.context.site
        let (manifest, database) = try ResolveStep.openSite(run.context)
        let backups = try run.journal.backups(plugin: manifest.name, pluginDirectory: site.pluginDirectory)
        let candidates = backups.filter { backup in
            if let wanted = options.targetVersion { return SemanticVersion(backup.version) == wanted }
            guard let version = SemanticVersion(backup.version) else { return false }
            return options.olderOnly ? version < manifest.version : version != manifest.version
        }
        guard let chosen = candidates.first else {
            let wanted = options.targetVersion.map { "version \($0)" } ?? "a version other than \(manifest.version)"
            throw UpgradeError.configuration(
                "no backup of \(manifest.name) holds \(wanted); `molam-upgrade status` lists the backups")
        }
        if SemanticVersion(chosen.version) == manifest.version && !options.force {
            throw UpgradeError.configuration(
                "\(manifest.name) \(manifest.version) is already installed; pass --force to restore it anyway")
        }
        let backup = BackupSet.open(chosen)
        try backup.verify(database: database)
        let kept = try Workspace.keptTree(for: chosen, journal: run.journal)
        try run.journal.describeRun(
            run: run.id, plugin: manifest.name, from: manifest.version.description, to: chosen.version)
        return (manifest, database, backup, kept)
    }

    /// A manual rollback's `stage`: the kept tree of the earlier upgrade when it is still there, else
    /// the backup's files archive, restored into the work directory and checked against its manifest.
    private static func stageBackup(
        _ run: PipelineRun, _ source: BackupSet, keptTree: String?, installed: PluginManifest, work: String
    ) throws -> (manifest: PluginManifest, root: String, how: String) {
        let site = run.context.site
        let stageDirectory = work + "/stage"
        try FileSystem.makeDirectory(stageDirectory, mode: 0o700)
        let topName = (site.pluginDirectory as NSString).lastPathComponent
        var root = stageDirectory + "/" + topName
        var how = "restored from \(BackupFiles.filesArchiveName)"
        if let keptTree {
            try FileSystem.moveNoReplace(keptTree, to: root)
            how = "kept tree of the earlier upgrade"
        } else {
            let expected = try TreeManifest.read(from: source.filesManifest)
            root = try TreeArchive.restore(archivePath: source.filesArchive, into: stageDirectory, expecting: expected)
        }
        // A kept release of `swap: symlink` is a link to its release directory.
        let files = LiveTree.resolve(kept: root, pluginPath: site.pluginDirectory) ?? root
        let manifest = try PluginManifest.load(pluginDirectory: files).resolvingTables(prefix: site.tablePrefix)
        guard manifest.name == installed.name else {
            throw UpgradeError.failed("backup \(source.directory) holds \(manifest.name), not \(installed.name)")
        }
        let kept = try PreservedPaths.carry(
            installed: installed, release: manifest, from: site.treeDirectory, into: files)
        how += kept.detail
        StageStep.record(run, staged: root, version: manifest.version)
        try run.save()
        return (manifest, files, how)
    }
}
