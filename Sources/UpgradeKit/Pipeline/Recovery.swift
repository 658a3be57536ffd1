import Foundation

/// `recover`: finishes runs that a crash, a kill or a power cut interrupted. A run that never reached
/// the swap changed nothing on the site and is only tidied; a run whose new version passed `verify`
/// and is still live is committed; anything else is rolled back to exactly the old version.
public enum Recovery {
    static func recoverAll(journal: Journal, context: UpgradeContext, excluding current: String? = nil) -> [RunOutcome] {
        var outcomes: [RunOutcome] = []
        let runs = (try? journal.unfinishedRuns()) ?? []
        // Only this install's runs: another shop's run is finished with that shop's configuration.
        for record in runs where record.id != current && record.pluginDirectory == context.site.pluginDirectory {
            outcomes.append(recover(record, journal: journal, context: context))
        }
        // What a crash left outside the journal's view: half-written backups and work directories,
        // and shadow tables no unfinished run of this site needs any more.
        Maintenance.removePartialBackups(journal: journal, paths: context.paths)
        let unfinished = ((try? journal.unfinishedRuns()) ?? [])
            .filter { $0.id != current && $0.pluginDirectory == context.site.pluginDirectory }
        if unfinished.isEmpty, let database = try? context.services.openDatabase(context.site.database),
           (try? database.hasShadows()) == true {
            try? database.discardShadows()
        }
        Maintenance.sweepWorkDirectories(journal: journal, context: context)
        return outcomes
    }

    static func recover(_ record: RunRecord, journal: Journal, context: UpgradeContext) -> RunOutcome {
        let run = PipelineRun(
            context: context, journal: journal, id: record.id, command: RunCommand(rawValue: record.command) ?? .upgrade,
            trigger: RunTrigger(rawValue: record.trigger) ?? .manual, plugin: record.plugin)
        (run.fromVersion, run.toVersion) = (record.fromVersion, record.toVersion)
        run.state = record.state
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
