import Foundation

/// Automatic rollback: puts the old tree and the owned tables back after a failure past `backup`,
/// or finishes that job after a crash. Every part is idempotent: it looks at the disk (tree
/// identities) rather than trusting how far the journal got, so running it twice is harmless.
enum Rollback {
    static func automatic(
        run: PipelineRun, reason: String, trigger: String, plugin: String, from: String?, to: String?,
        command: String
    ) throws -> RunOutcome {
        let context = run.context
        try run.journal.setStatus(run: run.id, .rollingBack)
        let rollbackID = try run.journal.startRollback(
            run: run.id, trigger: trigger, reason: reason, from: to, to: from, now: context.clock())
        run.reportRollbackInitiated(trigger: trigger, reason: reason, from: to, to: from)
        let stepStarted = context.clock()
        let stepID = try run.journal.startStep(run: run.id, .rollback, detail: reason, now: stepStarted)
        context.progress.stepStarted(.rollback, "putting \(plugin) \(from ?? "?") back: \(reason)")
        let started = Date()
        var filesRestored = false
        var databaseRestored = false
        do {
            try FaultInjection.hit("before", .rollback)
            filesRestored = try restoreFiles(run)
            try FaultInjection.hit("mid-rollback")
            databaseRestored = try restoreTables(run)
            try FaultInjection.hit("after", .rollback)
        } catch {
            let elapsed = Int(Date().timeIntervalSince(started) * 1000)
            let message = "ALERT: rollback of \(plugin) failed, the site needs a human: \(error) "
                + "(upgrade failure was: \(reason))"
            try? run.journal.finishRollback(
                rollbackID, success: false, durationMilliseconds: elapsed, filesRestored: filesRestored,
                databaseRestored: databaseRestored, now: context.clock())
            try? run.journal.finishStep(stepID, status: .failed, error: "\(error)", now: context.clock())
            context.progress.stepFinished(.rollback, .failed, "\(error)")
            run.reportStep(.rollback, .failed, started: stepStarted, finished: context.clock(), detail: nil,
                           error: "\(error)")
            run.reportRollbackCompleted(
                success: false, durationMilliseconds: elapsed, filesRestored: filesRestored,
                databaseRestored: databaseRestored)
            try run.finish(.rollbackFailed, rollbackStatus: "failed", error: message, exitCode: .rollbackFailed)
            return RunOutcome(
                runID: run.id, command: command, plugin: plugin, fromVersion: from, toVersion: to,
                status: .rollbackFailed, rollbackStatus: "failed", message: message, error: message,
                exitCode: .rollbackFailed,
                rollback: RollbackSummary(
                    reason: reason, trigger: trigger, durationMilliseconds: elapsed, filesRestored: filesRestored,
                    databaseRestored: databaseRestored, smokePassed: false))
        }
        // The rollback window: files and tables back. Smoke checks are excluded from this figure.
        let elapsed = Int(Date().timeIntervalSince(started) * 1000)

        let site = context.site
        var smokeFailure: String?
        var restoredVersion = from
        var served = ""
        do {
            let manifest = try PluginManifest.load(pluginDirectory: site.pluginDirectory)
            restoredVersion = manifest.version.description
            // "Rolled back" only once the site serves the old version: the broken code may still be
            // cached for a moment, so errors are waited out here rather than failed on.
            if filesRestored { served += LiveSite.afterSwap(context) }
            if let wait = LiveSite.waitForVersion(context, manifest.version, failFast: false) {
                if wait.passed {
                    served += "; the site reports \(manifest.version) (\(wait.detail))"
                } else {
                    smokeFailure = "\(site.live.versionURL ?? "") does not report \(manifest.version): \(wait.detail)"
                }
            }
            if smokeFailure == nil {
                let results = SmokeRunner(
                    pluginDirectory: site.pluginDirectory, database: site.database, version: manifest.version,
                    failFast: false
                ).run(manifest.smoke)
                smokeFailure = results.failureDescription
            }
        } catch {
            smokeFailure = "\(error)"
        }
        let success = smokeFailure == nil
        try run.journal.finishRollback(
            rollbackID, success: success, durationMilliseconds: elapsed, filesRestored: filesRestored,
            databaseRestored: databaseRestored, now: context.clock())
        let detail = "files \(filesRestored ? "restored" : "unchanged"), tables "
            + "\(databaseRestored ? "restored" : "unchanged") in \(elapsed) ms"
            + served + (success ? "; smoke checks of \(restoredVersion ?? "?") passed" : "; \(smokeFailure ?? "")")
        try run.journal.finishStep(stepID, status: success ? .done : .failed, detail: detail, now: context.clock())
        context.progress.stepFinished(.rollback, success ? .done : .failed, detail)
        run.reportStep(.rollback, success ? .done : .failed, started: stepStarted, finished: context.clock(),
                       detail: detail, error: success ? nil : smokeFailure)
        run.reportRollbackCompleted(
            success: success, durationMilliseconds: elapsed, filesRestored: filesRestored,
            databaseRestored: databaseRestored)
        try FaultInjection.hit("before-tidy")
        Pipeline.tidy(run)
        // The release a failed upgrade published (swap: symlink) goes with it.
        if context.site.live.swapMode == .symlink { Maintenance.sweepWorkDirectories(journal: run.journal, context: context) }

        let summary = RollbackSummary(
            reason: reason, trigger: trigger, durationMilliseconds: elapsed, filesRestored: filesRestored,
            databaseRestored: databaseRestored, smokePassed: success)
        if success {
            let message = "\(command) of \(plugin) \(from ?? "?") → \(to ?? "?") failed and was rolled back "
                + "to \(restoredVersion ?? "?"): \(reason)"
            try run.finish(.rolledBack, rollbackStatus: "success", error: reason, exitCode: .rolledBack)
            return RunOutcome(
                runID: run.id, command: command, plugin: plugin, fromVersion: from, toVersion: to, status: .rolledBack,
                rollbackStatus: "success", message: message, error: reason, exitCode: .rolledBack, rollback: summary)
        }
        let message = "ALERT: \(plugin) was put back to \(restoredVersion ?? "?") but its smoke checks fail, "
            + "the site needs a human: \(smokeFailure ?? "") (upgrade failure was: \(reason))"
        try run.finish(.rollbackFailed, rollbackStatus: "failed", error: message, exitCode: .rollbackFailed)
        return RunOutcome(
            runID: run.id, command: command, plugin: plugin, fromVersion: from, toVersion: to, status: .rollbackFailed,
            rollbackStatus: "failed", message: message, error: message, exitCode: .rollbackFailed, rollback: summary)
    }

    /// Brings the old tree back to the live path. Returns whether anything had to move.
    static func restoreFiles(_ run: PipelineRun) throws -> Bool {
        let live = run.context.site.pluginDirectory
        let state = run.state
        guard let oldIdentity = state.liveIdentityBefore, let staged = state.stagedTree else {
            return false   // the swap was never prepared: the live tree was not touched
        }
        let liveIdentity = FileSystem.identity(of: live)
        if liveIdentity == oldIdentity { return false }
        let parking = (state.workDirectory ?? "") + "/parking"
        // Fast path: the old tree kept where the staged one was, exchanged back in one rename.
        if FileSystem.identity(of: staged) == oldIdentity && liveIdentity != nil {
            try FileSystem.exchange(
                live, staged, within: try? Pipeline.workBase(run.context), fallbackParking: parking)
            return true
        }
        // A two-rename fallback interrupted half way: the live path is empty.
        if liveIdentity == nil {
            for candidate in [parking, staged] where FileSystem.identity(of: candidate) == oldIdentity {
                try FileSystem.moveNoReplace(candidate, to: live)
                return true
            }
        }
        // Slow path: the old tree is gone; rebuild it from the backup archive and swap it in.
        guard let backupDirectory = state.backupDirectory else {
            throw UpgradeError.rollbackFailed("the previous tree is gone and the run recorded no backup")
        }
        let restoreDirectory = (state.workDirectory ?? run.context.paths.work + "/" + run.id) + "/restore"
        try FileSystem.removeTree(restoreDirectory)
        try FileSystem.makeDirectory(restoreDirectory, mode: 0o700)
        let expected = try TreeManifest.read(from: backupDirectory + "/" + BackupSet.filesManifestName)
        let root = try TreeArchive.restore(
            archivePath: backupDirectory + "/" + BackupSet.filesArchiveName, into: restoreDirectory,
            expecting: expected)
        if liveIdentity == nil {
            try FileSystem.moveNoReplace(root, to: live)
        } else {
            try FileSystem.exchange(
                live, root, within: try? Pipeline.workBase(run.context), fallbackParking: parking)
        }
        return true
    }

    /// Restores the owned tables from the run's backup whenever the new code may have been live.
    static func restoreTables(_ run: PipelineRun) throws -> Bool {
        guard run.state.stagedIdentity != nil, let backupDirectory = run.state.backupDirectory else { return false }
        guard case .sqlite(let path) = run.context.site.database else { return false }
        let database = try SQLitePluginDatabase(path: path)
        let prefix = run.context.site.tablePrefix
        // Whatever the run recorded, a restore never writes or drops a table no plugin may own.
        let mayTouch = { (table: String) in TableOwnership.mayRestore(table, sitePrefix: prefix) }
        _ = try database.restoreTables(
            from: backupDirectory + "/" + BackupSet.tablesName, alsoDrop: run.state.newTables ?? [],
            mayTouch: mayTouch)
        return true
    }
}
