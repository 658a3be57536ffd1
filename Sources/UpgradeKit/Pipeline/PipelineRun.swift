import Foundation

/// One journaled run: it writes each step's intent before doing it and its outcome after, and
/// saves the run's on-disk state before every risky step, so that `recover` can always finish it.
///
/// Every step goes through `step` (or `beginStep`/`endStep` when its outcome is not a throw), and every
/// run ends through `end` (or `finish` and `outcome` when the journal and the answer differ).
final class PipelineRun {
    let context: UpgradeContext
    let journal: Journal
    /// What the run saved for `recover`: its work directory, the tree identities, the backup.
    var state = RunState()
    let id: String
    let command: RunCommand
    let trigger: RunTrigger
    /// What the run is about, as far as it is known: the plugin and versions its outcome names.
    var plugin: String
    var fromVersion: String?, toVersion: String?
    /// The staged tree's identity when it was extracted and checked; the swap refuses any other.
    var stagedIdentityAtStage: FileIdentity?
    /// For a manual rollback: how long files and tables took to put back (its `complete` report).
    var rollbackWindowMilliseconds: Int?
    /// What the rollback has to say besides its outcome (rows kept, rows quarantined).
    var notes: [String] = []
    /// How long the rollback's table restore waits for a lock the site holds: longer than a normal
    /// statement's, and longer again when `recover` retries a rollback that failed on one.
    lazy var rollbackBusyTimeout: Double = context.rollbackBusyTimeout
    /// Set when a fault point cut the power (`PowerCut`): nothing more may be written or undone.
    private(set) var poweredOff = false
    /// The step under way, for what a signal says it interrupted.
    private(set) var currentStep: StepName?
    /// The signal this run noticed (SIGINT, SIGTERM, SIGHUP), and whether it stopped the run (thrown
    /// as `Interrupted`) or came while the run was finishing something that must not be cut short.
    private(set) var interruption: Interrupted?
    private(set) var stoppedBySignal = false

    init(
        context: UpgradeContext, journal: Journal, id: String, command: RunCommand, trigger: RunTrigger,
        plugin: String
    ) {
        (self.context, self.journal) = (context, journal)
        (self.id, self.command, self.trigger) = (id, command, trigger)
        self.plugin = plugin
    }

    /// An earlier run, taken up again from its journal record (by `recover`).
    static func resuming(_ record: RunRecord, context: UpgradeContext, journal: Journal) -> PipelineRun {
        let run = PipelineRun(
            context: context, journal: journal, id: record.id, command: RunCommand(rawValue: record.command) ?? .upgrade,
            trigger: RunTrigger(rawValue: record.trigger) ?? .manual, plugin: record.plugin)
        (run.fromVersion, run.toVersion) = (record.fromVersion, record.toVersion)
        run.state = record.state
        return run
    }

    // MARK: Steps

    /// A step whose intent is journaled and whose outcome is not yet.
    struct OpenStep {
        let name: StepName
        let journalID: Int64
        let started: Date
    }

    /// Journals a step's intent and says it started.
    func beginStep(_ name: StepName, _ message: String, detail: String? = nil) throws -> OpenStep {
        let started = context.clock()
        let journalID = try journal.startStep(run: id, name, detail: detail, now: started)
        currentStep = name
        context.progress.stepStarted(name, message)
        return OpenStep(name: name, journalID: journalID, started: started)
    }

    /// Journals, shows and reports a step's outcome; the journal's failure is thrown last, after the
    /// step was shown and reported.
    func endStep(_ step: OpenStep, _ status: StepStatus, detail: String? = nil, error: String? = nil) throws {
        let finished = context.clock()
        let journaled = Result {
            try journal.finishStep(step.journalID, status: status, detail: detail, error: error, now: finished)
        }
        context.progress.stepFinished(step.name, status, status == .failed && detail == nil ? error : detail)
        reportStep(step.name, status, started: step.started, finished: finished, detail: detail, error: error)
        try journaled.get()
    }

    /// Runs `body` as the named step. `body` returns the step's value and a one-line detail.
    @discardableResult
    func step<T>(_ name: StepName, _ message: String, _ body: () throws -> (T, String?)) throws -> T {
        let open = try beginStep(name, message)
        do {
            try fault("before-\(name.rawValue)")
            let (value, detail) = try body()
            try fault("after-\(name.rawValue)")
            try endStep(open, .done, detail: detail)
            return value
        } catch {
            try stopIfPoweredOff()
            // A signal that ended the step's wait (its smoke command killed) is why it failed.
            let error = signalStopping() ?? error
            try? endStep(open, .failed, error: "\(error)")
            throw error
        }
    }

    func skip(_ name: StepName, _ reason: String) throws {
        let now = context.clock()
        try journal.recordStep(run: id, name, status: .skipped, detail: reason, now: now)
        context.progress.stepFinished(name, .skipped, reason)
        reportStep(name, .skipped, started: now, finished: now, detail: reason, error: nil)
    }

    /// Reaches a fault point (`FaultInjection`, or the test's own through the context). Every step
    /// boundary is one, which makes it the place a pending signal stops the run (`Signals`).
    func fault(_ point: String) throws {
        do {
            try context.services.fault(point)
        } catch let cut as PowerCut {
            poweredOff = true
            throw cut
        }
        if let interrupted = signalStopping() { throw interrupted }
    }

    /// The signal that stops the run here, if one came and nothing under way defers it; a deferred
    /// one is only noted, for the outcome to mention.
    private func signalStopping() -> Interrupted? {
        guard let signal = Signals.received else { return nil }
        let noticed = interruption ?? Interrupted(signal: signal, step: currentStep?.rawValue ?? "start")
        interruption = noticed
        guard Signals.interruption != nil else { return nil }
        stoppedBySignal = true
        return noticed
    }

    /// Throws once the power is cut: every ending, undo and tidy of the run checks this first.
    func stopIfPoweredOff() throws {
        if poweredOff { throw PowerCut(point: "an earlier fault point") }
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

    // MARK: Endings

    /// Ends the run: journals and reports how, and says it as the command's outcome.
    func end(
        _ status: RunStatus, _ message: String, error: String? = nil, exitCode: ExitCode,
        rollbackStatus: RollbackStatus = .notRequired, rollback: RollbackSummary? = nil
    ) throws -> RunOutcome {
        try stopIfPoweredOff()
        try finish(status, rollbackStatus: rollbackStatus, error: error, exitCode: exitCode)
        return outcome(status, message, error: error, exitCode: exitCode, rollbackStatus: rollbackStatus,
                       rollback: rollback)
    }

    /// Journals and reports how the run ended.
    func finish(_ status: RunStatus, rollbackStatus: RollbackStatus, error: String?, exitCode: ExitCode) throws {
        reportOutcome(status: status, rollbackStatus: rollbackStatus, error: error)
        try journal.finishRun(
            run: id, status: status, rollbackStatus: rollbackStatus, error: error, exitCode: Int(exitCode.rawValue),
            now: context.clock())
        RunFile.markFinished(self, status)
    }

    /// The run's outcome as the command says it.
    func outcome(
        _ status: RunStatus, _ message: String, error: String? = nil, exitCode: ExitCode,
        rollbackStatus: RollbackStatus = .notRequired, rollback: RollbackSummary? = nil
    ) -> RunOutcome {
        var outcome = RunOutcome(
            runID: id, command: command.rawValue, plugin: plugin, fromVersion: fromVersion, toVersion: toVersion,
            status: status, rollbackStatus: rollbackStatus, message: message, error: error, exitCode: exitCode,
            rollback: rollback)
        if let interruption, !stoppedBySignal {
            // Noted while finishing (a rollback, a commit, a recovery): the work was done first.
            outcome.signalNote = "\(Signals.name(interruption.signal)) received during \(interruption.step): "
                + "the run was finished first"
        }
        return outcome
    }

    /// Ends a run that stopped before changing anything, with the exit code its error calls for.
    func refuse(_ error: any Error, prefix: String = "") throws -> RunOutcome {
        if let interrupted = error as? Interrupted {
            // Exit 1 as for any run that stopped with the site on its old version; journaled aborted.
            let message = "\(interrupted): stopped, nothing was changed"
            return try end(.aborted, message, error: message, exitCode: .rolledBack)
        }
        let upgradeError = (error as? UpgradeError) ?? .failed("\(error)")
        let status: RunStatus = switch upgradeError.exitCode {
        case .refused: .refused
        case .unavailable: .unavailable
        default: .failed
        }
        let message = prefix + upgradeError.description
        return try end(status, message, error: message, exitCode: upgradeError.exitCode)
    }

    /// Ends a run that found nothing to do (exit 0, "skipped: …").
    func skipped(_ reason: String) throws -> RunOutcome {
        tidy()
        return try end(.skipped, "skipped: \(reason)", exitCode: .ok)
    }

    /// Removes the run's work directory, whatever it holds.
    func tidy() {
        guard !poweredOff else { return }
        if let directory = state.workDirectory { Maintenance.removeWorkDirectory(directory) }
    }
}
