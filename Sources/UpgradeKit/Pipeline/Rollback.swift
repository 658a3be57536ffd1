import Foundation

/// Automatic rollback: after a failure past `backup`, or to finish that job after a crash, the undos
/// of the steps that change the site, run as the journaled `rollback` step, then the old version's
/// checks. The undos look at the disk (tree identities) rather than trusting how far the journal
/// got, so running the rollback twice is harmless.
///
/// The completed steps are undone newest first: the tables (their rows merged into the shadows
/// before, then renamed into place in one transaction), then, right after, the files (one rename).
/// Old code never runs on the new schema; should the tables fail to go back (the site holding a
/// lock), the files stay too, and the site stays whole on the new version until `recover` retries.
///
/// A rollback is never cut short by SIGINT, SIGTERM or SIGHUP: they are noted and it runs to its end
/// (`Signals.deferring`), since stopping half way would leave the very mix of versions it undoes.
enum Rollback {
    static func automatic(run: PipelineRun, reason: String, trigger: RunTrigger) throws -> RunOutcome {
        try Signals.deferring { try automaticToTheEnd(run: run, reason: reason, trigger: trigger) }
    }

    private static func automaticToTheEnd(
        run: PipelineRun, reason: String, trigger: RunTrigger
    ) throws -> RunOutcome {
        try run.stopIfPoweredOff()
        let context = run.context
        let (plugin, from, to) = (run.plugin, run.fromVersion, run.toVersion)
        try run.journal.setStatus(run: run.id, .rollingBack)
        let rollbackID = try run.journal.startRollback(
            run: run.id, trigger: trigger, reason: reason, from: to, to: from, now: context.clock())
        run.reportRollbackInitiated(trigger: trigger, reason: reason, from: to, to: from)
        let step = try run.beginStep(.rollback, "putting \(plugin) \(from ?? "?") back: \(reason)", detail: reason)
        let started = context.clock()
        var filesRestored = false
        var databaseRestored = false
        func summary(_ milliseconds: Int, smokePassed: Bool) -> RollbackSummary {
            RollbackSummary(
                reason: reason, trigger: trigger, durationMilliseconds: milliseconds, filesRestored: filesRestored,
                databaseRestored: databaseRestored, smokePassed: smokePassed)
        }
        func finish(_ summary: RollbackSummary) throws {
            try run.journal.finishRollback(
                rollbackID, success: summary.smokePassed, durationMilliseconds: summary.durationMilliseconds,
                filesRestored: filesRestored, databaseRestored: databaseRestored, now: context.clock())
        }
        do {
            try run.fault("before-rollback")
            databaseRestored = try MigrateStep.undo(run)
            try run.fault("mid-rollback")
            filesRestored = try SwapStep.undo(run)
            try run.fault("after-rollback")
        } catch {
            try run.stopIfPoweredOff()
            let message = "ALERT: rollback of \(plugin) failed, the site needs a human: \(error) "
                + "(upgrade failure was: \(reason))"
            let failed = summary(elapsed(since: started, context), smokePassed: false)
            try? finish(failed)
            try? run.endStep(step, .failed, error: "\(error)")
            run.reportRollbackCompleted(
                success: false, durationMilliseconds: failed.durationMilliseconds, filesRestored: filesRestored,
                databaseRestored: databaseRestored)
            return try run.end(
                .rollbackFailed, message, error: message, exitCode: .rollbackFailed, rollbackStatus: .failed,
                rollback: failed)
        }
        // The rollback window: files and tables back. Smoke checks are excluded from this figure.
        let window = elapsed(since: started, context)
        if databaseRestored { MigrateStep.afterUndo(run) }
        let (restoredVersion, served, smokeFailure) = checkRestored(run, filesRestored: filesRestored, fallback: from)
        let done = summary(window, smokePassed: smokeFailure == nil)
        try finish(done)
        let detail = "files \(filesRestored ? "restored" : "unchanged"), tables "
            + "\(databaseRestored ? "restored" : "unchanged") in \(window) ms"
            + run.notes.map { "; " + $0 }.joined() + served
            + (smokeFailure == nil ? "; smoke checks of \(restoredVersion ?? "?") passed" : "; \(smokeFailure ?? "")")
        try run.endStep(step, done.smokePassed ? .done : .failed, detail: detail, error: smokeFailure)
        run.reportRollbackCompleted(
            success: done.smokePassed, durationMilliseconds: window, filesRestored: filesRestored,
            databaseRestored: databaseRestored)
        try run.fault("before-tidy")
        run.tidy()
        // The release a failed upgrade published (swap: symlink) goes with it.
        if context.site.live.swapMode == .symlink {
            Maintenance.sweepWorkDirectories(journal: run.journal, context: context)
        }

        if let smokeFailure {
            let message = "ALERT: \(plugin) was put back to \(restoredVersion ?? "?") but its smoke checks fail, "
                + "the site needs a human: \(smokeFailure) (upgrade failure was: \(reason))"
            return try run.end(
                .rollbackFailed, message, error: message, exitCode: .rollbackFailed, rollbackStatus: .failed,
                rollback: done)
        }
        let message = run.stoppedBySignal
            ? "\(reason): rolled back to \(plugin) \(restoredVersion ?? "?")"
            : "\(run.command.rawValue) of \(plugin) \(from ?? "?") → \(to ?? "?") failed and was rolled back "
                + "to \(restoredVersion ?? "?"): \(reason)"
        return try run.end(
            .rolledBack, message, error: reason, exitCode: .rolledBack, rollbackStatus: .success, rollback: done)
    }

    /// What the site runs once the rollback put it back: the version, what the site serves, and the
    /// first failing check (nil when all pass). "Rolled back" only once the site serves the old
    /// version: the broken code may still be cached for a moment, so errors are waited out here.
    private static func checkRestored(
        _ run: PipelineRun, filesRestored: Bool, fallback: String?
    ) -> (version: String?, served: String, failure: String?) {
        let context = run.context
        let site = context.site
        var served = ""
        do {
            let manifest = try PluginManifest.load(pluginDirectory: site.pluginDirectory)
            if filesRestored { served += LiveSite.afterSwap(context) }
            if let wait = LiveSite.waitForVersion(context, manifest.version, failFast: false) {
                guard wait.passed else {
                    return (manifest.version.description, served,
                            "\(site.live.versionURL ?? "") does not report \(manifest.version): \(wait.detail)")
                }
                served += "; the site reports \(manifest.version) (\(wait.detail))"
            }
            let results = SmokeRunner(context: context, version: manifest.version, failFast: false).run(manifest.smoke)
            return (manifest.version.description, served, results.failureDescription)
        } catch {
            return (fallback, served, "\(error)")
        }
    }

    private static func elapsed(since start: Date, _ context: UpgradeContext) -> Int {
        Int(context.clock().timeIntervalSince(start) * 1000)
    }
}
