import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A directory the agent keeps its own things in (the state directory, its `work/` and `backups/`,
/// the work folder next to the plugin), opened by descriptor with `O_NOFOLLOW|O_DIRECTORY` and
/// checked with `fstat` before anything in it is listed, written or deleted.
///
/// The agent runs as root on hosts where the web server's user can write next to the plugin: a path
/// is only a name that such a user may have pointed at `/var/lib`. A descriptor is the directory that
/// was checked, whatever happens to its name afterwards, and every deletion below goes through
/// `unlinkat` relative to descriptors opened the same way (open(2), unlinkat(2)).
enum TrustedDirectory {
    /// What a directory must be before the agent uses it.
    struct Requirements {
        /// Owned by the agent's user.
        var ownedByAgent = true
        /// No group or other bit at all (0700): for folders that sit where another user can look.
        var privateMode = false
        /// No group or other write bit: nobody but the owner can add, rename or remove entries.
        var noForeignWrite = true
    }

    /// Opens `path` (its last component never followed) and checks it; `what` names it in errors.
    static func open(
        _ path: String, what: String, requirements: Requirements = Requirements()
    ) throws(TrustError) -> DirectoryHandle {
        let handle: DirectoryHandle
        do {
            handle = try DirectoryHandle.open(path)
        } catch {
            if error.errno == ELOOP || error.errno == ENOTDIR {
                let kind = FileSystem.isSymbolicLink(path) ? "a symbolic link" : "not a directory"
                throw TrustError(
                    "\(what) \(path) is \(kind); refusing to follow or use it: remove it (the agent "
                        + "recreates it) or point the configuration at the real directory")
            }
            throw TrustError("\(what) \(path): \(error)")
        }
        try check(handle, what: what, requirements: requirements)
        return handle
    }

    /// Creates `path` (0700, parents too) when missing, then opens and checks it.
    static func openCreating(
        _ path: String, what: String, requirements: Requirements = Requirements()
    ) throws(TrustError) -> DirectoryHandle {
        if !FileSystem.exists(path) {
            do {
                try FileSystem.makeDirectory(path, mode: 0o700)
            } catch {
                throw TrustError("cannot create the \(what) \(path): \(error)")
            }
        }
        return try open(path, what: what, requirements: requirements)
    }

    static func check(_ handle: DirectoryHandle, what: String, requirements: Requirements) throws(TrustError) {
        var info = stat()
        guard fstat(handle.fd, &info) == 0 else {
            throw TrustError("\(what) \(handle.path): fstat: \(String(cString: strerror(errno)))")
        }
        let mode = info.st_mode & 0o7777
        if requirements.ownedByAgent && info.st_uid != geteuid() {
            throw TrustError(
                "\(what) \(handle.path) belongs to uid \(info.st_uid), not to this agent's user (uid "
                    + "\(geteuid())); refusing to use it: run `chown \(geteuid()) \(handle.path)` if it is yours")
        }
        if requirements.privateMode && mode & 0o077 != 0 {
            throw TrustError(
                "\(what) \(handle.path) has mode \(String(mode, radix: 8)), readable or writable by others; "
                    + "refusing to use it: run `chmod 700 \(handle.path)`")
        }
        if requirements.noForeignWrite && mode & 0o022 != 0 {
            throw TrustError(
                "\(what) \(handle.path) has mode \(String(mode, radix: 8)): other users can add, replace or "
                    + "remove what the agent keeps there; refusing to use it: run `chmod 700 \(handle.path)`")
        }
    }
}

/// A directory the agent would not trust, said in one line with what to do.
struct TrustError: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ description: String) { self.description = description }
}

extension DirectoryHandle {
    /// Removes the entry `name` of this directory and, for a directory, everything below it, through
    /// descriptors only: a symlink is unlinked, never followed, and a directory swapped for a link
    /// between the check and the open fails the open (O_NOFOLLOW) instead of redirecting the deletion.
    func removeEntry(_ name: [UInt8]) throws(SystemError) {
        let shown = path + "/" + String(decoding: name, as: UTF8.self)
        var info = stat()
        let found = withCName(name) { fstatat(fd, $0, &info, AT_SYMLINK_NOFOLLOW) }
        guard found == 0 else {
            if errno == ENOENT { return }
            throw SystemError(call: "fstatat", path: shown, errno: errno)
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            let childFD = try systemCall("open", path: shown) {
                withCName(name) { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            }
            let child = DirectoryHandle(adopting: childFD, path: shown)
            // A tree we must delete may hold directories without write or search bits (restores).
            _ = fchmod(child.fd, 0o700)
            for entry in try child.entryNames() { try child.removeEntry(entry) }
            try systemCall("rmdir", path: shown) { withCName(name) { unlinkat(fd, $0, AT_REMOVEDIR) } }
        } else {
            try systemCall("unlink", path: shown) { withCName(name) { unlinkat(fd, $0, 0) } }
        }
    }

    func removeEntry(_ name: String) throws(SystemError) {
        try removeEntry(Array(name.utf8))
    }
}

/// Calls `body` with `name` as a NUL-terminated C string (names are bytes: not every one is UTF-8).
func withCName<T>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
    (name + [0]).withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
    }
}
