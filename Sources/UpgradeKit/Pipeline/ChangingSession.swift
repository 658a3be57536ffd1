import Foundation

/// The lock, the journal and recovery of earlier runs: what every command that changes something
/// goes through first.
final class ChangingSession {
    let context: UpgradeContext
    let lock: StateLock
    /// One agent per plugin directory, whatever its state directory.
    let pluginLock: StateLock
    let journal: Journal
    let lockedAt: Date

    init(context: UpgradeContext, command: String) throws(UpgradeError) {
        self.context = context
        let paths = context.paths
        // The state directory, and what the agent keeps in it, must be the agent's alone: with a
        // folder others can write, a planted link or hard link turns root's sweeps and lock against
        // the host. Checked by descriptor, before the lock file in it is even opened.
        let state: DirectoryHandle
        do {
            state = try TrustedDirectory.openCreating(paths.root, what: "state directory")
            for (path, what) in [(paths.work, "work directory"), (BackupStore(paths: paths).root, "backup directory")]
            where FileSystem.exists(path) {
                _ = try TrustedDirectory.open(path, what: what)
            }
        } catch {
            throw .configuration(error.description)
        }
        do {
            lock = try StateLock(stateDirectory: state, command: command, detail: "")
            pluginLock = try PluginDirectoryLock.take(
                pluginDirectory: context.site.pluginDirectory, stateDirectory: paths.root, command: command)
        } catch {
            if case .held = error { throw .unavailable("\(error)") }
            throw .configuration("\(error)")
        }
        lockedAt = context.clock()
        do {
            journal = try Journal(path: paths.journal)
        } catch {
            throw .configuration("\(error)")
        }
    }

    /// Releases the run lock: the run is over, and what follows (report delivery) must not keep an
    /// operator's urgent `rollback` waiting. Nothing may change the site after this.
    func releaseLock() {
        pluginLock.release()
        lock.release()
    }

    /// Delivers queued reports after releasing the run lock, serialised by the outbox's own lock and
    /// within `ReportDelivery.runDeadline` (`ReportDelivery.deliverQueued`). Never throws: the run's
    /// outcome is already decided.
    func deliverReports() -> ReportDelivery.Result? {
        releaseLock()
        guard context.reportsEnabled else { return nil }
        return ReportDelivery.deliverQueued(
            context: context, journal: journal, deadline: ReportDelivery.runDeadline)
    }

    /// Opens a run and journals its `lock` and `recover` steps.
    func beginRun(
        _ command: RunCommand, trigger: RunTrigger, plugin: String, fromVersion: String? = nil,
        toVersion: String? = nil, dryRun: Bool = false
    ) throws -> (PipelineRun, [RunOutcome]) {
        let id = try journal.beginRun(
            command: command, trigger: trigger, plugin: plugin, pluginDirectory: context.site.pluginDirectory,
            fromVersion: fromVersion, toVersion: toVersion, dryRun: dryRun, now: lockedAt)
        // What the outcome names is learnt by `resolve`; until then, only the plugin's likely name.
        let run = PipelineRun(
            context: context, journal: journal, id: id, command: command, trigger: trigger, plugin: plugin)
        try journal.recordStep(run: id, .lock, status: .done, detail: lock.path, now: context.clock())
        // A recovery is finished whatever signal comes; the run stops, if it must, at its next step.
        let recovered = try Signals.deferring { try recover(run) }
        return (run, recovered)
    }

    /// The `recover` step: finishes interrupted runs before this one goes on.
    private func recover(_ run: PipelineRun) throws -> [RunOutcome] {
        let (journal, context, id) = (self.journal, self.context, run.id)
        return try run.step(.recover, "looking for interrupted runs") { () -> ([RunOutcome], String?) in
            let outcomes = Recovery.recoverAll(journal: journal, context: context, excluding: id)
            let detail = outcomes.isEmpty
                ? "nothing to recover"
                : outcomes.map { "run \($0.runID ?? "?"): \($0.message)" }.joined(separator: "; ")
            if let failed = outcomes.first(where: { $0.exitCode == .rollbackFailed }) {
                throw UpgradeError.rollbackFailed("recovery of an interrupted run failed: \(failed.message)")
            }
            return (outcomes, detail)
        }
    }

    /// Runs a command's body under this session: unexpected errors (a journal that cannot be written,
    /// say) become typed ones, and the lock goes before report delivery, which may wait on a slow API.
    func perform(deliveringReports: Bool = true, _ body: () throws -> RunOutcome) throws(UpgradeError) -> RunOutcome {
        defer { releaseLock() }
        var outcome: RunOutcome
        do {
            outcome = try body()
        } catch let error as UpgradeError {
            throw error
        } catch {
            throw .failed("\(error)")
        }
        releaseLock()
        // After a signal the agent is expected to stop soon: queued reports wait for the next run.
        if deliveringReports && Signals.received == nil { outcome.reports = deliverReports() }
        return outcome
    }
}
