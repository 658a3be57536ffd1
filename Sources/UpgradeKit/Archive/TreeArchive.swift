import Foundation
import MolamArchive
import MolamCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Why a backup archive could not be made or restored.
public enum TreeArchiveError: Error, CustomStringConvertible, Sendable {
    case system(SystemError)
    case archive(ArchiveError)
    /// A name in our own backup that is not a safe relative path under its top directory.
    case unsafeEntry(archive: String, entry: String, reason: String)
    /// The archive, or the tree restored from it, differs from the manifest recorded at backup time.
    case mismatch(archive: String, differences: [String])

    public var description: String {
        switch self {
        case .system(let error):
            if error.isOutOfSpace {
                return "no space left on the filesystem of \(error.path ?? "the backup") (\(error.call)): "
                    + "free space and retry"
            }
            return error.description
        case .archive(let error):
            if error.isOutOfSpace {
                return "no space left writing backup archive \(error.path): free space and retry"
            }
            return "backup archive \(error.description)"
        case .unsafeEntry(let archive, let entry, let reason):
            return "backup archive \(archive): entry '\(entry)' \(reason)"
        case .mismatch(let archive, let differences):
            let shown = differences.prefix(5).joined(separator: "; ")
            let more = differences.count > 5 ? " (and \(differences.count - 5) more)" : ""
            return "backup archive \(archive) does not match its manifest: \(shown)\(more)"
        }
    }
}

/// Backups of the plugin's file tree (the pipeline's `backup` step) and their restore (`rollback`
/// when the old tree is gone).
public enum TreeArchive {
    /// Backs up the tree at `directory` into a NEW tar.zst at `archivePath` (0600): regular files,
    /// directories and symlinks (stored as symlinks, never followed), with exact modes; entry names are
    /// relative paths under a top directory `topName`. Each file is read once, the same buffer feeding
    /// the archive and the SHA-256 in the manifest, which also records every entry's owner and group
    /// (the archive's headers carry none: the manifest is what a restore applies). The archive is
    /// fsynced. Returns the manifest (the caller writes it next to the archive and checks the archive
    /// against it with `verify`).
    public static func create(
        from directory: String, topName: String, archivePath: String
    ) throws -> TreeManifest {
        var created = false
        do {
            return try createArchive(from: absolutePath(directory), topName: topName,
                                     archivePath: archivePath, created: &created)
        } catch {
            // Never leave a half-written backup that a later restore could trust; but a file that was
            // already there (O_EXCL refused it) is not ours to remove.
            if created { unlink(archivePath) }
            throw error
        }
    }

    private static func createArchive(
        from directory: String, topName: String, archivePath: String, created: inout Bool
    ) throws(TreeArchiveError) -> TreeManifest {
        let root: TreeWalk.Item
        do { root = try TreeWalk.root(directory) } catch { throw .system(error) }
        // The writer is gone once `writeArchive` returns, and with it the compressor's window and
        // tables (about 1.4 MiB at level 1): the manifest is sorted without them alongside.
        let (entries, skipped) = try writeArchive(
            from: directory, root: root, topName: topName, archivePath: archivePath, created: &created)
        var manifest = TreeManifest(entries: entries, root: root.entry(kind: "directory", size: 0))
        manifest.skipped = skipped.isEmpty ? nil : skipped
        return manifest
    }

    /// Writes the archive `createArchive` describes and returns its entries, in walk order, and what
    /// was left out.
    private static func writeArchive(
        from directory: String, root: TreeWalk.Item, topName: String, archivePath: String, created: inout Bool
    ) throws(TreeArchiveError) -> (entries: [TreeManifest.Entry], skipped: [String]) {
        let writer: ArchiveWriter
        do {
            // Level 1: the fastest, smallest-window setting (ZSTD_c_windowLog 19); a backup is
            // written on every upgrade and read back at most once.
            writer = try ArchiveWriter(path: archivePath, format: .paxRestricted, filter: .zstd(level: 1))
            created = true
            try writer.addDirectory(path: topName + "/", mode: root.mode, mtime: root.mtime)
        } catch {
            throw .archive(error)
        }
        var entries: [TreeManifest.Entry] = []
        var skipped: [String] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: TreeManifest.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        // The walk's closure can only throw SystemError; archive failures wait here until it returns.
        var archiveFailure: ArchiveError?
        do {
            try TreeWalk.walk(directory) { (item) throws(SystemError) in
                let name = topName + "/" + item.relativePath
                do {
                    switch item.kind {
                    case .directory:
                        try writer.addDirectory(path: name + "/", mode: item.mode, mtime: item.mtime)
                        entries.append(item.entry(kind: "directory", size: 0))
                    case .symlink(let target):
                        try writer.addSymlink(path: name, target: target, mode: item.mode, mtime: item.mtime)
                        entries.append(item.entry(kind: "symlink", size: Int64(target.utf8.count),
                                                  target: target))
                    case .file(let fd, let size):
                        try writer.addFile(path: name, mode: item.mode, mtime: item.mtime, size: size)
                        let copy = HashingCopy(hasher: try TreeManifest.makeHasher(path: item.absolutePath))
                        // writeData refuses bytes past the size recorded in the header: a file that
                        // grows while we read it fails the backup instead of being cut silently.
                        try copy.copy(from: fd, path: item.absolutePath, through: buffer) {
                            try writer.writeData($0)
                        }
                        entries.append(item.entry(kind: "file", size: copy.byteCount,
                                                  sha256: copy.finalizeHex()))
                    case .special(let kind):
                        skipped.append("\(item.relativePath) (\(kind))")
                    }
                } catch let error as ArchiveError {
                    archiveFailure = error
                    throw SystemError(call: "archive", path: item.absolutePath, errno: error.errno)
                } catch let error as SystemError {
                    throw error
                } catch {
                    throw SystemError(call: "backup", path: item.absolutePath, errno: EIO)
                }
            }
            try writer.close()
        } catch let error as ArchiveError {
            throw .archive(error)
        } catch let error as SystemError {
            if let archiveFailure { throw .archive(archiveFailure) }
            throw .system(error)
        } catch {
            throw .system(SystemError(call: "backup", path: directory, errno: EIO))
        }
        return (entries, skipped)
    }

    /// Reads the backup archive at `archivePath` back completely, writing nothing to disk, and checks
    /// it against `manifest`: every entry's path, kind, mode, size, SHA-256 (files) and target
    /// (symlinks), the top directory's mode, and that each manifest entry is in the archive exactly
    /// once. Owners are in the manifest only, so they are not compared here. Run right after `create`
    /// and before a restore: a backup that does not read back as recorded is no backup. Throws
    /// `.mismatch` listing the differences, `.archive` when the archive cannot be read at all (a
    /// truncated or corrupted file), `.unsafeEntry` for names a restore would refuse.
    public static func verify(archivePath: String, expecting manifest: TreeManifest) throws(TreeArchiveError) {
        let reader: ArchiveReader
        do { reader = try ArchiveReader(path: archivePath, formats: [.tar]) } catch { throw .archive(error) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: TreeManifest.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var top: (name: String, entry: TreeManifest.Entry)?
        // Each entry is compared as it is read, against the manifest's entry found by binary search:
        // no second manifest, path index or set of names for 5,000 files is built while this runs
        // (on its own thread, alongside the tables backup, so its peak adds to theirs).
        let index = ManifestIndex(manifest)
        var matched = [Bool](repeating: false, count: manifest.entries.count)
        var unexpected = Set<String>()
        var differences: [String] = []
        func check(_ actual: TreeManifest.Entry) {
            let found = index.positions(of: actual.path)
            guard let first = found.first else {
                differences.append(unexpected.insert(actual.path).inserted
                    ? "'\(actual.path)' is unexpected" : "'\(actual.path)' is in the archive more than once")
                return
            }
            guard !matched[first] else {
                differences.append("'\(actual.path)' is in the archive more than once")
                return
            }
            for position in found {
                matched[position] = true
                differences += TreeManifest.differences(actual, manifest.entries[position], comparingOwners: false)
            }
        }
        while true {
            let next: ArchiveEntryInfo?
            do { next = try reader.nextEntry() } catch { throw .archive(error) }
            guard let info = next else { break }
            let components = try backupComponents(info, topName: top?.name, archivePath: archivePath)
            guard let topName = top?.name else {
                top = (components[0], .init(path: "", kind: "directory", mode: info.mode, size: 0))
                continue
            }
            precondition(components[0] == topName)
            let path = components.dropFirst().joined(separator: "/")
            switch info.kind {
            case .file:
                let hasher: SHA256
                do { hasher = try TreeManifest.makeHasher(path: archivePath) } catch { throw .system(error) }
                var total: Int64 = 0
                while true {
                    let count: Int
                    do { count = try reader.readData(into: buffer) } catch { throw .archive(error) }
                    if count == 0 { break }
                    hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                    total += Int64(count)
                }
                check(.init(path: path, kind: "file", mode: info.mode, size: total, sha256: hasher.finalizeHex()))
            case .directory:
                check(.init(path: path, kind: "directory", mode: info.mode, size: 0))
            case .symlink:
                let target = String(decoding: info.symlinkTarget ?? [], as: UTF8.self)
                check(.init(path: path, kind: "symlink", mode: info.mode, size: Int64(target.utf8.count),
                            target: target))
            default:
                // Whatever the manifest says this path is, it is not this.
                check(.init(path: path, kind: info.kind.rawValue, mode: info.mode, size: 0))
            }
        }
        guard let top else {
            throw .unsafeEntry(archive: archivePath, entry: "", reason: "is missing: the archive is empty")
        }
        var problems = manifest.root.map {
            TreeManifest.differences(top.entry, $0, comparingOwners: false)
        } ?? []
        problems += index.duplicates.map { "'\($0)' is in the manifest more than once" }
        for (position, entry) in manifest.entries.enumerated() where !matched[position] {
            problems.append("'\(entry.path)' is missing")
        }
        differences = problems + differences
        if !differences.isEmpty { throw .mismatch(archive: archivePath, differences: differences) }
    }

    /// Restores a backup made by `create` into `destination` (existing, empty): exact modes (on
    /// directories applied bottom-up after their contents), symlinks recreated as they were, current
    /// mtimes; when running as root, the owners `manifest` recorded, applied by descriptor (fchown, or
    /// fchownat with AT_SYMLINK_NOFOLLOW for symlinks) before each fsync and before the mode, since
    /// chown(2) clears setuid and setgid bits. Every file then directory bottom-up then `destination`
    /// is fsynced; then the restored tree is checked against `manifest` (paths, kinds, modes, sizes,
    /// sha256, and owners where they were applied) and any difference throws. Names are still held
    /// to the release rules (no '..', no absolute paths), and everything is created through
    /// O_NOFOLLOW directory descriptors, so a symlink in the backup cannot redirect a later entry.
    /// On failure, everything written under `destination` is removed.
    /// Returns the root path of the restored top directory.
    public static func restore(
        archivePath: String, into destination: String, expecting manifest: TreeManifest
    ) throws -> String {
        let destinationPath = absolutePath(destination)
        let root: DirectoryHandle
        do {
            root = try DirectoryHandle.open(destinationPath)
            if !(try root.entryNames().isEmpty) {
                throw SystemError(call: "restore", path: destinationPath, errno: ENOTEMPTY)
            }
        } catch let error as SystemError {
            throw TreeArchiveError.system(error)
        }
        // Only root can give a file to another user (chown(2)); anyone else restores as themselves.
        let owners = geteuid() == 0 ? Owners(manifest) : Owners()
        do {
            let topName = try restoreEntries(archivePath: archivePath, root: root, owners: owners)
            let restored = destinationPath + "/" + topName
            let differences: [String]
            do {
                differences = try TreeManifest.scan(directory: restored)
                    .differences(from: manifest, comparingOwners: !owners.isEmpty)
            } catch {
                throw TreeArchiveError.system(error)
            }
            if !differences.isEmpty {
                throw TreeArchiveError.mismatch(archive: archivePath, differences: differences)
            }
            return restored
        } catch {
            removeContents(of: destinationPath)
            throw error
        }
    }

    /// The owner and group to give each restored entry, by path below the top directory ("" is the top
    /// directory itself). Empty when the manifest recorded none or we cannot apply them.
    struct Owners {
        private var byPath: [String: (uid: uid_t, gid: gid_t)] = [:]

        init() {}

        init(_ manifest: TreeManifest) {
            for entry in manifest.entries + (manifest.root.map { [$0] } ?? []) {
                if let uid = entry.uid, let gid = entry.gid { byPath[entry.path] = (uid, gid) }
            }
        }

        var isEmpty: Bool { byPath.isEmpty }

        subscript(components: [String]) -> (uid: uid_t, gid: gid_t)? {
            byPath[components.dropFirst().joined(separator: "/")]
        }
    }

    /// The components of a backup entry's name, checked as restores check them: a safe relative path,
    /// the first entry the top directory, every later one inside it.
    private static func backupComponents(
        _ info: ArchiveEntryInfo, topName: String?, archivePath: String
    ) throws(TreeArchiveError) -> [String] {
        // Our own archive: generous limits on names, none on size.
        let limits = ExtractionLimits(maxPathBytes: Int(PATH_MAX), maxDepth: 1024)
        let name = info.displayPath
        let components: [String]
        switch entryComponents(info.pathBytes, isDirectory: info.kind == .directory, limits: limits) {
        case .success(let value): components = value
        case .failure(let problem):
            throw .unsafeEntry(archive: archivePath, entry: name, reason: problem.reason)
        }
        if topName == nil {
            guard components.count == 1, info.kind == .directory else {
                throw .unsafeEntry(archive: archivePath, entry: name, reason: "comes before the top directory")
            }
        } else if components[0] != topName || components.count == 1 {
            throw .unsafeEntry(archive: archivePath, entry: name, reason: "is outside the top directory")
        }
        return components
    }

    private static func restoreEntries(
        archivePath: String, root: DirectoryHandle, owners: Owners
    ) throws(TreeArchiveError) -> String {
        let reader: ArchiveReader
        do { reader = try ArchiveReader(path: archivePath, formats: [.tar]) } catch { throw .archive(error) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: TreeManifest.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var topName: String?
        /// Directories and their recorded modes, applied deepest first once everything is written.
        var directoryModes: [([String], UInt32)] = []
        while true {
            let next: ArchiveEntryInfo?
            do { next = try reader.nextEntry() } catch { throw .archive(error) }
            guard let info = next else { break }
            let components = try backupComponents(info, topName: topName, archivePath: archivePath)
            if topName == nil { topName = components[0] }
            do {
                let parent = try root.descend(components.dropLast(), create: false)
                let last = components[components.count - 1]
                let path = parent.path + "/" + last
                switch info.kind {
                case .directory:
                    try systemCall("mkdir", path: path) { mkdirat(parent.fd, last, 0o700) }
                    directoryModes.append((components, info.mode))
                case .symlink:
                    let target = String(decoding: info.symlinkTarget ?? [], as: UTF8.self)
                    try systemCall("symlink", path: path) { symlinkat(target, parent.fd, last) }
                    if let owner = owners[components] {
                        // The link itself, never what it points to.
                        try systemCall("lchown", path: path) {
                            fchownat(parent.fd, last, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW)
                        }
                    }
                case .file:
                    try restoreFile(parent: parent, name: last, mode: info.mode, owner: owners[components],
                                    reader: reader, buffer: buffer)
                default:
                    let reason = "is a \(info.kind.rawValue), which backups never hold"
                    throw TreeArchiveError.unsafeEntry(archive: archivePath, entry: info.displayPath,
                                                       reason: reason)
                }
            } catch let error as SystemError {
                throw .system(error)
            } catch let error as ArchiveError {
                throw .archive(error)
            } catch let error as TreeArchiveError {
                throw error
            } catch {
                throw .system(SystemError(call: "restore", path: archivePath, errno: EIO))
            }
        }
        guard let topName else {
            throw .unsafeEntry(archive: archivePath, entry: "", reason: "is missing: the archive is empty")
        }
        do {
            // Deepest first: a directory's owner and mode (perhaps read-only) are applied after its
            // contents exist, and it is synced after the entries it holds.
            for (components, mode) in directoryModes.sorted(by: { $0.0.count > $1.0.count }) {
                let handle = try root.descend(components[...], create: false)
                if let owner = owners[components] {
                    try systemCall("fchown", path: handle.path) { fchown(handle.fd, owner.uid, owner.gid) }
                }
                try systemCall("fchmod", path: handle.path) { fchmod(handle.fd, mode_t(mode)) }
                try handle.sync()
            }
            try root.sync()
        } catch {
            throw .system(error)
        }
        return topName
    }

    private static func restoreFile(
        parent: DirectoryHandle, name: String, mode: UInt32, owner: (uid: uid_t, gid: gid_t)?,
        reader: ArchiveReader, buffer: UnsafeMutableRawBufferPointer
    ) throws {
        let path = parent.path + "/" + name
        let fd = try systemCall("open", path: path) {
            openat(parent.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        defer { close(fd) }
        while true {
            let count = try reader.readData(into: buffer)
            if count == 0 { break }
            try FileSystem.writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[..<count]), path: path)
        }
        // Owner before mode: chown(2) clears the setuid and setgid bits the mode may set.
        if let owner {
            try systemCall("fchown", path: path) { fchown(fd, owner.uid, owner.gid) }
        }
        // fchmod, not the open mode: the umask must not change what we restore.
        try systemCall("fchmod", path: path) { fchmod(fd, mode_t(mode)) }
        try FileSystem.fsync(fd, path: path)
    }
}

/// The positions of a manifest's entries in bytewise path order, for binary search: `verify` finds
/// each archive entry's record without a dictionary of every path. The manifest's own order is not
/// trusted (an edited manifest may be out of order), hence the permutation; 4 bytes an entry.
private struct ManifestIndex {
    private let manifest: TreeManifest
    private let order: [Int32]
    /// Paths the manifest lists more than once, each named once.
    let duplicates: [String]

    init(_ manifest: TreeManifest) {
        self.manifest = manifest
        let entries = manifest.entries
        order = (0..<Int32(entries.count)).sorted {
            entries[Int($0)].path.utf8.lexicographicallyPrecedes(entries[Int($1)].path.utf8)
        }
        var duplicates: [String] = []
        for (previous, next) in zip(order, order.dropFirst())
        where entries[Int(previous)].path.utf8.elementsEqual(entries[Int(next)].path.utf8)
            && duplicates.last != entries[Int(next)].path {
            duplicates.append(entries[Int(next)].path)
        }
        self.duplicates = duplicates
    }

    /// Every position holding `path` (more than one only in a manifest with duplicates); empty when none.
    func positions(of path: String) -> [Int] {
        let entries = manifest.entries
        var low = 0
        var high = order.count
        while low < high {
            let middle = (low + high) / 2
            if entries[Int(order[middle])].path.utf8.lexicographicallyPrecedes(path.utf8) {
                low = middle + 1
            } else {
                high = middle
            }
        }
        var found: [Int] = []
        while low < order.count, entries[Int(order[low])].path.utf8.elementsEqual(path.utf8) {
            found.append(Int(order[low]))
            low += 1
        }
        return found
    }
}
