import Foundation
import MolamCrypto
#if canImport(Glibc)
import Glibc
#endif

/// The per-file manifest of a plugin tree: what backups record and what restores are checked against.
public struct TreeManifest: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var path: String
        /// "file", "directory" or "symlink".
        public var kind: String
        /// Permission bits, setuid/setgid/sticky included.
        public var mode: UInt32
        /// File length; symlink target length; 0 for directories.
        public var size: Int64
        public var sha256: String?
        public var target: String?
        /// Owner and group. Optional so that manifests written before owners were recorded still decode;
        /// a restore running as root gives them back.
        public var uid: UInt32?
        public var gid: UInt32?

        public init(path: String, kind: String, mode: UInt32, size: Int64, sha256: String? = nil,
                    target: String? = nil, uid: UInt32? = nil, gid: UInt32? = nil) {
            self.path = path
            self.kind = kind
            self.mode = mode
            self.size = size
            self.sha256 = sha256
            self.target = target
            self.uid = uid
            self.gid = gid
        }
    }

    /// Sorted by path (bytewise); paths relative to the tree root, the root itself ("") excluded.
    public var entries: [Entry]
    /// What the backup left out: FIFOs, sockets and devices found in the live tree ("path (FIFO)").
    /// Absent when there were none, and from older manifests.
    public var skipped: [String]?
    /// The tree's root directory itself (path ""): its mode and owners. Absent from older manifests.
    public var root: Entry?

    /// `entries` is consumed and sorted in place: a backup's 5,000 entries are not held twice.
    public init(entries: consuming [Entry], root: Entry? = nil) {
        var entries = entries
        entries.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        self.entries = entries
        self.root = root
    }

    /// Scans a live tree with lstat (never follows symlinks), hashing files with SHA-256 in 256 KiB chunks.
    public static func scan(directory: String) throws(SystemError) -> TreeManifest {
        var entries: [Entry] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        let root = try TreeWalk.root(absolutePath(directory)).entry(kind: "directory", size: 0)
        try TreeWalk.walk(absolutePath(directory)) { (item) throws(SystemError) in
            switch item.kind {
            case .directory:
                entries.append(item.entry(kind: "directory", size: 0))
            case .symlink(let target):
                entries.append(item.entry(kind: "symlink", size: Int64(target.utf8.count), target: target))
            case .file(let fd, _):
                let hasher = try makeHasher(path: item.absolutePath)
                var total: Int64 = 0
                while true {
                    let count = try systemCall("read", path: item.absolutePath) {
                        Glibc.read(fd, buffer.baseAddress, buffer.count)
                    }
                    if count == 0 { break }
                    total += Int64(count)
                    hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                }
                entries.append(item.entry(kind: "file", size: total, sha256: hasher.finalizeHex()))
            case .special:
                break
            }
        }
        return TreeManifest(entries: entries, root: root)
    }

    /// Writes the manifest as JSON to a new or replaced file with mode 0600, fsynced.
    ///
    /// Streamed: each entry is encoded by `JSONEncoder` on its own and written through a 64 KiB
    /// buffer, inside the object's frame: encoding the whole manifest at once built its text and
    /// intermediate tree in memory first, about 7 MiB for 5,000 files, the agent's peak. `read`
    /// decodes the result like any JSON.
    public func write(to path: String) throws {
        let fd = try systemCall("open", path: path) {
            open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        defer { close(fd) }
        try systemCall("fchmod", path: path) { fchmod(fd, 0o600) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out = BufferedWriter(fd: fd, path: path)
        func list<T: Encodable>(_ items: [T]) throws {
            try out.append("[")
            for (position, item) in items.enumerated() {
                try out.append(position == 0 ? "\n" : ",\n")
                try out.append(try encoder.encode(item))
            }
            try out.append("\n]")
        }
        try out.append("{\"entries\": ")
        try list(entries)
        if let root {
            try out.append(",\n\"root\": ")
            try out.append(try encoder.encode(root))
        }
        if let skipped {
            try out.append(",\n\"skipped\": ")
            try list(skipped)
        }
        try out.append("}\n")
        try out.flush()
        try FileSystem.fsync(fd, path: path)
    }

    public static func read(from path: String) throws -> TreeManifest {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let decoded = try JSONDecoder().decode(TreeManifest.self, from: data)
        return TreeManifest(entries: decoded.entries, root: decoded.root)
    }

    /// One line per difference, for error messages; empty when equal. Owners are compared only when
    /// `comparingOwners` is set and `expected` recorded them (a restore that could not apply them, not
    /// being root, must not fail over them); the root is compared only when both sides recorded it.
    public func differences(from expected: TreeManifest, comparingOwners: Bool = true) -> [String] {
        let mine = Dictionary(entries.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        let theirs = Set(expected.entries.map(\.path))
        var lines: [String] = []
        if let wanted = expected.root, let actual = root {
            lines += Self.differences(actual, wanted, comparingOwners: comparingOwners)
        }
        for entry in expected.entries {
            guard let actual = mine[entry.path] else { lines.append("'\(entry.path)' is missing"); continue }
            lines += Self.differences(actual, entry, comparingOwners: comparingOwners)
        }
        for entry in entries where !theirs.contains(entry.path) {
            lines.append("'\(entry.path)' is unexpected")
        }
        return lines
    }

    static func differences(_ actual: Entry, _ entry: Entry, comparingOwners: Bool) -> [String] {
        let name = entry.path.isEmpty ? "the top directory" : "'\(entry.path)'"
        var lines: [String] = []
        if actual.kind != entry.kind {
            return ["\(name) is a \(actual.kind), expected a \(entry.kind)"]
        }
        if actual.mode != entry.mode {
            lines.append("\(name) has mode \(String(actual.mode, radix: 8)), "
                         + "expected \(String(entry.mode, radix: 8))")
        }
        if actual.size != entry.size || actual.sha256 != entry.sha256 || actual.target != entry.target {
            lines.append("\(name) has different content")
        }
        if comparingOwners, entry.uid != nil || entry.gid != nil,
           actual.uid != entry.uid || actual.gid != entry.gid {
            lines.append("\(name) is owned by \(owner(actual)), expected \(owner(entry))")
        }
        return lines
    }

    private static func owner(_ entry: Entry) -> String {
        "\(entry.uid.map(String.init) ?? "?"):\(entry.gid.map(String.init) ?? "?")"
    }

    static let chunkSize = 256 * 1024

    static func makeHasher(path: String) throws(SystemError) -> SHA256 {
        do { return try SHA256() } catch {
            // libcrypto only fails here when it cannot allocate.
            throw SystemError(call: "EVP_MD_CTX_new", path: path, errno: ENOMEM)
        }
    }
}

/// A depth-first, lstat-based walk of a live tree in bytewise name order, shared by the manifest scan
/// and backup creation. Files are handed over open (O_NOFOLLOW) so each is read exactly once.
enum TreeWalk {
    enum Kind {
        case directory
        case symlink(target: String)
        case file(fd: Int32, size: Int64)
        /// A FIFO, socket or device: no release holds one and no backup can; reported and left out.
        case special(kind: String)
    }

    struct Item {
        let relativePath: String
        let absolutePath: String
        let mode: UInt32
        let mtime: Int64
        let uid: UInt32
        let gid: UInt32
        let kind: Kind

        /// The manifest entry for this item, with what only the caller knows (size, hash, target).
        func entry(kind name: String, size: Int64, sha256: String? = nil, target: String? = nil)
            -> TreeManifest.Entry
        {
            TreeManifest.Entry(path: relativePath, kind: name, mode: mode, size: size, sha256: sha256,
                               target: target, uid: uid, gid: gid)
        }
    }

    /// The root directory itself, as an item with an empty relative path (lstat: a root that is a
    /// symlink is refused rather than followed).
    static func root(_ root: String) throws(SystemError) -> Item {
        var info = stat()
        try systemCall("lstat", path: root) { lstat(root, &info) }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SystemError(call: "scan (not a directory)", path: root, errno: ENOTDIR)
        }
        return Item(relativePath: "", absolutePath: root, mode: UInt32(info.st_mode) & 0o7777,
                    mtime: Int64(info.st_mtim.tv_sec), uid: UInt32(info.st_uid), gid: UInt32(info.st_gid),
                    kind: .directory)
    }

    static func walk(_ root: String, visit: (Item) throws(SystemError) -> Void) throws(SystemError) {
        let handle = try DirectoryHandle.open(root)
        try walk(handle, relative: "", visit: visit)
    }

    private static func walk(
        _ directory: DirectoryHandle, relative: String, visit: (Item) throws(SystemError) -> Void
    ) throws(SystemError) {
        let names = try directory.entryNames().sorted { $0.lexicographicallyPrecedes($1) }
        for bytes in names {
            guard let name = String(validating: bytes, as: UTF8.self) else {
                let shown = directory.path + "/" + String(decoding: bytes, as: UTF8.self)
                throw SystemError(call: "scan (name is not UTF-8)", path: shown, errno: EILSEQ)
            }
            let path = directory.path + "/" + name
            let relativePath = relative.isEmpty ? name : relative + "/" + name
            var info = stat()
            try systemCall("lstat", path: path) { fstatat(directory.fd, name, &info, AT_SYMLINK_NOFOLLOW) }
            func item(_ kind: Kind) -> Item {
                Item(relativePath: relativePath, absolutePath: path, mode: UInt32(info.st_mode) & 0o7777,
                     mtime: Int64(info.st_mtim.tv_sec), uid: UInt32(info.st_uid), gid: UInt32(info.st_gid),
                     kind: kind)
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                try visit(item(.directory))
                try walk(try directory.child(name, create: false).0, relative: relativePath, visit: visit)
            case S_IFLNK:
                var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
                let length = try systemCall("readlink", path: path) {
                    readlinkat(directory.fd, name, &target, target.count)
                }
                let text = String(decoding: target[..<length], as: UTF8.self)
                try visit(item(.symlink(target: text)))
            case S_IFREG:
                // O_NONBLOCK: a regular file swapped for a FIFO since the fstatat must not hang the run
                // (a FIFO opened for reading blocks until a writer comes); the fstat below catches it.
                let fd = try systemCall("open", path: path) {
                    openat(directory.fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
                }
                defer { close(fd) }
                var opened = stat()
                try systemCall("fstat", path: path) { fstat(fd, &opened) }
                guard opened.st_mode & S_IFMT == S_IFREG, opened.st_ino == info.st_ino else {
                    throw SystemError(call: "scan (replaced while being read)", path: path, errno: EAGAIN)
                }
                try visit(item(.file(fd: fd, size: Int64(info.st_size))))
            default:
                // FIFOs, sockets and devices have no place in a plugin tree (no release holds one) and
                // cannot be backed up. Planted by the web server's user, one would otherwise block every
                // upgrade and rollback forever: the caller reports it and leaves it out.
                let kind = switch info.st_mode & S_IFMT {
                case S_IFIFO: "FIFO"
                case S_IFSOCK: "socket"
                case S_IFCHR: "character device"
                case S_IFBLK: "block device"
                default: "special file"
                }
                try visit(item(.special(kind: kind)))
            }
        }
    }
}

/// Bytes written to a descriptor through a fixed buffer (`TreeManifest.write`).
private struct BufferedWriter {
    private static let capacity = 64 * 1024
    let fd: Int32
    let path: String
    private var buffer: [UInt8] = []

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(Self.capacity)
    }

    mutating func append(_ text: String) throws(SystemError) {
        try append(Data(text.utf8))
    }

    mutating func append(_ bytes: Data) throws(SystemError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.capacity - 4096 { try flush() }
    }

    mutating func flush() throws(SystemError) {
        let failure: SystemError? = buffer.withUnsafeBytes { bytes in
            do throws(SystemError) { try FileSystem.writeAll(fd, bytes, path: path); return nil } catch { return error }
        }
        if let failure { throw failure }
        buffer.removeAll(keepingCapacity: true)
    }
}
