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
    /// The archive must hold exactly one top directory (the plugin directory); only regular files and
    /// directories are accepted. Files are created with `openat(O_CREAT|O_EXCL|O_NOFOLLOW)` relative to
    /// directory descriptors opened with `O_NOFOLLOW|O_DIRECTORY`, walking components from
    /// `destination`, so nothing can land outside it. Permission bits are kept minus setuid, setgid,
    /// sticky and group/other write; files get at least 0600, directories 0700. Files get the current
    /// time as mtime on purpose: PHP's opcache reloads by mtime, so restoring a reproducible build's
    /// fixed mtimes could keep the old code running. Every file is fsynced, then every directory
    /// bottom-up, then `destination`. On any refusal or error everything written under
    /// `destination` is removed before throwing.
    public static func extract(
        archive: String, into destination: String, limits: ExtractionLimits = .default
    ) throws(ArchiveRefusal) -> ExtractedTree {
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
        do {
            var extraction = Extraction(archive: archive, root: root, limits: limits)
            return try extraction.run()
        } catch {
            removeContents(of: destinationPath)
            throw error
        }
    }
}

/// One extraction's state; never outlives `SafeExtractor.extract`.
private struct Extraction {
    let archive: String
    let root: DirectoryHandle
    let limits: ExtractionLimits
    var checker: EntryChecker
    var fileCount = 0
    var bytesWritten: Int64 = 0
    /// Every directory created below `root`, as components, for the final fsync.
    var directories: [[String]] = []
    /// The parent directory of the previous entry: archives list siblings together, so this saves
    /// re-walking the path for almost every file.
    var cachedParent: (components: [String], handle: DirectoryHandle)?

    init(archive: String, root: DirectoryHandle, limits: ExtractionLimits) {
        self.archive = archive
        self.root = root
        self.limits = limits
        self.checker = EntryChecker(archive: archive, limits: limits)
    }

    mutating func run() throws(ArchiveRefusal) -> ExtractedTree {
        let reader: ArchiveReader
        do {
            reader = try ArchiveReader(path: archive)
        } catch {
            throw .unreadable(archive: archive, reason: error.message)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let next: ArchiveEntryInfo?
            do { next = try reader.nextEntry() } catch {
                throw .unreadable(archive: archive, reason: error.message)
            }
            guard let info = next else { break }
            let components = try checker.admit(info, isZip: reader.isZip)
            if info.kind == .directory {
                try makeDirectory(components, mode: info.mode)
            } else {
                try writeFile(components, mode: info.mode, reader: reader, buffer: buffer)
            }
        }
        guard let topName = checker.topName else { throw .empty(archive: archive) }
        cachedParent = nil
        do {
            // Deepest first, so a directory is synced after the entries it holds (fsync(2): syncing
            // a file does not persist its directory entry).
            for components in directories.sorted(by: { $0.count > $1.count }) {
                try root.descend(components[...], create: false).sync()
            }
            try root.sync()
        } catch {
            throw .io(error)
        }
        return ExtractedTree(
            root: root.path + "/" + topName, topName: topName, fileCount: fileCount,
            directoryCount: directories.count, bytesWritten: bytesWritten
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
                try systemCall("fchmod", path: handle.path) { fchmod(handle.fd, 0o755) }
                directories.append(Array(parentComponents[...index]))
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
            if created { directories.append(components) }
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
                    let ratio = limits.maxRatio.rounded() == limits.maxRatio
                        ? String(Int(limits.maxRatio)) : String(limits.maxRatio)
                    throw .limitExceeded(archive: archive, limit: "compression ratio over \(ratio):1")
                }
            }
            do { try writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[..<count]), path: path) } catch {
                throw .io(error)
            }
        }
        let sanitized = mode_t((mode & 0o755) | 0o600)
        do {
            try systemCall("fchmod", path: path) { fchmod(fd, sanitized) }
            try FileSystem.fsync(fd, path: path)
        } catch {
            throw .io(error)
        }
        do { try FaultInjection.hit("mid-extract") } catch {
            throw .io(SystemError(call: "extract", path: path, errno: EIO))
        }
    }
}
