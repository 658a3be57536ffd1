import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The few file operations the plugin database code needs, as raw syscalls so that every failure
/// is a typed `SystemError` naming the path.
enum DatabaseFileIO {
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    static func size(_ path: String) throws(SystemError) -> Int64 {
        var info = stat()
        try systemCall("stat", path: path) { stat(path, &info) }
        return Int64(info.st_size)
    }

    static func readFile(_ path: String) throws(SystemError) -> [UInt8] {
        let fd = try systemCall("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { chunk.deallocate() }
        while true {
            let count = try systemCall("read", path: path) { read(fd, chunk.baseAddress, chunk.count) }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Entry names of a directory, or nil when it does not exist.
    static func listDirectory(_ path: String) throws(SystemError) -> [String]? {
        guard let directory = opendir(path) else {
            if errno == ENOENT { return nil }
            throw SystemError(call: "opendir", path: path, errno: errno)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Creates an empty file readable by its owner only, failing with EEXIST if it is there:
    /// a backup must never overwrite another.
    static func createExclusive(_ path: String) throws(SystemError) {
        close(try openExclusive(path))
    }

    /// `createExclusive`, the new file's descriptor kept open (the caller closes it): an fsync through
    /// it after another writer (a SQLite connection that never syncs) is done covers that writer's
    /// pages, and a writeback error in between is reported to it, since it was open all along (fsync(2)).
    static func openExclusive(_ path: String) throws(SystemError) -> Int32 {
        try systemCall("open", path: path) {
            open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(0o600))
        }
    }

    /// Makes a new directory entry durable: fsync on a file does not cover its name (fsync(2)).
    static func syncDirectory(of path: String) throws(SystemError) {
        let directory = (path as NSString).deletingLastPathComponent
        let target = directory.isEmpty ? "." : directory
        let fd = try systemCall("open", path: target) { open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        try FileSystem.fsync(fd, path: target)
    }

    static func removeIfPresent(_ path: String) {
        unlink(path)
    }

    static func baseName(_ path: String) -> String {
        (path as NSString).lastPathComponent
    }
}
