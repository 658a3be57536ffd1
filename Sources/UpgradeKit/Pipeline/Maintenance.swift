import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Status, cleanup and the other commands that look after the state directory.
public enum Maintenance {
    /// Removes every work directory nothing needs any more: those of finished runs, and those a
    /// crash left before its run could record them. Kept: the directories of unfinished runs (recovery
    /// needs them) and, for each install, that of its newest succeeded upgrade or rollback, which
    /// holds the previous tree (the fast rollback path). Looks at what is on disk, not only at what the
    /// journal recorded.
    static func sweepWorkDirectories(journal: Journal, context: UpgradeContext) {
        guard let runs = try? journal.recentRuns(limit: 10_000) else { return }   // newest first
        var keep = Set<String>()
        var installsWithKeptTree = Set<String>()
        for run in runs {
            if run.status == .running || run.status == .rollingBack {
                keep.insert(run.id)
            } else if run.status == .succeeded,
                      [RunCommand.upgrade, .rollback].contains(RunCommand(rawValue: run.command)),
                      run.state.stagedTree != nil, !installsWithKeptTree.contains(run.pluginDirectory) {
                installsWithKeptTree.insert(run.pluginDirectory)
                keep.insert(run.id)
            }
        }
        let pluginParent = (context.site.pluginDirectory as NSString).deletingLastPathComponent
        let bases = [
            (context.paths.work, TrustedDirectory.Requirements()),
            (pluginParent + "/" + Workspace.hiddenName, TrustedDirectory.Requirements(privateMode: true)),
        ]
        for (path, requirements) in bases where FileSystem.exists(path) {
            // Listed and deleted through a checked descriptor: a link planted in its place (the web
            // server's user can write next to the plugin) is refused, never followed.
            guard let base = try? TrustedDirectory.open(path, what: "work directory", requirements: requirements),
                  let names = try? base.entryNames() else {
                context.progress.note("left \(path) alone: it is not a directory of this agent's alone")
                continue
            }
            for name in names {
                guard let text = String(validating: name, as: UTF8.self), !keep.contains(text) else { continue }
                var info = stat()
                let found = withCName(name) { fstatat(base.fd, $0, &info, AT_SYMLINK_NOFOLLOW) }
                guard found == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
                try? base.removeEntry(name)
            }
        }
        collectReleases(runs: runs, keep: keep, context: context)
    }

    /// Removes the releases (`swap: symlink`) that neither the plugin path nor a kept or unfinished
    /// run's tree links to: those a failed upgrade published, and those two upgrades old.
    static func collectReleases(runs: [RunRecord], keep: Set<String>, context: UpgradeContext) {
        let live = context.site.pluginDirectory
        let kept = runs.filter { keep.contains($0.id) && $0.pluginDirectory == live }.compactMap(\.state.stagedTree)
        LiveTree.collect(pluginPath: live, keepingTargetsOf: [live] + kept)
    }

    /// Removes one run's work directory through its checked parent's descriptor.
    static func removeWorkDirectory(_ directory: String) {
        let parent = (directory as NSString).deletingLastPathComponent
        let name = (directory as NSString).lastPathComponent
        let requirements = TrustedDirectory.Requirements(
            privateMode: (parent as NSString).lastPathComponent == Workspace.hiddenName)
        guard let base = try? TrustedDirectory.open(parent, what: "work directory", requirements: requirements)
        else { return }
        try? base.removeEntry(name)
    }

    /// A `.partial-` backup is one a crash interrupted; it was never recorded and is never used. A
    /// complete backup that its run never recorded (a crash between the rename and the journal) is
    /// removed too, but only when the journal knows that run and it is over: a backup whose run is
    /// unknown (a journal lost or reset) is never touched.
    static func removePartialBackups(journal: Journal, paths: StatePaths) {
        let store = BackupStore(paths: paths)
        guard FileSystem.exists(store.root),
              let backups = try? TrustedDirectory.open(store.root, what: "backup directory"),
              let plugins = try? backups.entryNames() else { return }
        let recorded = Set(((try? journal.backups()) ?? []).map(\.path))
        for plugin in plugins {
            guard let folder = try? backups.child(String(decoding: plugin, as: UTF8.self), create: false).0,
                  let entries = try? folder.entryNames() else { continue }
            for bytes in entries {
                let entry = String(decoding: bytes, as: UTF8.self)
                if BackupStore.isPartial(entry) {
                    try? folder.removeEntry(bytes)
                    continue
                }
                // A meta.json this build cannot read (a newer format among them) leaves the backup alone.
                let backup = BackupFiles(directory: folder.path + "/" + entry)
                guard !recorded.contains(backup.directory),
                      let runID = (try? BackupMeta.read(from: backup.meta))?.runID,
                      let run = try? journal.run(id: runID),
                      run.status != .running, run.status != .rollingBack
                else { continue }
                try? folder.removeEntry(bytes)
            }
        }
    }

    public struct CleanupResult: Sendable {
        public var removed: [BackupRecord]
        public var kept: [BackupRecord]
        public init(removed: [BackupRecord], kept: [BackupRecord]) {
            self.removed = removed
            self.kept = kept
        }
    }

    /// Backups expire after `retentionDays`, but the newest backup of each of the two most recent
    /// versions is always kept, so a rollback is possible however long ago the upgrade was.
    public static func cleanup(context: UpgradeContext, retentionDays: Int = 30) throws(UpgradeError) -> CleanupResult {
        let session = try ChangingSession(context: context, command: "cleanup")
        // Short and made of steps that must not stop half way (a recovery, a backup's removal): a
        // signal lets it finish.
        return try Signals.deferring { () throws(UpgradeError) -> CleanupResult in
            try cleanup(session: session, context: context, retentionDays: retentionDays)
        }
    }

    private static func cleanup(
        session: ChangingSession, context: UpgradeContext, retentionDays: Int
    ) throws(UpgradeError) -> CleanupResult {
        _ = Recovery.recoverAll(journal: session.journal, context: context)
        do {
            let now = context.clock()
            let cutoff = Journal.timestamp(now.addingTimeInterval(-Double(retentionDays) * 86_400))
            var removed: [BackupRecord] = []
            var kept: [BackupRecord] = []
            let backups = try session.journal.backups(pluginDirectory: context.site.pluginDirectory)
            for plugin in Set(backups.map(\.plugin)) {
                let own = backups.filter { $0.plugin == plugin }     // newest first
                // Unparseable versions (none are written, but the journal is a file) sort last.
                let versions = Set(own.map(\.version)).sorted { left, right in
                    switch (SemanticVersion(left), SemanticVersion(right)) {
                    case let (l?, r?): return l > r
                    case (.some, nil): return true
                    default: return false
                    }
                }
                let protectedIDs = Set(versions.prefix(2).compactMap { version in
                    own.first(where: { $0.version == version })?.id
                })
                for backup in own {
                    if protectedIDs.contains(backup.id) || backup.createdAt >= cutoff {
                        kept.append(backup)
                        continue
                    }
                    try FileSystem.removeTree(backup.path)
                    try session.journal.markBackupDeleted(id: backup.id, now: now)
                    removed.append(backup)
                }
            }
            sweepWorkDirectories(journal: session.journal, context: context)
            return CleanupResult(removed: removed, kept: kept)
        } catch let error as UpgradeError {
            throw error
        } catch {
            throw .failed("cleanup: \(error)")
        }
    }

    /// The `backup` command: a journaled backup of the installed version, outside any upgrade.
    public static func backup(context: UpgradeContext) throws(UpgradeError) -> RunOutcome {
        let session = try ChangingSession(context: context, command: "backup")
        return try session.perform(deliveringReports: false) { () throws -> RunOutcome in
            let (run, recovered) = try session.beginRun(
                .backup, trigger: .manual, plugin: Pipeline.pluginNameGuess(context))
            do {
                let (manifest, database) = try ResolveStep.openSite(context)
                run.plugin = manifest.name
                run.fromVersion = manifest.version.description
                run.toVersion = manifest.version.description
                try session.journal.describeRun(
                    run: run.id, plugin: manifest.name, from: manifest.version.description,
                    to: manifest.version.description)
                let backup = try run.step(.backup, "backing up \(manifest.name) \(manifest.version)") {
                    let tables = Pipeline.ownedTables(manifest, manifest)
                    let backup = try BackupSet.create(
                        pluginDirectory: context.site.pluginDirectory, tree: context.site.treeDirectory, manifest: manifest, tables: tables,
                        database: database, paths: context.paths, runID: run.id, now: context.clock())
                    try session.journal.addBackup(backup.record)
                    return (backup, "\(backup.directory)" + backup.skippedNote)
                }
                var outcome = try run.end(
                    .succeeded, "backed up \(manifest.name) \(manifest.version) to \(backup.directory) "
                        + "(\(backup.record.fileCount) files, \(backup.record.sizeBytes) bytes)\(backup.skippedNote)",
                    exitCode: .ok)
                outcome.recovered = recovered
                return outcome
            } catch {
                var outcome = try run.refuse(error)
                outcome.recovered = recovered
                return outcome
            }
        }
    }

    /// The `verify` command: the installed version's smoke checks, changing nothing.
    public static func verify(context: UpgradeContext) throws(UpgradeError) -> (PluginManifest, [SmokeRunner.Result]) {
        let manifest: PluginManifest
        do {
            manifest = try PluginManifest.load(pluginDirectory: context.site.pluginDirectory)
                .resolvingTables(prefix: context.site.tablePrefix)
        } catch {
            throw .configuration("installed plugin: \(error)")
        }
        var results: [SmokeRunner.Result] = []
        if let wait = LiveSite.waitForVersion(context, manifest.version, failFast: true) {
            // The installed files are one thing; what the site serves is what takes payments.
            results.append(SmokeRunner.Result(
                index: 0, kind: "site", summary: "\(context.site.live.versionURL ?? "") reports \(manifest.version)",
                passed: wait.passed, detail: wait.detail))
            if !wait.passed { return (manifest, results) }
        }
        results += SmokeRunner(
            pluginDirectory: context.site.pluginDirectory, database: context.site.database, version: manifest.version
        ).run(manifest.smoke)
        return (manifest, results)
    }

    public struct Status: Sendable {
        public var plugin: String?
        public var installedVersion: String?
        public var installedError: String?
        public var lastRun: RunRecord?
        public var unfinishedRuns: [RunRecord]
        public var backups: [BackupRecord]
        public var keptTree: String?
        public var pendingReports: Int
        public var oldestPendingReport: String?
        /// Seconds since the oldest pending report was queued.
        public var oldestPendingReportAge: Double?
        public var rejectedReports: Int = 0
        public var centralAPI: String?
    }

    /// Reads, never writes: safe to run while an upgrade holds the lock.
    public static func status(context: UpgradeContext) throws(UpgradeError) -> Status {
        var status = Status(
            plugin: nil, installedVersion: nil, installedError: nil, lastRun: nil, unfinishedRuns: [], backups: [],
            keptTree: nil, pendingReports: 0, oldestPendingReport: nil)
        status.centralAPI = context.agent.apiURL
        do {
            let manifest = try PluginManifest.load(pluginDirectory: context.site.pluginDirectory)
            status.plugin = manifest.name
            status.installedVersion = manifest.version.description
        } catch {
            status.installedError = "\(error)"
        }
        guard FileSystem.exists(context.paths.journal) else { return status }
        do {
            let journal = try Journal(path: context.paths.journal)
            let install = context.site.pluginDirectory
            status.lastRun = try journal.recentRuns(limit: 1, pluginDirectory: install).first
            status.unfinishedRuns = try journal.unfinishedRuns().filter { $0.pluginDirectory == install }
            status.backups = try journal.backups(
                plugin: status.plugin, pluginDirectory: context.site.pluginDirectory)
            status.keptTree = try journal.recentRuns(limit: 10_000, pluginDirectory: install)
                .first { run in
                    run.status == .succeeded
                        && run.state.stagedTree.flatMap { LiveTree.resolve(kept: $0, pluginPath: install) } != nil
                }?
                .state.stagedTree
            let reports = try journal.reportCounts()
            status.pendingReports = reports.pending
            status.oldestPendingReport = reports.oldestPending
            status.rejectedReports = reports.rejected
            if let oldest = reports.oldestPending, let date = Journal.date(oldest) {
                status.oldestPendingReportAge = max(0, context.clock().timeIntervalSince(date))
            }
        } catch {
            throw .configuration("\(error)")
        }
        return status
    }

    /// Opens the journal for reading (history, stats).
    public static func openJournal(context: UpgradeContext) throws(UpgradeError) -> Journal? {
        guard FileSystem.exists(context.paths.journal) else { return nil }
        do {
            return try Journal(path: context.paths.journal)
        } catch {
            throw .configuration("\(error)")
        }
    }
}

extension Maintenance {
    /// The `flush` command: deliver what the outbox holds. It takes only the outbox's lock, never
    /// the run lock, so it can run beside an upgrade or a rollback; if another process is delivering
    /// already, that process sends the reports and this one says so (exit 75).
    public static func flush(context: UpgradeContext) throws(UpgradeError) -> ReportDelivery.Result {
        guard context.agent.apiURL != nil else {
            throw .configuration(
                "no central API is configured (api_url in \(context.agent.source ?? AgentConfiguration.defaultPath)); "
                    + "nothing to flush to")
        }
        _ = try CentralRelease.client(context)    // a configuration problem is exit 2, not "pending"
        if FileSystem.exists(context.paths.root) {
            // flush takes no run lock, but writes the journal and the outbox lock: same checks.
            do {
                _ = try TrustedDirectory.open(context.paths.root, what: "state directory")
            } catch {
                throw .configuration(error.description)
            }
        }
        guard let journal = try openJournal(context: context) else { return ReportDelivery.Result() }
        let result = ReportDelivery.deliverQueued(
            context: context, journal: journal, deadline: ReportDelivery.flushDeadline)
            ?? ReportDelivery.Result()
        if result.otherDeliverer, let reason = result.stoppedBy { throw .unavailable(reason) }
        return result
    }
}
