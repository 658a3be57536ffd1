import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The upgrade pipeline of DESIGN.md, and the manual rollback that reuses its second half.
///
/// Step order: lock, recover, resolve, eligibility, download, stage, backup, swap, migrate, verify,
/// commit. `stage` runs before `backup` (DESIGN.md lists it after): a bad archive is then refused before
/// any time or disk goes into a backup, and the backup is taken as late as possible, right before the
/// swap, so fewer rows written by live payments fall between the backup and the switch.
public enum Pipeline {
    public struct UpgradeOptions: Sendable {
        /// A local release archive (or http(s) URL); nil resolves the release through the central API.
        public var archive: String?
        public var sha256: String?
        public var expectedVersion: SemanticVersion?
        public var force: Bool
        public var dryRun: Bool
        public var trigger: String

        public init(
            archive: String? = nil, sha256: String? = nil, expectedVersion: SemanticVersion? = nil, force: Bool = false,
            dryRun: Bool = false, trigger: String = "manual"
        ) {
            self.archive = archive
            self.sha256 = sha256
            self.expectedVersion = expectedVersion
            self.force = force
            self.dryRun = dryRun
            self.trigger = trigger
        }

        var source: String { archive ?? "the central API" }
    }

    public struct RollbackOptions: Sendable {
        public var targetVersion: SemanticVersion?
        public var reason: String?
        public var force: Bool
        /// Only versions below the installed one (a rollout rolled back upstream).
        public var olderOnly: Bool
        public var trigger: String
        public init(
            targetVersion: SemanticVersion? = nil, reason: String? = nil, force: Bool = false, olderOnly: Bool = false,
            trigger: String = "manual"
        ) {
            self.targetVersion = targetVersion
            self.reason = reason
            self.force = force
            self.olderOnly = olderOnly
            self.trigger = trigger
        }
    }

    // MARK: upgrade

    public static func upgrade(_ options: UpgradeOptions, context: UpgradeContext) throws(UpgradeError) -> RunOutcome {
        if options.archive != nil { try validate(sha256: options.sha256 ?? "") }
        let session = try ChangingSession(context: context, command: "upgrade")
        var outcome = try guarded(session) { () throws -> RunOutcome in
            let (run, recovered) = try session.beginRun(
                command: "upgrade", trigger: options.trigger, plugin: pluginNameGuess(context), fromVersion: nil,
                toVersion: options.expectedVersion?.description, dryRun: options.dryRun)
            var outcome = try upgrade(run: run, options: options)
            outcome.recovered = recovered
            if outcome.status == .skipped, let reason = outcome.rollBackReason {
                // The rollout of the version this host runs was rolled back upstream: put the
                // previous version back, as its own journaled run under the same lock.
                let (rollbackRun, _) = try session.beginRun(
                    command: "rollback", trigger: "automatic", plugin: outcome.plugin, fromVersion: outcome.fromVersion,
                    toVersion: nil, dryRun: false)
                var rolledBack = try rollback(
                    run: rollbackRun,
                    options: RollbackOptions(reason: reason, olderOnly: true, trigger: "automatic"))
                rolledBack.recovered = recovered
                return rolledBack
            }
            return outcome
        }
        // The run is over: the lock goes before delivery, which may wait on a slow API.
        session.releaseLock()
        outcome.reports = session.deliverReports()
        return outcome
    }

    private static func upgrade(run: PipelineRun, options: UpgradeOptions) throws -> RunOutcome {
        let context = run.context
        let site = context.site
        var options = options
        var installed: PluginManifest!
        var database: SQLitePluginDatabase!
        var api: CentralAPI?
        var rollout: Rollout?
        do {
            (installed, database, api, rollout) = try run.step(.resolve, "reading the installed plugin and the release") {
                let (manifest, db) = try openSite(site)
                try run.journal.describeRun(
                    run: run.id, plugin: manifest.name, from: manifest.version.description, to: nil)
                // The host trusts the version it runs: the floor for later releases starts there.
                try run.journal.acceptVersion(
                    manifest.version, plugin: manifest.name, pluginDirectory: site.pluginDirectory, now: context.clock())
                guard options.archive == nil else {
                    return ((manifest, db, nil, nil),
                            "installed \(manifest.name) \(manifest.version); release \(options.source)")
                }
                let client = try CentralRelease.client(context)
                if options.force, let wanted = options.expectedVersion {
                    return ((manifest, db, client, nil),
                            "installed \(manifest.name) \(manifest.version); --force --to \(wanted): rollout not consulted")
                }
                let found = try CentralRelease.rollout(client, plugin: manifest.name)
                let detail = found.map {
                    "rollout \($0.id) of \($0.pluginName) \($0.versionText): \($0.status.rawValue), "
                        + "\($0.percentage) % (\($0.strategy.rawValue))"
                } ?? "no rollout for \(manifest.name)"
                if let found, found.status != .rolledBack {
                    try run.journal.describeRun(run: run.id, plugin: nil, from: nil, to: found.version.description)
                }
                return ((manifest, db, client, found), "installed \(manifest.name) \(manifest.version); \(detail)")
            }
        } catch {
            return try refuse(run, plugin: pluginNameGuess(context), from: nil, to: nil, error)
        }
        let plugin = installed.name
        let from = installed.version.description

        // eligibility: the rollout decision of DESIGN.md, journaled with its reason.
        var targetVersion = options.expectedVersion
        if options.archive != nil {
            try run.skip(.eligibility, "local archive: no rollout decision")
        } else if options.force {
            targetVersion = targetVersion ?? rollout?.version
            guard targetVersion != nil else {
                try run.skip(.eligibility, "--force: eligibility not checked")
                return try skipped(run, plugin: plugin, from: from, "no rollout for \(plugin), and no --to VERSION given")
            }
            try run.skip(.eligibility, "--force: eligibility not checked")
        } else {
            let decision = try run.step(.eligibility, "deciding from the rollout") { () -> (RolloutDecision, String?) in
                var decision = RolloutPolicy.decide(
                    rollout, installed: installed.version, merchant: CentralRelease.merchant(context))
                if case .eligible = decision, let wanted = options.expectedVersion, let rollout,
                   rollout.version != wanted {
                    decision = .skip("the rollout targets \(rollout.versionText), not the requested \(wanted); "
                                         + "pass --force to install \(wanted) anyway")
                }
                return (decision, decision.reason)
            }
            switch decision {
            case .skip(let reason):
                return try skipped(run, plugin: plugin, from: from, reason)
            case .rollBack(let reason):
                var outcome = try skipped(run, plugin: plugin, from: from, "rolling back: \(reason)")
                outcome.rollBackReason = reason
                return outcome
            case .eligible:
                targetVersion = rollout?.version
            }
        }
        options.expectedVersion = targetVersion
        if !options.dryRun { run.openReports(plugin: plugin, from: from, to: targetVersion?.description) }
        let highest = try run.journal.highestAcceptedVersion(pluginDirectory: site.pluginDirectory)
            .flatMap(SemanticVersion.init)

        // download + stage: nothing on the site changes; any failure is a refusal.
        var target: PluginManifest!
        var migrations: [Migration] = []
        do {
            let work = try prepareWorkDirectory(run)
            let download = work + "/release.archive"
            if let archive = options.archive, let sha256 = options.sha256,
               archive.hasPrefix("https://") || archive.hasPrefix("http://") {
                try run.step(.download, "downloading and checking \(archive)") {
                    // The API's client sends its token only to the API's own origin.
                    let client = try api ?? (context.agent.apiURL != nil
                        ? CentralRelease.client(context) : CentralRelease.downloadClient(context))
                    let bytes = try CentralRelease.download(
                        url: archive, sha256: sha256, sizeBytes: nil, label: "release archive \(archive)", api: client,
                        baseURL: context.agent.apiURL, to: download, maxBytes: context.maxArchiveBytes)
                    return ((), "\(bytes) bytes, SHA-256 verified")
                }
            } else if let archive = options.archive, let sha256 = options.sha256 {
                try run.step(.download, "copying and checking \(archive)") {
                    let bytes = try ReleaseDownload.copy(
                        from: archive, to: download, expectedSHA256: sha256, maxBytes: context.maxArchiveBytes)
                    return ((), "\(bytes) bytes, SHA-256 verified")
                }
            } else if let api, let version = targetVersion {
                try run.step(.download, "fetching \(plugin) \(version)") {
                    let (release, signature) = try CentralRelease.release(
                        api, plugin: plugin, version: version, context: context, highestAccepted: highest,
                        force: options.force)
                    let bytes = try CentralRelease.download(
                        release, api: api, baseURL: context.agent.apiURL, to: download,
                        maxBytes: context.maxArchiveBytes)
                    return ((), "\(bytes) bytes, SHA-256 verified; \(signature)")
                }
            }
            (target, migrations) = try run.step(.stage, "extracting the release") {
                let stageDirectory = work + "/stage"
                try FileSystem.makeDirectory(stageDirectory, mode: 0o700)
                let tree: ExtractedTree
                // The new tree belongs to whoever owns the live one (the web server's user, often),
                // and is given that owner inside staging, before the swap. Only root can give files
                // away; any other agent user owns what it writes already.
                let owner = geteuid() == 0 ? FileOwner.of(site.treeDirectory) : nil
                do {
                    tree = try SafeExtractor.extract(
                        archive: download, into: stageDirectory, limits: context.extractionLimits, owner: owner,
                        displayName: options.archive)
                    try matchTopDirectoryMode(of: tree.root, to: site.treeDirectory)
                } catch {
                    // A full disk or an I/O error is no fault of the release: exit 1, not a refusal.
                    if case .io? = error as? ArchiveRefusal { throw UpgradeError.failed("staging failed, nothing was changed: \(error)") }
                    throw UpgradeError.refused("\(error)")
                }
                try? FileSystem.removeTree(download)
                var manifest: PluginManifest
                do {
                    manifest = try PluginManifest.load(pluginDirectory: tree.root)
                } catch {
                    throw UpgradeError.refused("release archive \(options.source): \(error)")
                }
                try checkTarget(manifest, installed: installed, options: options, highestAccepted: highest)
                manifest = try ownedRelease(manifest, installed: installed, site: site)
                let kept = try PreservedPaths.carry(
                    installed: installed, release: manifest, from: site.treeDirectory, into: tree.root)
                let migrations = try loadMigrations(manifest, root: tree.root, refusing: true)
                do {
                    _ = try database.pendingMigrations(migrations)
                } catch {
                    throw UpgradeError.refused("release \(manifest.name) \(manifest.version): \(error)")
                }
                let checked = try checkBeforeSwap(manifest, tree: tree.root, run: run, scratch: work)
                run.state.stagedTree = tree.root
                run.stagedIdentityAtStage = FileSystem.identity(of: tree.root)
                run.state.targetManifestVersion = manifest.version.description
                try run.save()
                return ((manifest, migrations),
                        "\(manifest.name) \(manifest.version): \(tree.fileCount) files, \(tree.bytesWritten) bytes"
                            + kept.detail + checked)
            }
            try run.journal.describeRun(run: run.id, plugin: nil, from: nil, to: target.version.description)
        } catch let error as AlreadyInstalled {
            tidy(run)
            try run.finish(.skipped, rollbackStatus: "not_required", error: nil, exitCode: .ok)
            return RunOutcome(
                runID: run.id, command: "upgrade", plugin: plugin, fromVersion: from, toVersion: from,
                status: .skipped, rollbackStatus: "not_required", message: "skipped: \(error)", exitCode: .ok)
        } catch {
            tidy(run)
            return try refuse(run, plugin: plugin, from: from, to: target?.version.description, error)
        }
        let to = target.version.description
        let ownedTables = ownedTables(installed, target)

        if options.dryRun {
            return try dryRun(run, installed: installed, target: target, migrations: migrations,
                              tables: ownedTables, database: database)
        }

        // backup: the last step that leaves the site as it is.
        if let failed = try backup(
            run, installed: installed, target: target, database: database, plugin: plugin, to: to,
            newTables: target.tables.filter { !installed.tables.contains($0) }) {
            return failed
        }

        // swap, migrate, verify, commit: any failure from here on is rolled back.
        do {
            try swap(run)
            try run.step(.migrate, "applying migrations") {
                let pending = try database.pendingMigrations(migrations)
                guard !pending.isEmpty else { return ((), "no pending migrations") }
                try database.applyMigrations(
                    pending, now: context.clock(), confinement: confinement(installed, target, site: site))
                return ((), "applied " + pending.map { String(format: "%04d_%@", $0.version, $0.name) }
                    .joined(separator: ", "))
            }
            try verify(run, expecting: target)
            return try commit(run, plugin: plugin, from: from, to: to, message: "upgraded \(plugin) \(from) → \(to)")
        } catch {
            return try Rollback.automatic(
                run: run, reason: "\(error)", trigger: "automatic", plugin: plugin, from: from, to: to,
                command: "upgrade")
        }
    }

    /// Dry run: the release was staged; check the migrations on a scratch copy of the owned tables.
    private static func dryRun(
        _ run: PipelineRun, installed: PluginManifest, target: PluginManifest, migrations: [Migration],
        tables: [String], database: SQLitePluginDatabase
    ) throws -> RunOutcome {
        let from = installed.version.description, to = target.version.description
        do {
            try run.skip(.backup, "dry run")
            try run.skip(.swap, "dry run")
            let detail = try run.step(.migrate, "checking migrations on a scratch copy of the owned tables") {
                let scratch = (run.state.workDirectory ?? run.context.paths.work) + "/scratch.db"
                _ = try database.backupTables(tables, to: scratch)
                let copy = try SQLitePluginDatabase(path: scratch)
                let pending = try copy.pendingMigrations(migrations)
                try copy.applyMigrations(
                    pending, now: run.context.clock(),
                    confinement: confinement(installed, target, site: run.context.site))
                let text = "\(pending.count) pending migration\(pending.count == 1 ? "" : "s") apply cleanly"
                return (text, text)
            }
            try run.skip(.verify, "dry run")
            tidy(run)
            let message = "dry run: would upgrade \(installed.name) \(from) → \(to); \(detail); nothing was changed"
            try run.finish(.dryRun, rollbackStatus: "not_required", error: nil, exitCode: .ok)
            return RunOutcome(
                runID: run.id, command: "upgrade", plugin: installed.name, fromVersion: from, toVersion: to,
                status: .dryRun, rollbackStatus: "not_required", message: message, exitCode: .ok)
        } catch {
            tidy(run)
            return try refuse(run, plugin: installed.name, from: from, to: to, error, prefix: "dry run: ")
        }
    }

    // MARK: rollback (manual)

    /// Puts a previous version back from its backup: a run of its own, journaled like an upgrade,
    /// that backs up the current version first and is itself rolled back if the old version fails.
    public static func rollback(_ options: RollbackOptions, context: UpgradeContext) throws(UpgradeError) -> RunOutcome {
        let session = try ChangingSession(context: context, command: "rollback")
        var outcome = try guarded(session) { () throws -> RunOutcome in
            let (run, recovered) = try session.beginRun(
                command: "rollback", trigger: options.trigger, plugin: pluginNameGuess(context), fromVersion: nil,
                toVersion: options.targetVersion?.description, dryRun: false)
            var outcome = try rollback(run: run, options: options)
            outcome.recovered = recovered
            return outcome
        }
        // The run is over: the lock goes before delivery, which may wait on a slow API.
        session.releaseLock()
        outcome.reports = session.deliverReports()
        return outcome
    }

    private static func rollback(run: PipelineRun, options: RollbackOptions) throws -> RunOutcome {
        let context = run.context
        let site = context.site
        var installed: PluginManifest!
        var database: SQLitePluginDatabase!
        var source: BackupSet!
        var keptTree: String?
        do {
            (installed, database, source, keptTree) = try run.step(.resolve, "choosing the version to put back") {
                let (manifest, db) = try openSite(site)
                let backups = try run.journal.backups(plugin: manifest.name, pluginDirectory: site.pluginDirectory)
                let candidates = backups.filter { backup in
                    if let wanted = options.targetVersion { return SemanticVersion(backup.version) == wanted }
                    guard let version = SemanticVersion(backup.version) else { return false }
                    return options.olderOnly ? version < manifest.version : version != manifest.version
                }
                guard let chosen = candidates.first else {
                    let wanted = options.targetVersion.map { "version \($0)" } ?? "a version other than \(manifest.version)"
                    throw UpgradeError.configuration(
                        "no backup of \(manifest.name) holds \(wanted); `molam-upgrade status` lists the backups")
                }
                if SemanticVersion(chosen.version) == manifest.version && !options.force {
                    throw UpgradeError.configuration(
                        "\(manifest.name) \(manifest.version) is already installed; pass --force to restore it anyway")
                }
                let backup = BackupSet.open(chosen)
                try backup.verify()
                let kept = try Pipeline.keptTree(for: chosen, journal: run.journal)
                try run.journal.describeRun(run: run.id, plugin: manifest.name, from: manifest.version.description,
                                            to: chosen.version)
                return ((manifest, db, backup, kept),
                        "\(manifest.name) \(manifest.version) → \(chosen.version) from \(chosen.path)"
                            + (kept != nil ? " (kept tree available)" : ""))
            }
        } catch {
            return try refuse(run, plugin: pluginNameGuess(context), from: nil, to: nil, error)
        }
        let plugin = installed.name
        let from = installed.version.description
        let to = source.record.version
        run.openReports(plugin: plugin, from: from, to: to)
        run.reportRollbackInitiated(
            trigger: options.trigger, reason: options.reason ?? "manual rollback", from: from, to: to)
        try run.skip(.eligibility, options.trigger == "manual" ? "manual rollback" : "rollback: \(options.reason ?? "")")
        try run.skip(.download, "restoring from a local backup")

        var target: PluginManifest!
        do {
            let work = try prepareWorkDirectory(run)
            target = try run.step(.stage, "preparing \(plugin) \(to)") {
                let stageDirectory = work + "/stage"
                try FileSystem.makeDirectory(stageDirectory, mode: 0o700)
                let topName = (site.pluginDirectory as NSString).lastPathComponent
                var root = stageDirectory + "/" + topName
                var how = "restored from \(BackupSet.filesArchiveName)"
                if let keptTree {
                    try FileSystem.moveNoReplace(keptTree, to: root)
                    how = "kept tree of the earlier upgrade"
                } else {
                    let expected = try TreeManifest.read(from: source.filesManifest)
                    root = try TreeArchive.restore(
                        archivePath: source.filesArchive, into: stageDirectory, expecting: expected)
                }
                // A kept release of `swap: symlink` is a link to its release directory.
                let files = LiveTree.resolve(kept: root, pluginPath: site.pluginDirectory) ?? root
                let manifest = try PluginManifest.load(pluginDirectory: files)
                    .resolvingTables(prefix: site.tablePrefix)
                guard manifest.name == installed.name else {
                    throw UpgradeError.failed("backup \(source.directory) holds \(manifest.name), not \(installed.name)")
                }
                let kept = try PreservedPaths.carry(
                    installed: installed, release: manifest, from: site.treeDirectory, into: files)
                how += kept.detail
                run.state.stagedTree = root
                run.stagedIdentityAtStage = FileSystem.identity(of: root)
                run.state.targetManifestVersion = manifest.version.description
                try run.save()
                return (manifest, how)
            }
        } catch {
            tidy(run)
            let failure = (error as? UpgradeError)
                ?? .failed("preparing \(plugin) \(to) failed, nothing was changed: \(error)")
            return try refuse(run, plugin: plugin, from: from, to: to, failure)
        }

        if let failed = try backup(
            run, installed: installed, target: target, database: database, plugin: plugin, to: to, newTables: []) {
            return failed
        }

        do {
            let window = Date()
            defer { run.rollbackWindowMilliseconds = Int(Date().timeIntervalSince(window) * 1000) }
            try swap(run)
            try run.step(.migrate, "restoring the owned tables of \(to)") {
                // installed.tables holds no core table (openSite), and the restore touches none either,
                // even if the backup was taken under a manifest that claimed one.
                let ownership = TableOwnership(sitePrefix: site.tablePrefix, installed: installed)
                let alsoDrop = installed.tables.filter { !source.record.tables.contains($0) }
                let summary = try database.restoreTables(
                    from: source.tables, alsoDrop: alsoDrop, mayTouch: ownership.mayRestore)
                return ((), "restored \(summary.restored.count) tables from \(source.tables)"
                    + (summary.dropped.isEmpty ? "" : "; dropped \(summary.dropped.joined(separator: ", "))"))
            }
            try verify(run, expecting: target)
            let reason = options.reason.map { " (\($0))" } ?? ""
            return try commit(run, plugin: plugin, from: from, to: to,
                              message: "rolled back \(plugin) \(from) → \(to)\(reason)")
        } catch {
            return try Rollback.automatic(
                run: run, reason: "\(error)", trigger: "automatic", plugin: plugin, from: from, to: to,
                command: "rollback")
        }
    }

    // MARK: shared steps

    /// Backs up the installed version (files, and the tables either version owns) and records where
    /// the backup is before anything risky happens. Returns the run's outcome if the backup failed:
    /// then nothing was changed, and the run stops.
    static func backup(
        _ run: PipelineRun, installed: PluginManifest, target: PluginManifest, database: SQLitePluginDatabase,
        plugin: String, to: String, newTables: [String]
    ) throws -> RunOutcome? {
        let context = run.context
        let from = installed.version.description
        do {
            try run.step(.backup, "backing up \(plugin) \(from)") {
                let backup = try BackupSet.create(
                    pluginDirectory: context.site.pluginDirectory, tree: context.site.treeDirectory, manifest: installed,
                    tables: ownedTables(installed, target), database: database, paths: context.paths, runID: run.id,
                    now: context.clock())
                try run.journal.addBackup(backup.record)
                run.reportBackup(backup.record)
                run.state.backupDirectory = backup.directory
                run.state.backupID = backup.record.id
                run.state.newTables = newTables
                try run.save()
                if !backup.skipped.isEmpty { context.progress.note("backup\(backup.skippedNote)") }
                return ((), "\(backup.directory) (\(backup.record.fileCount) files, \(backup.record.sizeBytes) bytes)"
                    + backup.skippedNote)
            }
            return nil
        } catch {
            tidy(run)
            // Whatever part of the backup was written is useless now (the lock is ours: no other run's).
            Maintenance.removePartialBackups(journal: run.journal, paths: context.paths)
            let message = "backup of \(plugin) \(from) failed, nothing was changed: \(error)"
            try run.finish(.failed, rollbackStatus: "not_required", error: message, exitCode: .rolledBack)
            return RunOutcome(
                runID: run.id, command: run.command, plugin: plugin, fromVersion: from, toVersion: to, status: .failed,
                rollbackStatus: "not_required", message: message, error: message, exitCode: .rolledBack)
        }
    }

    /// Exchanges the staged tree with the live one. The identities are saved first, so recovery can
    /// tell from the disk alone whether the exchange happened.
    static func swap(_ run: PipelineRun) throws {
        let live = run.context.site.pluginDirectory
        guard let staged = run.state.stagedTree, let work = run.state.workDirectory else {
            preconditionFailure("swap before stage")
        }
        // The work area may sit in a folder the web server's user can write to: what is swapped in must
        // be the very tree staged and checked, not one put in its place since.
        guard let checked = run.stagedIdentityAtStage, FileSystem.identity(of: staged) == checked else {
            throw UpgradeError.failed("the staged tree \(staged) is not the one extracted and checked; refusing to swap it in")
        }
        if run.context.site.live.swapMode == .symlink && FileSystem.isDirectory(staged) {
            // The new release gets a directory of its own next to the plugin, and the staged path a
            // link to it: the exchange below then switches links, and requests already running keep
            // including from the release they started in.
            do {
                try LiveTree.publish(
                    staged: staged, pluginPath: live, releaseName: "\(run.state.targetManifestVersion ?? "release")-"
                        + String(run.id.prefix(8)))
            } catch {
                throw UpgradeError.failed("cannot publish the release next to \(live): \(error)")
            }
        }
        run.state.liveIdentityBefore = FileSystem.identity(of: live)
        run.state.stagedIdentity = FileSystem.identity(of: staged)
        try run.save()
        try run.step(.swap, "switching to the new tree") {
            let method = try FileSystem.exchange(
                live, staged, within: try? workBase(run.context), fallbackParking: work + "/parking")
            run.state.exchangeMethod = method.rawValue
            try run.save()
            let hook = LiveSite.afterSwap(run.context)
            let how = method == .exchange ? "renameat2(RENAME_EXCHANGE)" : "two renames (exchange not supported)"
            let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: live)).map { "link to \($0), " } ?? ""
            return ((), link + how + hook)
        }
    }

    static func verify(_ run: PipelineRun, expecting target: PluginManifest) throws {
        let site = run.context.site
        try run.step(.verify, "checking \(target.name) \(target.version)") {
            let live = try PluginManifest.load(pluginDirectory: site.pluginDirectory)
            guard live.name == target.name, live.version == target.version else {
                throw UpgradeError.failed(
                    "verify: the live plugin reports \(live.name) \(live.version), expected \(target.name) \(target.version)")
            }
            // An upgrade's new code that answers 5xx is broken: fail at once. A manual rollback waits
            // errors out instead: the code it just swapped out may still be cached for a moment.
            let failFast = run.command == "upgrade"
            var served = ""
            if let wait = LiveSite.waitForVersion(run.context, target.version, failFast: failFast) {
                guard wait.passed else {
                    throw UpgradeError.failed(
                        "verify: \(site.live.versionURL ?? "") does not report \(target.version): \(wait.detail)")
                }
                served = "; the site reports \(target.version) (\(wait.detail))"
            }
            let results = SmokeRunner(
                pluginDirectory: site.pluginDirectory, database: site.database, version: target.version,
                failFast: failFast
            ).run(target.smoke)
            if let failure = results.failureDescription { throw UpgradeError.failed(failure) }
            return ((), "version \(live.version)\(served); \(results.count) smoke check\(results.count == 1 ? "" : "s") passed")
        }
    }

    static func commit(_ run: PipelineRun, plugin: String, from: String, to: String, message: String) throws -> RunOutcome {
        try run.step(.commit, "recording success") {
            if run.command == "upgrade", let version = SemanticVersion(to) {
                try run.journal.acceptVersion(
                    version, plugin: plugin, pluginDirectory: run.context.site.pluginDirectory, now: run.context.clock())
            }
            // Straight to the journal: the outcome report is queued after the commit step's own.
            try run.journal.finishRun(
                run: run.id, status: .succeeded, rollbackStatus: "not_required", error: nil, exitCode: 0,
                now: run.context.clock())
            return ((), "kept the previous tree at \(run.state.stagedTree ?? "?")")
        }
        if run.command == "rollback" {
            run.reportRollbackCompleted(
                success: true, durationMilliseconds: run.rollbackWindowMilliseconds ?? 0, filesRestored: true,
                databaseRestored: true)
            run.reportOutcome(status: .succeeded, rollbackStatus: "success", error: nil, rollbackVersion: to)
        } else {
            run.reportOutcome(status: .succeeded, rollbackStatus: "not_required", error: nil)
        }
        try FaultInjection.hit("before-tidy")
        // Tidy: keep this run's previous tree (the fast rollback path); drop older ones.
        Maintenance.sweepWorkDirectories(journal: run.journal, context: run.context)
        return RunOutcome(
            runID: run.id, command: run.command, plugin: plugin, fromVersion: from, toVersion: to, status: .succeeded,
            rollbackStatus: "not_required", message: message, exitCode: .ok)
    }

    // MARK: helpers

    struct AlreadyInstalled: Error, CustomStringConvertible {
        let description: String
    }

    static func checkTarget(
        _ target: PluginManifest, installed: PluginManifest, options: UpgradeOptions,
        highestAccepted: SemanticVersion? = nil
    ) throws {
        guard target.name == installed.name else {
            throw UpgradeError.refused(
                "release archive \(options.source) holds plugin '\(target.name)', but the installed plugin is '\(installed.name)'")
        }
        if let expected = options.expectedVersion, expected != target.version {
            throw UpgradeError.refused(
                "release archive \(options.source) holds \(target.name) \(target.version), not the requested \(expected)")
        }
        if target.version < installed.version && !options.force {
            throw UpgradeError.refused(
                "release \(target.name) \(target.version) is older than the installed \(installed.version); "
                    + "pass --force to downgrade")
        }
        if target.version == installed.version && !options.force {
            throw AlreadyInstalled(description: "\(target.name) \(target.version) is already installed")
        }
        if let highestAccepted, target.version < highestAccepted, !options.force {
            throw UpgradeError.refused(
                "release \(target.name) \(target.version) is older than \(highestAccepted), the highest version this "
                    + "install has accepted; pass --force to install it anyway")
        }
    }

    /// Ends a run that found nothing to do (exit 0, "skipped: …").
    static func skipped(_ run: PipelineRun, plugin: String, from: String, _ reason: String) throws -> RunOutcome {
        tidy(run)
        try run.finish(.skipped, rollbackStatus: "not_required", error: nil, exitCode: .ok)
        return RunOutcome(
            runID: run.id, command: run.command, plugin: plugin, fromVersion: from, toVersion: nil, status: .skipped,
            rollbackStatus: "not_required", message: "skipped: \(reason)", exitCode: .ok)
    }

    static func loadMigrations(_ manifest: PluginManifest, root: String, refusing: Bool) throws -> [Migration] {
        guard let folder = manifest.migrations else { return [] }
        do {
            return try Migration.load(from: (root as NSString).appendingPathComponent(folder))
        } catch {
            throw refusing ? UpgradeError.refused("release \(manifest.name) \(manifest.version): \(error)") : error
        }
    }

    /// The tables a run backs up: both versions' owned tables and the migration ledger.
    static func ownedTables(_ installed: PluginManifest, _ target: PluginManifest) -> [String] {
        var tables: [String] = []
        for table in installed.tables + target.tables + ["molam_schema_migrations"] where !tables.contains(table) {
            tables.append(table)
        }
        return tables
    }

    static func openSite(_ site: SiteConfiguration) throws -> (PluginManifest, SQLitePluginDatabase) {
        // A link the web server's user planted is refused, never followed; one of the agent's own
        // (swap: symlink) leads to the release the site runs.
        let tree = try LiveTree.directory(of: site.pluginDirectory)
        var manifest: PluginManifest
        do {
            manifest = try PluginManifest.load(pluginDirectory: tree)
        } catch {
            throw UpgradeError.configuration("installed plugin: \(error)")
        }
        // What the installed version may really own: a core table its manifest claims (a bad release
        // installed before these checks existed) is never backed up, restored or dropped.
        manifest = manifest.resolvingTables(prefix: site.tablePrefix)
        manifest.tables = TableOwnership(sitePrefix: site.tablePrefix, installed: manifest).installedTables
        guard case .sqlite(let path) = site.database else {
            throw UpgradeError.configuration("unsupported database \(site.database)")
        }
        do {
            return (manifest, try SQLitePluginDatabase(path: path))
        } catch {
            throw UpgradeError.configuration("plugin database: \(error)")
        }
    }

    static func pluginNameGuess(_ context: UpgradeContext) -> String {
        (try? PluginManifest.load(pluginDirectory: context.site.pluginDirectory).name)
            ?? (context.site.pluginDirectory as NSString).lastPathComponent
    }

    static func validate(sha256: String) throws(UpgradeError) {
        guard sha256.count == 64, sha256.allSatisfy(\.isHexDigit) else {
            throw .configuration("--sha256: '\(sha256)' is not 64 hexadecimal characters")
        }
    }

    /// The work directory of a run, on the plugin's mount (the swap must be a rename) and outside the
    /// web root when possible: `<state-dir>/work/<run>` if the state directory shares the plugin's
    /// mount, else a hidden 0700 folder next to the plugin directory. A read-only mount, or a plugin
    /// directory that is a mount point of its own, is refused here, before any backup.
    @discardableResult
    static func prepareWorkDirectory(_ run: PipelineRun) throws -> String {
        let site = run.context.site
        try Mounts.checkSwappable(pluginDirectory: site.pluginDirectory)
        let base = try workBase(run.context)
        // Recorded before it exists, so that whatever happens next, tidy and recovery know it.
        let directory = base.path + "/" + run.id
        run.state.workDirectory = directory
        try run.save()
        do {
            try systemCall("mkdir", path: directory) { mkdirat(base.fd, run.id, 0o700) }
            try base.sync()
        } catch {
            throw UpgradeError.failed("cannot create the work directory \(directory): \(error)")
        }
        return directory
    }

    /// The folder work directories go in, opened and checked: the agent's own, 0700 (checked by
    /// descriptor, so a link planted in its place is refused, never followed).
    static func workBase(_ context: UpgradeContext) throws -> DirectoryHandle {
        let pluginParent = (context.site.pluginDirectory as NSString).deletingLastPathComponent
        let stateWork = context.paths.work
        do {
            let state = try TrustedDirectory.openCreating(stateWork, what: "work directory")
            if Mounts.sameMount(stateWork, pluginParent) { return state }
            let hidden = pluginParent + "/" + hiddenWorkName
            // It sits in a folder the web server may write to: if it is not ours alone (someone replaced
            // it with a link, or widened it), whatever is inside could be swapped under us.
            let handle = try TrustedDirectory.openCreating(
                hidden, what: "work directory", requirements: TrustedDirectory.Requirements(privateMode: true))
            if !Mounts.sameMount(hidden, pluginParent) {
                throw TrustError("work directory \(hidden) is not on the mount of \(pluginParent); remove it and retry")
            }
            try FileSystem.writeDenyAllHtaccess(in: handle)
            return handle
        } catch let error as TrustError {
            throw UpgradeError.failed("\(error.description); nothing was changed")
        }
    }

    /// Gives the staged top directory the live one's permission bits (a host may keep plugins 0750 for
    /// the web server's group), minus setuid, setgid, sticky and group/other write.
    static func matchTopDirectoryMode(of staged: String, to live: String) throws(ArchiveRefusal) {
        var info = stat()
        guard lstat(live, &info) == 0 else { return }
        let mode = (info.st_mode & 0o755) | 0o700
        do {
            try systemCall("chmod", path: staged) { chmod(staged, mode) }
            try FileSystem.sync(staged)
        } catch {
            throw .io(error)
        }
    }

    /// The work folder next to the plugin directory, used when the state directory is on another filesystem.
    static let hiddenWorkName = ".molam-upgrade-work"

    /// The previous tree kept by the run that made `backup`, if it is still there and still that version.
    static func keptTree(for backup: BackupRecord, journal: Journal) throws -> String? {
        guard let runID = backup.runID, let run = try journal.run(id: runID), run.status == .succeeded,
              let tree = run.state.stagedTree,
              let files = LiveTree.resolve(kept: tree, pluginPath: run.pluginDirectory),
              let manifest = try? PluginManifest.load(pluginDirectory: files),
              manifest.version.description == backup.version
        else { return nil }
        return tree
    }

    static func tidy(_ run: PipelineRun) {
        if let directory = run.state.workDirectory { Maintenance.removeWorkDirectory(directory) }
    }

    /// Ends a run that stopped before changing anything, with the exit code its error calls for.
    static func refuse(
        _ run: PipelineRun, plugin: String, from: String?, to: String?, _ error: any Error, prefix: String = ""
    ) throws -> RunOutcome {
        let upgradeError = (error as? UpgradeError) ?? .failed("\(error)")
        let status: RunStatus = switch upgradeError.exitCode {
        case .refused: .refused
        case .unavailable: .unavailable
        default: .failed
        }
        let message = prefix + upgradeError.description
        try run.finish(status, rollbackStatus: "not_required", error: message, exitCode: upgradeError.exitCode)
        return RunOutcome(
            runID: run.id, command: run.command, plugin: plugin, fromVersion: from, toVersion: to, status: status,
            rollbackStatus: "not_required", message: message, error: message, exitCode: upgradeError.exitCode)
    }

    /// Turns unexpected errors (a journal that cannot be written, say) into a typed one.
    static func guarded(_ session: ChangingSession, _ body: () throws -> RunOutcome) throws(UpgradeError) -> RunOutcome {
        do {
            return try body()
        } catch let error as UpgradeError {
            throw error
        } catch {
            throw .failed("\(error)")
        }
    }
}
