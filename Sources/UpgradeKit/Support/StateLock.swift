import Foundation
import MolamCrypto
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive run lock: flock(2) on a file the agent owns. The kernel drops it when the process
/// dies, even by SIGKILL, so a crash never leaves a stale lock behind. The holder writes who it is
/// into the file so that a second run can name it.
///
/// The file is opened relative to its checked directory, never followed (`O_NOFOLLOW`), never
/// blocking (`O_NONBLOCK`: a FIFO planted there must not hang the agent), and checked before a byte
/// is written: a regular file of the agent's user with one link. Without the link count check, a
/// hard link planted at the lock path would have the agent truncate whatever file it points to.
public final class StateLock {
    public let path: String
    private let fd: Int32

    /// The lock of a state directory (`<state-dir>/lock`).
    convenience init(stateDirectory: DirectoryHandle, command: String, detail: String) throws(LockError) {
        try self.init(directory: stateDirectory, name: "lock", command: command, detail: detail, what: "state directory")
    }

    /// The lock of the state directory at `stateDirectory` (which must exist and pass the state
    /// directory's checks).
    public convenience init(stateDirectory: String, command: String) throws(LockError) {
        let directory: DirectoryHandle
        do {
            directory = try TrustedDirectory.open(stateDirectory, what: "state directory")
        } catch {
            throw .unsafe(error.description)
        }
        try self.init(stateDirectory: directory, command: command, detail: "")
    }

    /// Takes the lock at once or throws `.held` naming the holder; never waits.
    init(directory: DirectoryHandle, name: String, command: String, detail: String, what: String) throws(LockError) {
        path = directory.path + "/" + name
        let fd = openat(directory.fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP {
                throw .unsafe("lock file \(path) is a symbolic link; refusing to use it: remove it and retry")
            }
            throw .system(SystemError(call: "open", path: path, errno: code))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw .system(SystemError(call: "fstat", path: path, errno: code))
        }
        guard info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1, info.st_uid == geteuid() else {
            close(fd)
            let problem = info.st_mode & S_IFMT != S_IFREG ? "is not a regular file"
                : info.st_nlink != 1 ? "has \(info.st_nlink) hard links (one may point at another file)"
                : "belongs to uid \(info.st_uid), not to this agent's user"
            throw .unsafe("lock file \(path) \(problem); refusing to use it: remove it and retry")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK {
                var buffer = [UInt8](repeating: 0, count: 512)
                let count = pread(fd, &buffer, buffer.count, 0)
                close(fd)
                let holder = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                throw .held(path: path, what: what, holder: holder.isEmpty ? "unknown holder" : holder)
            }
            close(fd)
            throw .system(SystemError(call: "flock", path: path, errno: code))
        }
        self.fd = fd
        let holder = "pid \(getpid()), \(command)\(detail), since \(UTCTimestamp.string(Date(), milliseconds: false))\n"
        _ = ftruncate(fd, 0)
        _ = holder.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    private var released = false

    /// Releases the lock now rather than when the object goes away, so that work done after the run
    /// (report delivery) never keeps another command waiting. Idempotent.
    public func release() {
        guard !released else { return }
        released = true
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }

    deinit { release() }
}

/// One agent at a time per plugin directory, whatever state directory each was given: two
/// configurations naming the same plugin with different state directories would otherwise interleave,
/// and one run's rollback would silently undo the other's upgrade.
///
/// The lock file lives in a host-wide, agent-only directory (`/run/molam-upgrade` for root) and is
/// named after the plugin directory's identity: the device and inode of its parent (which a swap never
/// changes, unlike the plugin directory's own inode) and its name. Two paths that reach the same
/// directory through symlinks or bind mounts therefore share one lock.
public enum PluginDirectoryLock {
    public static func take(
        pluginDirectory: String, stateDirectory: String, command: String
    ) throws(LockError) -> StateLock {
        let parent = (pluginDirectory as NSString).deletingLastPathComponent
        let name = (pluginDirectory as NSString).lastPathComponent
        var info = stat()
        guard stat(parent, &info) == 0 else {
            throw .system(SystemError(call: "stat", path: parent, errno: errno))
        }
        let key: String
        do {
            key = try SHA256.hexDigest(of: Data("\(info.st_dev):\(info.st_ino)/\(name)".utf8))
        } catch {
            throw .unsafe("cannot name the plugin directory lock: \(error)")
        }
        let directory: DirectoryHandle
        do {
            directory = try TrustedDirectory.openCreating(
                lockDirectory, what: "lock directory",
                requirements: TrustedDirectory.Requirements(privateMode: true))
        } catch {
            throw .unsafe(error.description)
        }
        return try StateLock(
            directory: directory, name: "plugin-\(key.prefix(32)).lock", command: command,
            detail: " on \(pluginDirectory) (state directory \(stateDirectory))", what: "plugin directory")
    }

    /// `/run/molam-upgrade` for root (a tmpfs: locks vanish at boot with the processes that held them);
    /// a per-user folder in the temporary directory otherwise (CI and tests that do not run as root).
    static var lockDirectory: String {
        if geteuid() == 0 && FileSystem.isDirectory("/run") { return "/run/molam-upgrade" }
        return "/tmp/molam-upgrade-locks-\(geteuid())"
    }
}

public enum LockError: Error, CustomStringConvertible, Sendable {
    case held(path: String, what: String, holder: String)
    case unsafe(String)
    case system(SystemError)

    public var description: String {
        switch self {
        case .held(let path, let what, let holder):
            "another molam-upgrade run holds the \(what) lock \(path) (\(holder)); try again when it has finished"
        case .unsafe(let text):
            text
        case .system(let error):
            "cannot take the run lock: \(error)"
        }
    }
}
