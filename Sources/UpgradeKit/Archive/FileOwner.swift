import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The user and group extracted files are given. The agent usually runs as root from cron, while the
/// web server reads (and some plugins write caches in) the plugin directory as its own user, so a
/// staged tree must belong to whoever owns the live one, not to root.
public struct FileOwner: Sendable, Equatable {
    public let uid: UInt32
    public let gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// The owner of `path` (not following a final symlink), or nil when nothing is there.
    public static func of(_ path: String) -> FileOwner? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return FileOwner(uid: info.st_uid, gid: info.st_gid)
    }

    /// fchown(2) by descriptor, so the file changed is the one just created, whatever its path now names.
    func apply(to fd: Int32, path: String) throws(SystemError) {
        try systemCall("fchown", path: path) { fchown(fd, uid, gid) }
    }
}
