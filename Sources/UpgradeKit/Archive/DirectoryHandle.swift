import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An open directory file descriptor, closed in `deinit`.
///
/// Extraction and restore walk the tree one component at a time through these, with `O_NOFOLLOW`,
/// so no path string taken from an archive is ever handed to the kernel whole: a component that is
/// a symlink fails the open (`ELOOP`/`ENOTDIR`, open(2)) instead of being followed.
final class DirectoryHandle {
    let fd: Int32
    /// For messages only.
    let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Takes ownership of an open directory descriptor (closed in `deinit`).
    convenience init(adopting fd: Int32, path: String) {
        self.init(fd: fd, path: path)
    }

    deinit { close(fd) }

    static func open(_ path: String) throws(SystemError) -> DirectoryHandle {
        let fd = try systemCall("open", path: path) {
            Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        return DirectoryHandle(fd: fd, path: path)
    }

    /// Opens the child directory `name`, creating it (mode 0700) when `create` is set and it is missing.
    /// Returns whether it was created.
    func child(_ name: String, create: Bool) throws(SystemError) -> (DirectoryHandle, created: Bool) {
        let childPath = path + "/" + name
        var created = false
        if create {
            let status = mkdirat(fd, name, 0o700)
            if status == 0 {
                created = true
            } else if errno != EEXIST {
                throw SystemError(call: "mkdir", path: childPath, errno: errno)
            }
        }
        let childFD = try systemCall("open", path: childPath) {
            openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        return (DirectoryHandle(fd: childFD, path: childPath), created)
    }

    /// Walks `components` below this directory, opening (and if asked creating) each one.
    func descend(_ components: ArraySlice<String>, create: Bool) throws(SystemError) -> DirectoryHandle {
        var current = self
        for name in components {
            current = try current.child(name, create: create).0
        }
        return current
    }

    func sync() throws(SystemError) {
        try FileSystem.fsync(fd, path: path)
    }

    /// Names in this directory (no "." or ".."), as raw bytes.
    func entryNames() throws(SystemError) -> [[UInt8]] {
        // fdopendir takes ownership of its fd, so give it a duplicate.
        let copy = try systemCall("dup", path: path) { dup(fd) }
        guard let stream = fdopendir(copy) else {
            let code = errno
            close(copy)
            throw SystemError(call: "opendir", path: path, errno: code)
        }
        defer { closedir(stream) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw SystemError(call: "readdir", path: path, errno: errno) }
                return names
            }
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: UInt8.self, capacity: 256) { bytes in
                    Array(UnsafeBufferPointer(start: bytes, count: strlen(pointer)))
                }
            }
            if name == [0x2e] || name == [0x2e, 0x2e] { continue }
            names.append(name)
        }
    }
}

/// Removes everything below `path` (not `path` itself), never following symlinks. Directories are
/// made owner-writable first, since restores may have left read-only ones. Best effort: used to clean
/// up after a failure, where the original error is the one worth reporting.
func removeContents(of path: String) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
    for name in names {
        let child = path + "/" + name
        var info = stat()
        guard lstat(child, &info) == 0 else { continue }
        if info.st_mode & S_IFMT == S_IFDIR {
            chmod(child, 0o700)
            removeContents(of: child)
            rmdir(child)
        } else {
            unlink(child)
        }
    }
}

/// `path` made absolute against the working directory; archives and destinations arrive from the
/// command line.
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    return FileManager.default.currentDirectoryPath + "/" + path
}
