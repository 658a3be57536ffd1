import Foundation

/// `commit`: the run's success journaled (and, for an upgrade, its version accepted as the new floor),
/// its outcome reported, and the work area tidied, keeping this run's previous tree for a fast rollback.
enum CommitStep {
    static func run(_ run: PipelineRun, message: String) throws -> RunOutcome {
        let context = run.context
        try run.step(.commit, "recording success") {
            if run.command == .upgrade, let to = run.toVersion, let version = SemanticVersion(to) {
                try run.journal.acceptVersion(
                    version, plugin: run.plugin, pluginDirectory: context.site.pluginDirectory, now: context.clock())
            }
            // Straight to the journal: the outcome report is queued after the commit step's own.
            try run.journal.finishRun(
                run: run.id, status: .succeeded, rollbackStatus: .notRequired, error: nil, exitCode: 0,
                now: context.clock())
            RunFile.markFinished(run, .succeeded)
            return ((), "kept the previous tree at \(run.state.stagedTree ?? "?")")
        }
        // The new schema stays: the shadows and the change capture go.
        BackupStep.discardShadows(run)
        if run.command == .rollback {
            run.reportRollbackCompleted(
                success: true, durationMilliseconds: run.rollbackWindowMilliseconds ?? 0, filesRestored: true,
                databaseRestored: true)
            run.reportOutcome(status: .succeeded, rollbackStatus: .success, error: nil, rollbackVersion: run.toVersion)
        } else {
            run.reportOutcome(status: .succeeded, rollbackStatus: .notRequired, error: nil)
        }
        try run.fault("before-tidy")
        // Tidy: keep this run's previous tree (the fast rollback path); drop older ones.
        Maintenance.sweepWorkDirectories(journal: run.journal, context: context)
        return run.outcome(.succeeded, message, exitCode: .ok)
    }
}
