import Foundation

/// `recover`: finishes runs that a crash, a kill or a power cut interrupted. A run that never reached
/// the swap changed nothing on the site and is only tidied; a run whose new version passed `verify`
/// and is still live is committed; anything else is rolled back to exactly the old version.
public enum Recovery {
    static func recoverAll(journal: Journal, context: UpgradeContext, excluding current: String? = nil) -> [RunOutcome] {
        var outcomes: [RunOutcome] = []
        adoptLostRuns(journal: journal, context: context)
        let runs = (try? journal.unfinishedRuns()) ?? []
        // Only this install's runs: another shop's run is finished with that shop's configuration.
        for record in runs where record.id != current && record.pluginDirectory == context.site.pluginDirectory {
            outcomes.append(recover(record, journal: journal, context: context))
        }
        // A rollback that failed on something passing (the site holding a lock past the busy
        // timeout) is tried again, waiting longer, as long as what it has to undo is still there.
        if let failed = retryableRollback(journal: journal, context: context, excluding: current) {
            outcomes.append(retry(failed, journal: journal, context: context))
        }
        // What a crash left outside the journal's view: half-written backups and work directories,
        // and shadow tables no unfinished run of this site needs any more.
        Maintenance.removePartialBackups(journal: journal, paths: context.paths)
        let unfinished = ((try? journal.unfinishedRuns()) ?? [])
            .filter { $0.id != current && $0.pluginDirectory == context.site.pluginDirectory }
        if unfinished.isEmpty, retryableRollback(journal: journal, context: context, excluding: current) == nil,
           let database = try? context.services.openDatabase(context.site.database) {
            try? database.discardShadows()
        }
        Maintenance.sweepWorkDirectories(journal: journal, context: context)
        return outcomes
    }

    /// The newest run of this site, if its rollback failed (exit 3) and left files or tables to put back.
    static func retryableRollback(journal: Journal, context: UpgradeContext, excluding current: String?) -> RunRecord? {
        guard let newest = (try? journal.recentRuns(limit: 2, pluginDirectory: context.site.pluginDirectory))?
                .first(where: { $0.id != current }),
              newest.status == .rollbackFailed, newest.state.backupDirectory != nil else { return nil }
        let live = FileSystem.identity(of: context.site.pluginDirectory)
        let filesLeft = newest.state.liveIdentityBefore != nil && live != newest.state.liveIdentityBefore
            && newest.state.stagedTree.map { FileSystem.identity(of: $0) == newest.state.liveIdentityBefore } == true
        let tablesLeft = newest.state.tableRestore == .shadow
            && (try? context.services.openDatabase(context.site.database).hasShadows()) == true
        return filesLeft || tablesLeft ? newest : nil
    }

    static func retry(_ record: RunRecord, journal: Journal, context: UpgradeContext) -> RunOutcome {
        let run = PipelineRun.resuming(record, context: context, journal: journal)
        run.rollbackBusyTimeout = context.rollbackBusyTimeout * 4
        do {
            return try Rollback.automatic(
                run: run, reason: "retrying a rollback that failed (\(record.error ?? "exit 3")), waiting longer for locks",
                trigger: .recovery)
        } catch {
            let message = "ALERT: cannot retry the rollback of run \(record.id): \(error)"
            return run.outcome(.rollbackFailed, message, error: message, exitCode: .rollbackFailed, rollbackStatus: .failed)
        }
    }

    /// Runs that changed the site and that the journal does not know (its WAL was lost with a crash)
    /// are taken back from their run files, so they are finished like any interrupted run.
    static func adoptLostRuns(journal: Journal, context: UpgradeContext) {
        let pluginParent = (context.site.pluginDirectory as NSString).deletingLastPathComponent
        let bases = [context.paths.work, pluginParent + "/" + Workspace.hiddenName]
        for file in RunFile.unfinished(in: bases, pluginDirectory: context.site.pluginDirectory) {
            let known: RunRecord?
            do { known = try journal.run(id: file.id) } catch { continue }
            guard let record = known else {
                try? journal.adoptRun(
                    id: file.id, command: file.command, trigger: file.trigger, plugin: file.plugin,
                    pluginDirectory: file.pluginDirectory, fromVersion: file.fromVersion, toVersion: file.toVersion,
                    state: file.state, now: context.clock())
                context.progress.note("run \(file.id) was missing from the journal; taken back from its run file")
                continue
            }
            // The journal lost the state saved right before the swap: the file has it.
            if [RunStatus.running, .rollingBack].contains(record.status), record.state.stagedIdentity == nil,
               file.state.stagedIdentity != nil {
                try? journal.saveState(run: file.id, file.state)
            }
        }
    }

    static func recover(_ record: RunRecord, journal: Journal, context: UpgradeContext) -> RunOutcome {
        let run = PipelineRun.resuming(record, context: context, journal: journal)
        do {
            let steps = try journal.steps(run: record.id)
            let started = Set(steps.map(\.name))
            let done = Set(steps.filter { $0.status == .done }.map(\.name))
            let last = steps.last(where: { $0.name != StepName.rollback.rawValue })?.name ?? "start"
            let live = FileSystem.identity(of: context.site.pluginDirectory)

            if record.status == .rollingBack || started.contains(StepName.rollback.rawValue) {
                return try Rollback.automatic(
                    run: run, reason: "finishing a rollback interrupted by a crash", trigger: .recovery)
            }
            let swapped = started.contains(StepName.swap.rawValue)
                || (record.state.stagedIdentity != nil && live == record.state.stagedIdentity)
            if !swapped {
                run.tidy()
                BackupStep.discardShadows(run)
                let message = "interrupted during \(last) before anything on the site changed; tidied up"
                try run.finish(.aborted, rollbackStatus: .notRequired, error: message, exitCode: .rolledBack)
                // Journaled as an interrupted run (exit 1); the recovery itself went well.
                return run.outcome(.aborted, message, exitCode: .ok)
            }
            if done.contains(StepName.verify.rawValue), live != nil, live == record.state.stagedIdentity {
                let now = context.clock()
                let detail = "committed by recovery after verify had passed"
                try journal.recordStep(run: record.id, .commit, status: .done, detail: detail, now: now)
                run.reportStep(.commit, .done, started: now, finished: now, detail: detail, error: nil)
                return try run.end(
                    .succeeded, "interrupted after verify passed; committed \(record.toVersion ?? "")", exitCode: .ok)
            }
            return try Rollback.automatic(run: run, reason: "interrupted during \(last)", trigger: .recovery)
        } catch {
            let message = "ALERT: cannot recover run \(record.id): \(error)"
            return run.outcome(
                .rollbackFailed, message, error: message, exitCode: .rollbackFailed, rollbackStatus: .failed)
        }
    }

    /// The `recover` command: take the lock and finish whatever was interrupted.
    public static func run(context: UpgradeContext) throws(UpgradeError) -> [RunOutcome] {
        let session = try ChangingSession(context: context, command: "recover")
        // Finished whatever signal comes: a recovery left half done is the very thing it repairs.
        let outcomes = Signals.deferring { recoverAll(journal: session.journal, context: context) }
        if Signals.received == nil { _ = session.deliverReports() }
        return outcomes
    }
}
