import Foundation

/// `swap`: the staged tree and the live one exchanged in one rename, and its undo, which brings the
/// old tree back. Both judge from the disk (tree identities saved before the exchange), never from
/// how far the journal got, so `recover` can run the undo after any crash, and twice.
enum SwapStep {
    /// Exchanges the staged tree with the live one. The identities are saved first, so recovery can
    /// tell from the disk alone whether the exchange happened.
    static func run(_ run: PipelineRun) throws {
        let context = run.context
        let live = context.site.pluginDirectory
        guard let staged = run.state.stagedTree, let work = run.state.workDirectory else {
            throw UpgradeError.failed("swap before stage: the run staged no tree; nothing was changed")
        }
        // The work area may sit in a folder the web server's user can write to: what is swapped in must
        // be the very tree staged and checked, not one put in its place since.
        guard let checked = run.stagedIdentityAtStage, FileSystem.identity(of: staged) == checked else {
            throw UpgradeError.failed("the staged tree \(staged) is not the one extracted and checked; refusing to swap it in")
        }
        if context.site.live.swapMode == .symlink && FileSystem.isDirectory(staged) {
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
        // A second record beside the work directory, for a `recover` whose journal lost this run.
        try RunFile.write(run)
        try run.step(.swap, "switching to the new tree") {
            let method = try FileSystem.exchange(
                live, staged, within: try? Workspace.base(context), fallbackParking: work + "/parking")
            run.state.exchangeMethod = method.rawValue
            try run.save()
            let hook = LiveSite.afterSwap(context)
            let how = method == .exchange ? "renameat2(RENAME_EXCHANGE)" : "two renames (exchange not supported)"
            let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: live)).map { "link to \($0), " } ?? ""
            return ((), link + how + hook)
        }
    }

    /// Brings the old tree back to the live path. Returns whether anything had to move.
    static func undo(_ run: PipelineRun) throws -> Bool {
        let context = run.context
        let live = context.site.pluginDirectory
        let state = run.state
        guard let oldIdentity = state.liveIdentityBefore, let staged = state.stagedTree else {
            return false   // the swap was never prepared: the live tree was not touched
        }
        let liveIdentity = FileSystem.identity(of: live)
        if liveIdentity == oldIdentity { return false }
        let parking = (state.workDirectory ?? "") + "/parking"
        // Fast path: the old tree kept where the staged one was, exchanged back in one rename.
        if FileSystem.identity(of: staged) == oldIdentity && liveIdentity != nil {
            try FileSystem.exchange(live, staged, within: try? Workspace.base(context), fallbackParking: parking)
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
        let restoreDirectory = (state.workDirectory ?? context.paths.work + "/" + run.id) + "/restore"
        try FileSystem.removeTree(restoreDirectory)
        try FileSystem.makeDirectory(restoreDirectory, mode: 0o700)
        let backup = BackupFiles(directory: backupDirectory)
        let expected = try TreeManifest.read(from: backup.filesManifest)
        let root = try TreeArchive.restore(
            archivePath: backup.filesArchive, into: restoreDirectory, expecting: expected)
        if liveIdentity == nil {
            try FileSystem.moveNoReplace(root, to: live)
        } else {
            try FileSystem.exchange(live, root, within: try? Workspace.base(context), fallbackParking: parking)
        }
        return true
    }
}
