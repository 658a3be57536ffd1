import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A run's work directory: on the plugin's mount (the swap must be a rename), the agent's alone,
/// outside the web root when possible. What `download` and `stage` write goes here; the previous
/// tree stays here after the swap, for a fast rollback.
enum Workspace {
    /// The work folder next to the plugin directory, used when the state directory is on another filesystem.
    static let hiddenName = ".molam-upgrade-work"

    /// Creates `<base>/<run>`: `<state-dir>/work/<run>` if the state directory shares the plugin's
    /// mount, else a hidden 0700 folder next to the plugin directory. A read-only mount, or a plugin
    /// directory that is a mount point of its own, is refused here, before any backup.
    @discardableResult
    static func prepare(_ run: PipelineRun) throws -> String {
        let site = run.context.site
        try Mounts.checkSwappable(pluginDirectory: site.pluginDirectory)
        let base = try base(run.context)
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
    static func base(_ context: UpgradeContext) throws -> DirectoryHandle {
        let pluginParent = (context.site.pluginDirectory as NSString).deletingLastPathComponent
        let stateWork = context.paths.work
        do {
            let state = try TrustedDirectory.openCreating(stateWork, what: "work directory")
            if Mounts.sameMount(stateWork, pluginParent) { return state }
            let hidden = pluginParent + "/" + hiddenName
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
}
