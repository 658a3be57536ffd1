import CSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A smoke command's program, found inside the plugin tree and held open by descriptor.
///
/// The manifest names the program by a relative path ("bin/smoke", or a bare "smoke" for a file at
/// the top of the tree, never a PATH lookup). It is resolved one component at a time from a
/// descriptor of the plugin directory with `O_NOFOLLOW`, so neither `..`, an absolute path nor a
/// symlink (even one pointing back inside) can lead out of the tree, and the file executed is the
/// one whose owners and modes were checked (`execveat` on the descriptor), whatever the path names
/// by then.
final class SmokeCommand {
    /// `O_PATH` descriptor of the regular, executable file: enough for fstat and execveat.
    let executable: Int32
    /// The plugin directory, the command's working directory.
    let directory: Int32
    /// The file, then every directory above it up to "/", as found when it was opened.
    let chain: [SmokePathEntry]

    private init(executable: Int32, directory: Int32, chain: [SmokePathEntry]) {
        self.executable = executable
        self.directory = directory
        self.chain = chain
    }

    deinit {
        close(executable)
        close(directory)
    }

    /// Why `path` cannot name a smoke command, or nil when it can. Checked when a manifest is read,
    /// so a release asking for `/bin/sh` or `../../x` is refused before any change.
    static func problem(with path: String) -> String? {
        if path.isEmpty { return "must not be empty" }
        if path.contains("\0") { return "must not contain a NUL byte" }
        if path.hasPrefix("/") { return "must be a path inside the plugin, not an absolute path ('\(path)')" }
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        if components.contains("..") { return "must be a path inside the plugin, without '..' ('\(path)')" }
        if components.allSatisfy({ $0 == "." }) { return "must name a file inside the plugin ('\(path)')" }
        return nil
    }

    /// Opens `path` inside `pluginDirectory` without leaving it, and checks that it is a regular file
    /// with an execute bit. Every refusal is one line naming the path.
    static func open(_ path: String, in pluginDirectory: String) throws(SmokeCommandError) -> SmokeCommand {
        if let problem = problem(with: path) { throw SmokeCommandError(path: path, problem: problem) }
        let top = Glibc.open(pluginDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard top >= 0 else {
            throw SmokeCommandError(path: path, problem: "plugin directory cannot be opened: \(strerrorText())")
        }
        var below: [SmokePathEntry] = []
        var current = top
        var closeCurrent: Int32? = nil     // `top` is kept open for the result
        defer { if let fd = closeCurrent { close(fd) } }
        let components = path.split(separator: "/").map(String.init).filter { $0 != "." }
        for (index, name) in components.enumerated() {
            let walked = components[...index].joined(separator: "/")
            let isLast = index == components.count - 1
            // O_PATH: a FIFO cannot block the open, nothing is read yet, and a directory the agent
            // may search but not list (mode 0711) can still be walked.
            let flags = csys_o_path() | O_NOFOLLOW | O_CLOEXEC | (isLast ? 0 : O_DIRECTORY)
            let fd = openat(current, name, flags)
            if fd < 0 {
                let code = errno
                var info = stat()
                if fstatat(current, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFLNK {
                    close(top)
                    throw SmokeCommandError(path: path, problem: "'\(walked)' is a symbolic link")
                }
                close(top)
                throw SmokeCommandError(path: path, problem: "'\(walked)': \(String(cString: strerror(code)))")
            }
            var info = stat()
            fstat(fd, &info)
            if let fd = closeCurrent { close(fd) }
            closeCurrent = nil
            if isLast {
                let type = info.st_mode & S_IFMT
                let problem: String? = type == S_IFLNK ? "is a symbolic link"
                    : type != S_IFREG ? "is not a regular file"
                    : info.st_mode & 0o111 == 0 ? "is not executable" : nil
                if let problem {
                    close(fd)
                    close(top)
                    throw SmokeCommandError(path: path, problem: "'\(walked)' \(problem)")
                }
                below.append(SmokePathEntry(info))
                let above = ancestors(of: top)
                return SmokeCommand(executable: fd, directory: top, chain: below.reversed() + above)
            }
            below.append(SmokePathEntry(info))
            current = fd
            closeCurrent = fd
        }
        close(top)
        throw SmokeCommandError(path: path, problem: "must name a file inside the plugin")
    }

    /// The directory open on `fd` and each one above it up to "/", found through ".." by descriptor,
    /// so a symlink in the configured path counts as the directories it really leads through.
    private static func ancestors(of fd: Int32) -> [SmokePathEntry] {
        var entries: [SmokePathEntry] = []
        var current = openat(fd, ".", csys_o_path() | O_DIRECTORY | O_CLOEXEC)
        var info = stat()
        guard current >= 0, fstat(current, &info) == 0 else { return [] }
        entries.append(SmokePathEntry(info))
        for _ in 0..<4096 {
            let parent = openat(current, "..", csys_o_path() | O_DIRECTORY | O_CLOEXEC)
            close(current)
            guard parent >= 0 else { return entries }
            var parentInfo = stat()
            fstat(parent, &parentInfo)
            // "/" is its own parent.
            if parentInfo.st_dev == info.st_dev && parentInfo.st_ino == info.st_ino {
                close(parent)
                return entries
            }
            entries.append(SmokePathEntry(parentInfo))
            info = parentInfo
            current = parent
        }
        close(current)
        return entries
    }

    private static func strerrorText() -> String { String(cString: strerror(errno)) }
}

/// Owner, group and mode of one component of a smoke command's path.
struct SmokePathEntry: Sendable, Equatable {
    var uid: UInt32
    var gid: UInt32
    var mode: UInt32
    var isDirectory: Bool

    init(uid: UInt32, gid: UInt32, mode: UInt32, isDirectory: Bool) {
        self.uid = uid
        self.gid = gid
        self.mode = mode & 0o7777
        self.isDirectory = isDirectory
    }

    init(_ info: stat) {
        self.init(
            uid: info.st_uid, gid: info.st_gid, mode: info.st_mode, isDirectory: info.st_mode & S_IFMT == S_IFDIR)
    }
}

/// A smoke command that cannot be run: which command and why, in one line.
struct SmokeCommandError: Error, CustomStringConvertible, Sendable {
    let path: String
    let problem: String

    var description: String {
        "cannot run '\(path)': \(problem) (a smoke command must be a file inside the plugin tree)"
    }
}
