import CSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Identity of a directory on disk. Recovery compares these instead of trusting paths: after a crash
/// the journal may lag behind what the kernel did.
public struct FileIdentity: Sendable, Equatable, Codable, CustomStringConvertible {
    public let device: UInt64
    public let inode: UInt64

    public var description: String { "\(device):\(inode)" }
}

/// Filesystem operations the pipeline needs, each with the durability it promises spelled out.
public enum FileSystem {
    /// lstat-based identity, or nil when nothing is there.
    public static func identity(of path: String) -> FileIdentity? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    public static func isSymbolicLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Creates a directory and its missing parents with `mode` (the umask does not widen it), and
    /// syncs each new directory's parent so that it survives a power cut (a staging or work directory
    /// lost after the swap would take the kept previous tree with it).
    public static func makeDirectory(_ path: String, mode: mode_t = 0o700) throws(SystemError) {
        if isDirectory(path) { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path && !isDirectory(parent) {
            try makeDirectory(parent, mode: mode)
        }
        if mkdir(path, mode) != 0 {
            let code = errno
            if code == EEXIST && isDirectory(path) { return }
            throw SystemError(call: "mkdir", path: path, errno: code)
        }
        try systemCall("chmod", path: path) { chmod(path, mode) }
        try syncParent(of: path)
    }

    /// fsync(2) on a file or directory. A directory must be synced for a rename or create inside it
    /// to survive power loss (rename(2) is atomic, not durable).
    public static func sync(_ path: String) throws(SystemError) {
        let fd = try systemCall("open", path: path) { open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    /// fsync(2) of an open descriptor. Every fsync the agent makes goes through here: a failure is
    /// fatal for the step that asked (after a failed fsync the page cache may already have dropped the
    /// data, so retrying proves nothing), and the `fsync` fault point can fail it on purpose.
    public static func fsync(_ fd: Int32, path: String) throws(SystemError) {
        do {
            try FaultInjection.hit("fsync")
        } catch {
            throw SystemError(call: "fsync", path: path, errno: EIO)
        }
        try systemCall("fsync", path: path) { Glibc.fsync(fd) }
    }

    /// syncfs(2) of the filesystem holding `fd`: after writing a whole tree, one journal commit
    /// instead of one fsync (and commit) per file. It goes through the `fsync` fault point like every
    /// other durability call. Since Linux 5.8 syncfs reports writeback errors that happened on the
    /// filesystem since `fd` was opened (errseq_t in the superblock), so `fd` must have been opened
    /// before the writes it vouches for; on older kernels it reports no error at all, which is why
    /// callers still check every write(2) and close nothing they have not written completely.
    public static func syncFilesystem(_ fd: Int32, path: String) throws(SystemError) {
        do {
            try FaultInjection.hit("fsync")
        } catch {
            throw SystemError(call: "syncfs", path: path, errno: EIO)
        }
        try systemCall("syncfs", path: path) { csys_syncfs(fd) }
    }

    public static func syncParent(of path: String) throws(SystemError) {
        // A bare name ("release.key") has the working directory as its parent, not "".
        let parent = (path as NSString).deletingLastPathComponent
        try sync(parent.isEmpty ? "." : parent)
    }

    /// How a swap was done: atomically, or by the two-rename fallback.
    public enum ExchangeMethod: String, Sendable { case exchange, renames }

    /// Atomically exchanges two directories on one filesystem (renameat2 RENAME_EXCHANGE), then syncs
    /// both parents. Where the kernel or filesystem refuses the exchange (EINVAL, ENOSYS, ENOTSUP),
    /// falls back to two renames through `fallbackParking`; only then is `first` briefly missing.
    @discardableResult
    public static func exchange(
        _ first: String, _ second: String, fallbackParking: String
    ) throws(SystemError) -> ExchangeMethod {
        var method = ExchangeMethod.exchange
        if csys_rename_exchange(AT_FDCWD, first, AT_FDCWD, second) != 0 {
            let code = errno
            guard code == EINVAL || code == ENOSYS || code == ENOTSUP || code == EOPNOTSUPP else {
                throw SystemError(call: "renameat2(RENAME_EXCHANGE)", path: "\(first) <-> \(second)", errno: code)
            }
            try systemCall("rename", path: first) { rename(first, fallbackParking) }
            try systemCall("rename", path: second) { rename(second, first) }
            try systemCall("rename", path: fallbackParking) { rename(fallbackParking, second) }
            method = .renames
        }
        try syncParent(of: first)
        try syncParent(of: second)
        return method
    }

    /// `exchange`, with the work-area side reached through `base`, a checked descriptor of the work
    /// area, one component at a time with O_NOFOLLOW: a folder next to the plugin that the web server's
    /// user renamed or replaced with a link since it was checked cannot redirect the swap. Paths outside
    /// `base` (or no base) fall back to the path-based exchange.
    @discardableResult
    static func exchange(
        _ live: String, _ staged: String, within base: DirectoryHandle?, fallbackParking: String
    ) throws(SystemError) -> ExchangeMethod {
        guard let base, let (stagedParent, stagedName) = try resolve(staged, below: base),
              let (parkingParent, parkingName) = try resolve(fallbackParking, below: base) else {
            return try exchange(live, staged, fallbackParking: fallbackParking)
        }
        let liveParentPath = (live as NSString).deletingLastPathComponent
        let liveName = (live as NSString).lastPathComponent
        // The plugin's parent is the operator's configured path (it may legitimately go through links).
        let liveParentFD = try systemCall("open", path: liveParentPath) {
            open(liveParentPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        let liveParent = DirectoryHandle(adopting: liveParentFD, path: liveParentPath)
        var method = ExchangeMethod.exchange
        if csys_rename_exchange(stagedParent.fd, stagedName, liveParent.fd, liveName) != 0 {
            let code = errno
            guard code == EINVAL || code == ENOSYS || code == ENOTSUP || code == EOPNOTSUPP else {
                throw SystemError(call: "renameat2(RENAME_EXCHANGE)", path: "\(live) <-> \(staged)", errno: code)
            }
            try systemCall("rename", path: live) {
                renameat(liveParent.fd, liveName, parkingParent.fd, parkingName)
            }
            try systemCall("rename", path: staged) {
                renameat(stagedParent.fd, stagedName, liveParent.fd, liveName)
            }
            try systemCall("rename", path: fallbackParking) {
                renameat(parkingParent.fd, parkingName, stagedParent.fd, stagedName)
            }
            method = .renames
        }
        try liveParent.sync()
        try stagedParent.sync()
        return method
    }

    /// The parent directory of `path` opened below `base` without following any link, and its last
    /// component; nil when `path` is not below `base`.
    static func resolve(_ path: String, below base: DirectoryHandle) throws(SystemError) -> (DirectoryHandle, String)? {
        let prefix = base.path + "/"
        guard path.hasPrefix(prefix) else { return nil }
        let components = path.dropFirst(prefix.count).split(separator: "/").map(String.init)
        guard let last = components.last, !components.contains(".."), !components.contains(".") else { return nil }
        return (try base.descend(components.dropLast(), create: false), last)
    }

    /// Renames, refusing to replace anything, and syncs the destination's parent.
    public static func moveNoReplace(_ source: String, to destination: String) throws(SystemError) {
        if csys_rename_noreplace(AT_FDCWD, source, AT_FDCWD, destination) != 0 {
            let code = errno
            guard code == EINVAL || code == ENOSYS else {
                throw SystemError(call: "renameat2(RENAME_NOREPLACE)", path: "\(source) -> \(destination)", errno: code)
            }
            guard !exists(destination) else {
                throw SystemError(call: "rename", path: destination, errno: EEXIST)
            }
            try systemCall("rename", path: source) { rename(source, destination) }
        }
        try syncParent(of: destination)
        try syncParent(of: source)
    }

    /// Removes a tree without following symlinks (a symlink is removed, never its target).
    public static func removeTree(_ path: String) throws(SystemError) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw SystemError(call: "lstat", path: path, errno: errno)
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            // A tree we must delete may hold directories without write or search bits.
            _ = chmod(path, 0o700)
            guard let dir = opendir(path) else { throw SystemError(call: "opendir", path: path, errno: errno) }
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            for name in names { try removeTree(path + "/" + name) }
            try systemCall("rmdir", path: path) { rmdir(path) }
        } else {
            try systemCall("unlink", path: path) { unlink(path) }
        }
    }

    /// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SystemError) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "write", path: path, errno: errno)
            }
            offset += written
        }
    }

    /// Writes a small file atomically and durably: temp file, fsync, rename, fsync of the directory.
    public static func writeAtomically(_ data: Data, to path: String, mode: mode_t = 0o600) throws(SystemError) {
        let temporary = path + ".tmp-\(getpid())"
        let fd = try systemCall("open", path: temporary) {
            open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        }
        var failure: SystemError?
        do {
            try data.withUnsafeBytes { raw in try writeAll(fd, raw, path: temporary) }
        } catch let error as SystemError {
            failure = error
        } catch {
            failure = SystemError(call: "write", path: temporary, errno: EIO)
        }
        if failure == nil {
            do { try fsync(fd, path: temporary) } catch { failure = error }
        }
        close(fd)
        if let failure {
            unlink(temporary)
            throw failure
        }
        try systemCall("rename", path: path) { rename(temporary, path) }
        try syncParent(of: path)
    }

    /// Total size of regular files under a path (no symlinks followed).
    public static func diskUsage(_ path: String) -> Int64 {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        if (info.st_mode & S_IFMT) != S_IFDIR { return Int64(info.st_size) }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return 0 }
        return names.reduce(Int64(0)) { $0 + diskUsage(path + "/" + $1) }
    }

    /// Writes `.htaccess` denying every request into the folder open on `folder` (by descriptor:
    /// never through a name the web server's user could move), unless one is there already, so Apache
    /// serves nothing from a folder of the agent's that sits in the web root.
    static func writeDenyAllHtaccess(in folder: DirectoryHandle) throws {
        let fd = openat(folder.fd, ".htaccess", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let denyAll = Data("Require all denied\nDeny from all\n".utf8)
        try denyAll.withUnsafeBytes { raw in try writeAll(fd, raw, path: folder.path + "/.htaccess") }
        try self.fsync(fd, path: folder.path + "/.htaccess")
    }
}
