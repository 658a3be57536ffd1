import Foundation
import MolamArchive
#if canImport(Glibc)
import Glibc
#endif

/// Safe extraction of release archives into a staging directory (the pipeline's `stage` step).
public enum SafeExtractor {
    /// Extracts a release archive (.zip, .tar, .tar.gz, .tar.zst — detected by content) into
    /// `destination`, an EXISTING EMPTY directory the caller created on the plugin's filesystem.
    ///
    /// Two passes. The first reads every header, skipping the data, and admits every entry before a
    /// single byte is written: only regular files and directories, safe names, exactly one top
    /// directory (the plugin directory), no duplicates, at most `maxEntries` entries, declared sizes
    /// within `maxTotalBytes` and `maxRatio`, and for zips a central directory that agrees with the
    /// local headers and has no overlapping entries. So anything decidable from the headers is refused
    /// with nothing written. The second pass extracts, and refuses unless it meets exactly the entries
    /// (names and kinds, in order) the first admitted; the byte and ratio limits are enforced again on
    /// what is actually written, since declared sizes are the attacker's word.
    ///
    /// Files are created with `openat(O_CREAT|O_EXCL|O_NOFOLLOW)` relative to directory descriptors
    /// opened with `O_NOFOLLOW|O_DIRECTORY`, walking components from `destination`, so nothing can land
    /// outside it. Permission bits are kept minus setuid, setgid, sticky and group/other write; files
    /// get at least 0600, directories 0700. With `owner`, every file and directory created (the top
    /// directory and implied directories included) is given to it by descriptor before it is synced.
    /// Files get the current time as mtime on purpose: PHP's opcache reloads by mtime, so restoring a
    /// reproducible build's fixed mtimes could keep the old code running. Nothing is synced while
    /// extracting (an fsync per file costs a journal commit each: most of the step's time on 5,000
    /// files); once every entry is written, one syncfs(2) through `destination`'s descriptor, opened
    /// before the first write, makes files and directory entries durable together, and reports any
    /// writeback error since (Linux >= 5.8). Nothing is swapped in before it returns. On any refusal
    /// or error everything written under `destination` is removed before throwing.
    ///
    /// Refusals name the archive as `displayName` (default: its path): the pipeline extracts its own
    /// verified copy, but the user should read the name they gave.
    public static func extract(
        archive: String, into destination: String, limits: ExtractionLimits = .default,
        owner: FileOwner? = nil, displayName: String? = nil
    ) throws(ArchiveRefusal) -> ExtractedTree {
        try extract(archive: archive, into: destination, limits: limits, owner: owner, displayName: displayName,
                    betweenPasses: {})
    }

    /// `extract` with a hook run between the header pass and the extraction pass, for tests that
    /// change the archive under it.
    static func extract(
        archive: String, into destination: String, limits: ExtractionLimits, owner: FileOwner?,
        displayName: String? = nil, betweenPasses: () -> Void
    ) throws(ArchiveRefusal) -> ExtractedTree {
        let source = ReleaseFile(path: archive, name: displayName ?? archive)
        let destinationPath = absolutePath(destination)
        let root: DirectoryHandle
        do throws(SystemError) {
            root = try DirectoryHandle.open(destinationPath)
            if !(try root.entryNames().isEmpty) {
                throw SystemError(call: "extract", path: destinationPath, errno: ENOTEMPTY)
            }
        } catch {
            throw .io(error)
        }
        // The header pass writes nothing, so a refusal there needs no cleanup.
        let admitted = try HeaderPass.run(source, limits: limits)
        betweenPasses()
        do {
            var extraction = Extraction(source: source, root: root, limits: limits, owner: owner)
            return try extraction.run(expecting: admitted)
        } catch {
            removeContents(of: destinationPath)
            throw error
        }
    }
}

/// The archive to read, and how refusals name it.
private struct ReleaseFile {
    let path: String
    let name: String
}

/// What the header pass admitted: every entry's name bytes and kind, in archive order, stored flat
/// (one byte buffer and the end offset of each name) so 100,000 entries cost little more than their
/// names.
private struct AdmittedEntries {
    private var nameBytes: [UInt8] = []
    private var nameEnds: [Int] = []
    private var kinds: [ArchiveEntryKind] = []
    var topName = ""

    var count: Int { nameEnds.count }

    mutating func append(_ info: ArchiveEntryInfo) {
        nameBytes.append(contentsOf: info.pathBytes)
        nameEnds.append(nameBytes.count)
        kinds.append(info.kind)
    }

    func matches(_ index: Int, _ info: ArchiveEntryInfo) -> Bool {
        guard index < count, kinds[index] == info.kind else { return false }
        return nameBytes[range(index)].elementsEqual(info.pathBytes)
    }

    func displayName(_ index: Int) -> String { ArchiveEntryInfo.display(Array(nameBytes[range(index)])) }

    private func range(_ index: Int) -> Range<Int> { (index == 0 ? 0 : nameEnds[index - 1])..<nameEnds[index] }
}

/// The first pass: headers only, nothing written.
private enum HeaderPass {
    static func run(_ source: ReleaseFile, limits: ExtractionLimits) throws(ArchiveRefusal) -> AdmittedEntries {
        let archive = source.name
        let reader = try openReader(source)
        var checker = EntryChecker(archive: archive, path: source.path, limits: limits)
        var admitted = AdmittedEntries()
        var declaredBytes: Int64 = 0
        while let info = try nextEntry(reader, archive: archive) {
            _ = try checker.admit(info, isZip: reader.isZip)
            admitted.append(info)
            if info.kind == .file, let size = info.size {
                let (sum, overflow) = declaredBytes.addingReportingOverflow(max(size, 0))
                declaredBytes = overflow ? .max : sum
                if declaredBytes > limits.maxTotalBytes {
                    let limit = "its headers declare over \(formatBytes(limits.maxTotalBytes))"
                    throw .limitExceeded(archive: archive, limit: limit)
                }
            }
            // Skipping still reads a compressed stream through, so truncation shows up here too.
            do { try reader.skipData() } catch {
                throw .unreadable(archive: archive, reason: "entry '\(info.displayPath)': \(error.message)")
            }
        }
        guard let topName = checker.topName else { throw .empty(archive: archive) }
        admitted.topName = topName
        // If the declared sizes are honest, writing them would break the ratio limit anyway (the
        // compressed bytes read can never exceed the file), so refuse now rather than after a gigabyte.
        if declaredBytes > ExtractionLimits.ratioGrace {
            var info = stat()
            guard stat(source.path, &info) == 0 else {
                throw .unreadable(archive: archive, reason: String(cString: strerror(errno)))
            }
            if Double(declaredBytes) / Double(max(info.st_size, 1)) > limits.maxRatio {
                throw .limitExceeded(archive: archive, limit: ratioLimit(limits))
            }
        }
        return admitted
    }
}

private func openReader(_ source: ReleaseFile) throws(ArchiveRefusal) -> ArchiveReader {
    do { return try ArchiveReader(path: source.path) } catch {
        throw .unreadable(archive: source.name, reason: error.message)
    }
}

private func nextEntry(_ reader: ArchiveReader, archive: String) throws(ArchiveRefusal) -> ArchiveEntryInfo? {
    do { return try reader.nextEntry() } catch {
        throw .unreadable(archive: archive, reason: error.message)
    }
}

private func ratioLimit(_ limits: ExtractionLimits) -> String {
    let ratio = limits.maxRatio.rounded() == limits.maxRatio
        ? String(Int(limits.maxRatio)) : String(limits.maxRatio)
    return "compression ratio over \(ratio):1"
}

/// The second pass's state; never outlives `SafeExtractor.extract`.
private struct Extraction {
    let source: ReleaseFile
    /// The name refusals give the archive.
    var archive: String { source.name }
    let root: DirectoryHandle
    let limits: ExtractionLimits
    let owner: FileOwner?
    var fileCount = 0
    var bytesWritten: Int64 = 0
    /// Directories created below `root`.
    var directoryCount = 0
    /// The parent directory of the previous entry: archives list siblings together, so this saves
    /// re-walking the path for almost every file.
    var cachedParent: (components: [String], handle: DirectoryHandle)?

    init(source: ReleaseFile, root: DirectoryHandle, limits: ExtractionLimits, owner: FileOwner?) {
        self.source = source
        self.root = root
        self.limits = limits
        self.owner = owner
    }

    mutating func run(expecting admitted: AdmittedEntries) throws(ArchiveRefusal) -> ExtractedTree {
        let reader = try openReader(source)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        var index = 0
        while let info = try nextEntry(reader, archive: archive) {
            // The same file read twice should read the same; if not, it changed under us, and what
            // the first pass admitted says nothing about what we would write.
            guard admitted.matches(index, info) else {
                throw .inconsistent(archive: archive, entry: info.displayPath,
                                    reason: "was not in the headers read before extracting (the archive changed)")
            }
            index += 1
            let components: [String]
            switch entryComponents(info.pathBytes, isDirectory: info.kind == .directory, limits: limits) {
            case .success(let value): components = value
            case .failure(let problem):
                throw .unsafePath(archive: archive, entry: info.displayPath, reason: problem.reason)
            }
            if info.kind == .directory {
                try makeDirectory(components, mode: info.mode)
            } else {
                try writeFile(components, mode: info.mode, reader: reader, buffer: buffer)
            }
        }
        guard index == admitted.count else {
            throw .inconsistent(archive: archive, entry: admitted.displayName(index),
                                reason: "vanished after the headers were read (the archive changed)")
        }
        cachedParent = nil
        // One syncfs for the whole tree rather than an fsync per file and per directory (fsync(2):
        // syncing a file does not persist its directory entry, so that was two per file). `root`
        // was opened before the first byte was written, so a writeback error in between is reported
        // here and the release is never swapped in.
        do { try FileSystem.syncFilesystem(root.fd, path: root.path) } catch { throw .io(error) }
        return ExtractedTree(
            root: root.path + "/" + admitted.topName, topName: admitted.topName, fileCount: fileCount,
            directoryCount: directoryCount, bytesWritten: bytesWritten
        )
    }

    /// Opens (creating as needed) the directory holding `components.last`.
    private mutating func parent(of components: [String]) throws(SystemError) -> DirectoryHandle {
        let parentComponents = Array(components.dropLast())
        if let cachedParent, cachedParent.components == parentComponents { return cachedParent.handle }
        var current = root
        for index in parentComponents.indices {
            let (handle, created) = try current.child(parentComponents[index], create: true)
            if created {
                // Implied directories (no entry of their own) get the usual 0755.
                try owner?.apply(to: handle.fd, path: handle.path)
                try systemCall("fchmod", path: handle.path) { fchmod(handle.fd, 0o755) }
                directoryCount += 1
            }
            current = handle
        }
        cachedParent = (parentComponents, current)
        return current
    }

    private mutating func makeDirectory(_ components: [String], mode: UInt32) throws(ArchiveRefusal) {
        do {
            let parent = try parent(of: components)
            let (handle, created) = try parent.child(components[components.count - 1], create: true)
            if created {
                try owner?.apply(to: handle.fd, path: handle.path)
                directoryCount += 1
            }
            let sanitized = mode_t((mode & 0o755) | 0o700)
            try systemCall("fchmod", path: handle.path) { fchmod(handle.fd, sanitized) }
        } catch {
            throw .io(error)
        }
    }

    private mutating func writeFile(
        _ components: [String], mode: UInt32, reader: ArchiveReader, buffer: UnsafeMutableRawBufferPointer
    ) throws(ArchiveRefusal) {
        let parent: DirectoryHandle
        do { parent = try self.parent(of: components) } catch { throw .io(error) }
        let name = components[components.count - 1]
        let path = parent.path + "/" + name
        let fd: Int32
        do {
            fd = try systemCall("open", path: path) {
                openat(parent.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            }
        } catch {
            throw .io(error)
        }
        defer { close(fd) }
        fileCount += 1
        while true {
            let count: Int
            do { count = try reader.readData(into: buffer) } catch {
                throw .unreadable(archive: archive, reason: "entry '\(components.joined(separator: "/"))': "
                                  + error.message)
            }
            if count == 0 { break }
            bytesWritten += Int64(count)
            if bytesWritten > limits.maxTotalBytes {
                let limit = "over \(formatBytes(limits.maxTotalBytes)) written"
                throw .limitExceeded(archive: archive, limit: limit)
            }
            if bytesWritten > ExtractionLimits.ratioGrace {
                let compressed = max(reader.compressedBytesRead, 1)
                if Double(bytesWritten) / Double(compressed) > limits.maxRatio {
                    throw .limitExceeded(archive: archive, limit: ratioLimit(limits))
                }
            }
            do { try FileSystem.writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[..<count]), path: path) } catch {
                throw .io(error)
            }
        }
        let sanitized = mode_t((mode & 0o755) | 0o600)
        do {
            // Owner first: chown(2) may clear mode bits, and the mode must be the last word.
            try owner?.apply(to: fd, path: path)
            try systemCall("fchmod", path: path) { fchmod(fd, sanitized) }
        } catch {
            throw .io(error)
        }
        do { try FaultInjection.hit("mid-extract") } catch {
            throw .io(SystemError(call: "extract", path: path, errno: EIO))
        }
    }
}
