import Foundation

/// `stage`: the release extracted into the run's private work directory, owned like the live tree,
/// held to the release policy and the table ownership rules, with the preserved paths carried over
/// and its checks run before any change (`checkBeforeSwap`). Its undo removes the work directory.
enum StageStep {
    struct Staged {
        var target: PluginManifest
        var migrations: [Migration]
    }

    static func run(
        _ run: PipelineRun, archive download: String, work: String, options: Pipeline.UpgradeOptions,
        policy: ReleasePolicy, database: any PluginDatabase
    ) throws -> Staged {
        let context = run.context
        let site = context.site
        let installed = policy.installed
        return try run.step(.stage, "extracting the release") {
            let stageDirectory = work + "/stage"
            try FileSystem.makeDirectory(stageDirectory, mode: 0o700)
            let tree: ExtractedTree
            // The new tree belongs to whoever owns the live one (the web server's user, often), and is
            // given that owner inside staging, before the swap. Only root can give files away; any other
            // agent user owns what it writes already.
            let owner = context.services.userID() == 0 ? FileOwner.of(site.treeDirectory) : nil
            do {
                tree = try SafeExtractor.extract(
                    archive: download, into: stageDirectory, limits: context.extractionLimits, owner: owner,
                    displayName: options.archive)
                try Workspace.matchTopDirectoryMode(of: tree.root, to: site.treeDirectory)
            } catch {
                // A full disk or an I/O error is no fault of the release: exit 1, not a refusal.
                if case .io? = error as? ArchiveRefusal {
                    throw UpgradeError.failed("staging failed, nothing was changed: \(error)")
                }
                throw UpgradeError.refused("\(error)")
            }
            try? FileSystem.removeTree(download)
            var manifest: PluginManifest
            do {
                manifest = try PluginManifest.load(pluginDirectory: tree.root)
            } catch {
                throw UpgradeError.refused("release archive \(options.source): \(error)")
            }
            // The version installed already is no baseline when its own migrations are missing from the
            // ledger (a crash between swap and migrate whose journal was lost): it is installed again,
            // which applies them.
            var alreadyInstalled: ReleasePolicy.AlreadyInstalled?
            do {
                try policy.check(plugin: manifest.name, version: manifest.version, source: options.source)
            } catch let error as ReleasePolicy.AlreadyInstalled {
                alreadyInstalled = error
            }
            manifest = try Pipeline.ownedRelease(manifest, installed: installed, site: site)
            let kept = try PreservedPaths.carry(
                installed: installed, release: manifest, from: site.treeDirectory, into: tree.root)
            let migrations = try Pipeline.loadMigrations(
                manifest, root: tree.root, tablePrefix: site.tablePrefix, refusing: true)
            let pending: [Migration]
            do {
                pending = try database.pendingMigrations(migrations)
            } catch {
                throw UpgradeError.refused("release \(manifest.name) \(manifest.version): \(error)")
            }
            if let alreadyInstalled {
                guard !pending.isEmpty, try !database.appliedMigrations().isEmpty else { throw alreadyInstalled }
                context.progress.note("\(manifest.name) \(manifest.version) is installed but its schema lacks "
                    + "\(pending.count) of its migrations: installing it again to apply them")
            }
            let checked = try Pipeline.checkBeforeSwap(manifest, tree: tree.root, run: run, scratch: work)
            record(run, staged: tree.root, version: manifest.version)
            try run.save()
            return (Staged(target: manifest, migrations: migrations),
                    "\(manifest.name) \(manifest.version): \(tree.fileCount) files, \(tree.bytesWritten) bytes"
                        + kept.detail + checked)
        }
    }

    /// Notes the staged tree in the run's state: what the swap takes, and the identity it must still have.
    static func record(_ run: PipelineRun, staged root: String, version: SemanticVersion) {
        run.state.stagedTree = root
        run.stagedIdentityAtStage = FileSystem.identity(of: root)
        run.state.targetManifestVersion = version.description
    }

    /// Nothing on the site changed: the work directory goes, with whatever it holds.
    static func undo(_ run: PipelineRun) {
        run.tidy()
    }
}
