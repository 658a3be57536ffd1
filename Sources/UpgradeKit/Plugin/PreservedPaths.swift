import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Carries the merchant's paths (`preserve` in the installed or the release manifest) from the live
/// tree into a staged one, inside `stage`, before the staged tree's identity is recorded.
///
/// Copied, never moved: the live tree stays intact until the swap. Everything goes through
/// descriptors opened with `O_NOFOLLOW` one component at a time, because the web server's user can
/// write the live tree: only regular files and directories are carried; a symlink, FIFO, socket or
/// device is skipped and reported, never followed or opened. Modes are kept minus setuid, setgid
/// and world-write; as root, each copy gets the live file's owner. The release's own copy of a
/// preserved path is replaced by the live one (a path missing from the live tree keeps the release's).
public enum PreservedPaths {
    /// What was carried and what was skipped, for the step's detail.
    public struct Summary: Sendable, Equatable {
        public var carried: [String] = []
        public var skipped: [String] = []

        /// "; kept certs/, config.local.php; skipped certs/key.pem (a symbolic link)" or "".
        public var detail: String {
            var text = carried.isEmpty ? "" : "; kept " + carried.joined(separator: ", ")
            if !skipped.isEmpty { text += "; skipped " + skipped.joined(separator: ", ") }
            return text
        }
    }

    /// Copies every preserved path of `installed` and `release` from `live` into `staged`.
    @discardableResult
    public static func carry(
        installed: PluginManifest, release: PluginManifest, from live: String, into staged: String
    ) throws -> Summary {
        var paths: [String] = []
        for path in installed.preserve + release.preserve where !paths.contains(path) { paths.append(path) }
        var summary = Summary()
        guard !paths.isEmpty else { return summary }
        let liveRoot = try DirectoryHandle.open(live)
        let stagedRoot = try DirectoryHandle.open(staged)
        let asRoot = geteuid() == 0
        for path in paths {
            let components = path.split(separator: "/").map(String.init)
            guard let name = components.last else { continue }
            let parents = components.dropLast()
            // A missing or non-directory parent in the live tree: nothing there to carry.
            guard let liveParent = try? liveRoot.descend(parents, create: false) else { continue }
            var info = stat()
            guard fstatat(liveParent.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let type = info.st_mode & S_IFMT
            guard type == S_IFREG || type == S_IFDIR else {
                summary.skipped.append("\(path) (\(describe(type)))")
                continue
            }
            let stagedParent = try stagedRoot.descend(parents, create: true)
            // The release's copy goes: the merchant's is the one that counts.
            try FileSystem.removeTree(stagedParent.path + "/" + name)
            try copyEntry(name, from: liveParent, to: stagedParent, asRoot: asRoot, label: path,
                          summary: &summary)
            try stagedParent.sync()
            summary.carried.append(path)
        }
        return summary
    }

    private static func copyEntry(
        _ name: String, from source: DirectoryHandle, to destination: DirectoryHandle, asRoot: Bool,
        label: String, summary: inout Summary
    ) throws {
        // O_NONBLOCK: a FIFO swapped in since the fstatat must not hang the open; fstat decides.
        let fd = try systemCall("open", path: source.path + "/" + name) {
            openat(source.fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        }
        defer { close(fd) }
        var info = stat()
        try systemCall("fstat", path: source.path + "/" + name) { fstat(fd, &info) }
        // Kept: permission bits and sticky; dropped: setuid, setgid and write for others.
        let mode = info.st_mode & 0o1777 & ~mode_t(S_IWOTH)
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            let out = try systemCall("open", path: destination.path + "/" + name) {
                openat(destination.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            }
            defer { close(out) }
            try copyBytes(from: fd, to: out, path: destination.path + "/" + name)
            if asRoot { try FileOwner(uid: info.st_uid, gid: info.st_gid).apply(to: out, path: destination.path) }
            try systemCall("fchmod", path: destination.path + "/" + name) { fchmod(out, mode) }
            try FileSystem.fsync(out, path: destination.path + "/" + name)
        case S_IFDIR:
            let (child, _) = try destination.child(name, create: true)
            let sourceDirectory = try source.child(name, create: false).0
            var reopened = stat()
            try systemCall("fstat", path: sourceDirectory.path) { fstat(sourceDirectory.fd, &reopened) }
            guard reopened.st_dev == info.st_dev, reopened.st_ino == info.st_ino else {
                throw UpgradeError.failed("\(sourceDirectory.path) was replaced while it was being copied; retry")
            }
            for raw in try sourceDirectory.entryNames() {
                let entry = String(decoding: raw, as: UTF8.self)
                var entryInfo = stat()
                guard fstatat(sourceDirectory.fd, entry, &entryInfo, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                let type = entryInfo.st_mode & S_IFMT
                guard type == S_IFREG || type == S_IFDIR else {
                    summary.skipped.append("\(label)/\(entry) (\(describe(type)))".replacing("//", with: "/"))
                    continue
                }
                try copyEntry(entry, from: sourceDirectory, to: child, asRoot: asRoot,
                              label: "\(label)/\(entry)".replacing("//", with: "/"), summary: &summary)
            }
            if asRoot { try FileOwner(uid: info.st_uid, gid: info.st_gid).apply(to: child.fd, path: child.path) }
            try systemCall("fchmod", path: child.path) { fchmod(child.fd, mode) }
            try child.sync()
        default:
            summary.skipped.append("\(label) (\(describe(info.st_mode & S_IFMT)))")
        }
    }

    private static func copyBytes(from input: Int32, to output: Int32, path: String) throws(SystemError) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "read", path: path, errno: errno)
            }
            if count == 0 { return }
            var failure: SystemError?
            buffer.withUnsafeBytes { bytes in
                do throws(SystemError) {
                    try FileSystem.writeAll(output, UnsafeRawBufferPointer(rebasing: bytes[..<count]), path: path)
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
        }
    }

    private static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFLNK: "a symbolic link"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR, S_IFBLK: "a device"
        default: "not a regular file or directory"
        }
    }
}
