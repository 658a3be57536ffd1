import Foundation

/// The upgrade run, step by step as DESIGN.md tells it: resolve, eligibility, download, stage, backup,
/// swap, migrate, verify, commit. Each step is a type in `Steps/` with its undo beside it. Before the
/// backup, a failure ends the run with nothing changed (the undos only tidy); from the swap on, it
/// is rolled back (`Rollback.automatic` walks the undos of swap and migrate).
///
/// `stage` runs before `backup` (DESIGN.md lists it after): a bad archive is then refused before any
/// time or disk goes into a backup, and the backup is taken as late as possible, right before the
/// swap, so fewer rows written by live payments fall between the backup and the switch.
extension Pipeline {
    static func upgrade(run: PipelineRun, options: UpgradeOptions) throws -> RunOutcome {
        let resolved: ResolveStep.Resolved
        do {
            resolved = try ResolveStep.run(run, options)
        } catch {
            return try run.refuse(error)
        }
        let installed = resolved.installed
        run.plugin = installed.name
        run.fromVersion = installed.version.description

        var options = options
        let verdict: EligibilityStep.Verdict
        do {
            verdict = try EligibilityStep.run(run, options, resolved)
        } catch {
            return try run.refuse(error)
        }
        switch verdict {
        case .skip(let reason):
            return try run.skipped(reason)
        case .rollBack(let reason):
            var outcome = try run.skipped("rolling back: \(reason)")
            outcome.rollBackReason = reason
            return outcome
        case .proceed(let version):
            options.expectedVersion = version
        }
        if !options.dryRun {
            run.openReports(plugin: installed.name, from: run.fromVersion, to: options.expectedVersion?.description)
        }
        let policy = ReleasePolicy(
            installed: installed, requested: options.expectedVersion, force: options.force,
            highestAccepted: try run.journal.highestAcceptedVersion(pluginDirectory: run.context.site.pluginDirectory)
                .flatMap(SemanticVersion.init))

        // download + stage: nothing on the site changes; any failure is a refusal.
        let staged: StageStep.Staged
        do {
            let work = try Workspace.prepare(run)
            let download = work + "/release.archive"
            if let source = ReleaseSource(options, version: options.expectedVersion) {
                try DownloadStep.run(run, source, to: download, api: resolved.api, policy: policy)
            }
            staged = try StageStep.run(
                run, archive: download, work: work, options: options, policy: policy, database: resolved.database)
            try run.journal.describeRun(run: run.id, plugin: nil, from: nil, to: staged.target.version.description)
            // Before any change: migrations under an account the database cannot confine are refused.
            if try !resolved.database.pendingMigrations(staged.migrations).isEmpty,
               let problem = try resolved.database.confinementProblem(
                Pipeline.confinement(installed, staged.target, site: run.context.site)) {
                throw UpgradeError.refused("release \(staged.target.name) \(staged.target.version): \(problem)")
            }
        } catch let error as ReleasePolicy.AlreadyInstalled {
            StageStep.undo(run)
            run.toVersion = run.fromVersion
            return try run.end(.skipped, "skipped: \(error)", exitCode: .ok)
        } catch {
            StageStep.undo(run)
            return try run.refuse(error)
        }
        let target = staged.target
        run.toVersion = target.version.description
        if options.dryRun {
            return try DryRun.run(run, installed: installed, staged: staged, database: resolved.database)
        }

        do {
            // Shadow tables only when the schema will change: otherwise a rollback keeps the tables
            // as they are, with every row written meanwhile.
            let migrates = try !resolved.database.pendingMigrations(staged.migrations).isEmpty
            try BackupStep.run(
                run, installed: installed, target: target, database: resolved.database,
                newTables: target.tables.filter { !installed.tables.contains($0) },
                tableRestore: migrates ? .shadow : .none)
        } catch {
            return try BackupStep.failed(run, installed: installed, error)
        }

        // swap, migrate, verify, commit: any failure from here on is rolled back.
        do {
            try SwapStep.run(run)
            try MigrateStep.run(run, staged.migrations, installed: installed, target: target, database: resolved.database)
            try VerifyStep.run(run, expecting: target)
            // Verify passed: a signal from here on lets the commit finish (as `recover` would).
            return try Signals.deferring {
                try CommitStep.run(
                    run, message: "upgraded \(installed.name) \(installed.version) → \(target.version)")
            }
        } catch {
            return try Rollback.automatic(run: run, reason: "\(error)", trigger: .automatic)
        }
    }
}
