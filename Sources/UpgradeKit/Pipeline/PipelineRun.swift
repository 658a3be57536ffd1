import Foundation

/// One journaled run: it writes each step's intent before doing it and its outcome after, and
/// saves the run's on-disk state before every risky step, so that `recover` can always finish it.
final class PipelineRun {
    let context: UpgradeContext
    let journal: Journal
    let id: String
    let command: String
    let trigger: String
    var state = RunState()
    /// The staged tree's identity when it was extracted and checked; the swap refuses any other.
    var stagedIdentityAtStage: FileIdentity?
    /// For a manual rollback: how long files and tables took to put back (its `complete` report).
    var rollbackWindowMilliseconds: Int?

    init(context: UpgradeContext, journal: Journal, id: String, command: String, trigger: String) {
        self.context = context
        self.journal = journal
        self.id = id
        self.command = command
        self.trigger = trigger
    }

    /// Runs `body` as the named step. `body` returns the step's value and a one-line detail.
    @discardableResult
    func step<T>(_ name: StepName, _ message: String, _ body: () throws -> (T, String?)) throws -> T {
        let started = context.clock()
        let stepID = try journal.startStep(run: id, name, now: started)
        context.progress.stepStarted(name, message)
        do {
            try FaultInjection.hit("before", name)
            let (value, detail) = try body()
            try FaultInjection.hit("after", name)
            let finished = context.clock()
            try journal.finishStep(stepID, status: .done, detail: detail, now: finished)
            context.progress.stepFinished(name, .done, detail)
            reportStep(name, .done, started: started, finished: finished, detail: detail, error: nil)
            return value
        } catch {
            let finished = context.clock()
            try? journal.finishStep(stepID, status: .failed, error: "\(error)", now: finished)
            context.progress.stepFinished(name, .failed, "\(error)")
            reportStep(name, .failed, started: started, finished: finished, detail: nil, error: "\(error)")
            throw error
        }
    }

    func skip(_ name: StepName, _ reason: String) throws {
        let now = context.clock()
        try journal.recordStep(run: id, name, status: .skipped, detail: reason, now: now)
        context.progress.stepFinished(name, .skipped, reason)
        reportStep(name, .skipped, started: now, finished: now, detail: reason, error: nil)
    }

    func reportStep(
        _ name: StepName, _ status: StepStatus, started: Date, finished: Date, detail: String?, error: String?
    ) {
        reportStep(StepRecord(
            id: 0, runID: id, name: name.rawValue, status: status, startedAt: Journal.timestamp(started),
            finishedAt: Journal.timestamp(finished),
            durationMilliseconds: Int((finished.timeIntervalSince(started) * 1000).rounded()), detail: detail,
            error: error))
    }

    func save() throws {
        try journal.saveState(run: id, state)
    }

    func finish(_ status: RunStatus, rollbackStatus: String?, error: String?, exitCode: ExitCode) throws {
        reportOutcome(status: status, rollbackStatus: rollbackStatus, error: error)
        try journal.finishRun(
            run: id, status: status, rollbackStatus: rollbackStatus, error: error, exitCode: Int(exitCode.rawValue),
            now: context.clock())
    }
}

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
            for (path, what) in [(paths.work, "work directory"), (paths.backups, "backup directory")]
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
        command: String, trigger: String, plugin: String, fromVersion: String?, toVersion: String?, dryRun: Bool
    ) throws -> (PipelineRun, [RunOutcome]) {
        let id = try journal.beginRun(
            command: command, trigger: trigger, plugin: plugin, pluginDirectory: context.site.pluginDirectory,
            fromVersion: fromVersion, toVersion: toVersion, dryRun: dryRun, now: lockedAt)
        let run = PipelineRun(context: context, journal: journal, id: id, command: command, trigger: trigger)
        try journal.recordStep(run: id, .lock, status: .done, detail: lock.path, now: context.clock())
        let recovered = try run.step(.recover, "looking for interrupted runs") { () -> ([RunOutcome], String?) in
            let outcomes = Recovery.recoverAll(journal: journal, context: context, excluding: id)
            let detail = outcomes.isEmpty
                ? "nothing to recover"
                : outcomes.map { "run \($0.runID ?? "?"): \($0.message)" }.joined(separator: "; ")
            if let failed = outcomes.first(where: { $0.exitCode == .rollbackFailed }) {
                throw UpgradeError.rollbackFailed("recovery of an interrupted run failed: \(failed.message)")
            }
            return (outcomes, detail)
        }
        return (run, recovered)
    }
}
