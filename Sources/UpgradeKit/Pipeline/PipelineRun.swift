import Foundation

/// One journaled run: it writes each step's intent before doing it and its outcome after, and
/// saves the run's on-disk state before every risky step, so that `recover` can always finish it.
final class PipelineRun {
    let context: UpgradeContext
    let journal: Journal
    let id: String
    let command: String
    var state = RunState()

    init(context: UpgradeContext, journal: Journal, id: String, command: String) {
        self.context = context
        self.journal = journal
        self.id = id
        self.command = command
    }

    /// Runs `body` as the named step. `body` returns the step's value and a one-line detail.
    @discardableResult
    func step<T>(_ name: StepName, _ message: String, _ body: () throws -> (T, String?)) throws -> T {
        let stepID = try journal.startStep(run: id, name, now: context.clock())
        context.progress.stepStarted(name, message)
        do {
            let (value, detail) = try body()
            try journal.finishStep(stepID, status: .done, detail: detail, now: context.clock())
            context.progress.stepFinished(name, .done, detail)
            return value
        } catch {
            try? journal.finishStep(stepID, status: .failed, error: "\(error)", now: context.clock())
            context.progress.stepFinished(name, .failed, "\(error)")
            throw error
        }
    }

    func skip(_ name: StepName, _ reason: String) throws {
        try journal.recordStep(run: id, name, status: .skipped, detail: reason, now: context.clock())
        context.progress.stepFinished(name, .skipped, reason)
    }

    func save() throws {
        try journal.saveState(run: id, state)
    }

    func finish(_ status: RunStatus, rollbackStatus: String?, error: String?, exitCode: ExitCode) throws {
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
    let journal: Journal
    let lockedAt: Date

    init(context: UpgradeContext, command: String) throws(UpgradeError) {
        self.context = context
        let paths = context.paths
        do {
            try FileSystem.makeDirectory(paths.root, mode: 0o700)
        } catch {
            throw .configuration("cannot create the state directory \(paths.root): \(error.message)")
        }
        do {
            lock = try StateLock(stateDirectory: paths.root, command: command)
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

    /// Opens a run and journals its `lock` and `recover` steps.
    func beginRun(
        command: String, trigger: String, plugin: String, fromVersion: String?, toVersion: String?, dryRun: Bool
    ) throws -> (PipelineRun, [RunOutcome]) {
        let id = try journal.beginRun(
            command: command, trigger: trigger, plugin: plugin, pluginDirectory: context.site.pluginDirectory,
            fromVersion: fromVersion, toVersion: toVersion, dryRun: dryRun, now: lockedAt)
        let run = PipelineRun(context: context, journal: journal, id: id, command: command)
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
