import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The two shapes a live plugin path takes, and the release folder behind the second.
///
/// - `exchange` (the default): the plugin path is a directory, swapped with the staged one by
///   `renameat2(RENAME_EXCHANGE)`. Nothing to configure, but a request already running when the
///   swap happens resolves its later `require __DIR__ . '/…'` into the other tree (measured: about
///   two "Call to undefined function" errors per swap under load with `opcache.revalidate_freq=0`).
/// - `symlink`: each release lives in its own directory, `<plugins>/.molam-releases/<dir>/<release>`,
///   and the plugin path is a link to one of them that the swap exchanges for another. PHP resolves
///   `__FILE__` and `__DIR__` through links, so a request that started in one release keeps
///   including from it; but opcache then keeps serving the old release through the switched link
///   until it is reset, so this mode needs an `after_swap` hook (a php-fpm reload, or a request to
///   a page that calls `opcache_reset()`).
///
/// The link is always of the agent's own shape (`.molam-releases/<dir>/<release>`, relative to the
/// plugin's parent), and the folders it goes through are the agent's own (owner, no foreign write),
/// so a link the web server's user plants at the plugin path is refused, never followed.
enum LiveTree {
    static let releasesFolder = ".molam-releases"

    /// The directory the site runs from: the plugin path itself when it is a directory, or the
    /// release directory its link names, after checking the link is the agent's own.
    static func directory(of pluginPath: String) throws(UpgradeError) -> String {
        var info = stat()
        guard lstat(pluginPath, &info) == 0 else {
            throw .configuration("plugin directory \(pluginPath) does not exist")
        }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            return pluginPath
        case S_IFLNK:
            if let release = release(linkAt: pluginPath, pluginPath: pluginPath) { return release }
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: pluginPath)) ?? "?"
            throw .configuration(
                "plugin directory \(pluginPath) is a symbolic link (to \(target)) the agent did not make, not a "
                    + "directory; refusing to follow it: set --plugin-dir (or plugin_dir) to the real directory")
        default:
            throw .configuration("plugin directory \(pluginPath) is not a directory")
        }
    }

    /// The release directory a link of the agent's shape at `link` names (the link may sit at the
    /// plugin path or, kept for a rollback, in a work directory: its target is relative to the
    /// plugin's parent either way), or nil when the link is not one of the agent's or leads nowhere.
    static func release(linkAt link: String, pluginPath: String) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { return nil }
        let parts = target.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let folder = (pluginPath as NSString).lastPathComponent
        guard parts.count == 3, parts[0] == releasesFolder, parts[1] == folder, isPlainName(parts[2]) else {
            return nil
        }
        let parent = (pluginPath as NSString).deletingLastPathComponent
        // The folders the link goes through must be the agent's own: nobody else could have put a
        // release there, or renamed one into place.
        guard (try? TrustedDirectory.open(parent + "/" + releasesFolder, what: "release folder")) != nil,
              let releases = try? TrustedDirectory.open(
                  parent + "/" + releasesFolder + "/" + folder, what: "release folder")
        else { return nil }
        var info = stat()
        let found = parts[2].withCString { fstatat(releases.fd, $0, &info, AT_SYMLINK_NOFOLLOW) }
        guard found == 0, info.st_mode & S_IFMT == S_IFDIR else { return nil }
        return releases.path + "/" + parts[2]
    }

    /// The directory a kept previous tree's files are in: itself, or the release its link names.
    static func resolve(kept path: String, pluginPath: String) -> String? {
        if FileSystem.isDirectory(path) { return path }
        if FileSystem.isSymbolicLink(path) { return release(linkAt: path, pluginPath: pluginPath) }
        return nil
    }

    private static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("\0") && name.utf8.count <= 200
    }

    /// `<plugins>/.molam-releases/<dir>`, created if missing: the agent's own, 0755 (the web server
    /// must read the releases), with a deny-all `.htaccess` so no release is reachable by its own URL
    /// (the site reaches the live one through the plugin path).
    static func releasesDirectory(pluginPath: String) throws -> DirectoryHandle {
        let parent = (pluginPath as NSString).deletingLastPathComponent
        let folder = (pluginPath as NSString).lastPathComponent
        let top = parent + "/" + releasesFolder
        do {
            for path in [top, top + "/" + folder] where !FileSystem.exists(path) {
                try systemCall("mkdir", path: path) { mkdir(path, 0o755) }
                try FileSystem.syncParent(of: path)
            }
            try FileSystem.writeDenyAllHtaccess(in: try TrustedDirectory.open(top, what: "release folder"))
            return try TrustedDirectory.open(top + "/" + folder, what: "release folder")
        } catch let error as TrustError {
            throw UpgradeError.failed("\(error.description); nothing was changed")
        }
    }

    /// Moves the staged tree at `staged` into the release folder as `releaseName`, and puts a link
    /// to it at `staged`, ready to be exchanged with the plugin path. Both through descriptors.
    static func publish(staged: String, pluginPath: String, releaseName: String) throws {
        let releases = try releasesDirectory(pluginPath: pluginPath)
        let stagedParentPath = (staged as NSString).deletingLastPathComponent
        let stagedName = (staged as NSString).lastPathComponent
        let stagedParent = try DirectoryHandle.open(stagedParentPath)
        try systemCall("rename", path: staged) {
            renameat(stagedParent.fd, stagedName, releases.fd, releaseName)
        }
        let folder = (pluginPath as NSString).lastPathComponent
        let target = releasesFolder + "/" + folder + "/" + releaseName
        try systemCall("symlink", path: staged) { symlinkat(target, stagedParent.fd, stagedName) }
        try releases.sync()
        try stagedParent.sync()
    }

    /// Removes the releases no link names any more: `keep` are the links (plugin path, kept trees)
    /// whose releases stay. A release still in use is never removed; one left by a failed or
    /// interrupted run is.
    static func collect(pluginPath: String, keepingTargetsOf links: [String]) {
        let parent = (pluginPath as NSString).deletingLastPathComponent
        let folder = (pluginPath as NSString).lastPathComponent
        let path = parent + "/" + releasesFolder + "/" + folder
        guard FileSystem.exists(path), let releases = try? TrustedDirectory.open(path, what: "release folder"),
              let names = try? releases.entryNames()
        else { return }
        let kept = Set(links.compactMap { release(linkAt: $0, pluginPath: pluginPath) }
            .map { ($0 as NSString).lastPathComponent })
        for name in names {
            guard let text = String(validating: name, as: UTF8.self), !kept.contains(text) else { continue }
            try? releases.removeEntry(name)
        }
    }
}

extension SiteConfiguration {
    /// The directory whose files the site runs: the plugin directory, or the release its link names
    /// (`swap: symlink`). Where the plugin path is neither, the path itself (callers that change
    /// anything have refused it already, in `resolve`).
    var treeDirectory: String { (try? LiveTree.directory(of: pluginDirectory)) ?? pluginDirectory }
}
