internal import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// Writes a new archive file, streaming. Used for backups (pax tar + zstd) and by tests to build
/// hostile archives, so it writes whatever names it is given: sanitising is the reader's side.
///
/// Owns one `struct archive *` and the file descriptor; not thread-safe. Call `close()` to finish:
/// only then is the archive complete and fsynced. `deinit` frees without finishing.
public final class ArchiveWriter {
    public enum Format: Sendable {
        /// pax only where ustar cannot hold the entry (long names, big files), as bsdtar does.
        case paxRestricted
        case zip
    }

    public enum Filter: Sendable {
        case zstd(level: Int)
        case gzip
        case none
    }

    private let handle: OpaquePointer
    private let fd: Int32
    public let path: String
    private var entry: OpaquePointer?
    private var pendingName = ""
    private var declaredSize: Int64 = 0
    private var writtenSize: Int64 = 0
    private var closed = false

    /// Creates `path` (must not exist) with mode 0600.
    public init(path: String, format: Format, filter: Filter) throws(ArchiveError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ArchiveError.system("open", path: path, errno: errno) }
        guard let handle = archive_write_new() else {
            Glibc.close(fd)
            throw ArchiveError(code: ARCHIVE_FATAL, message: "out of memory", path: path,
                               call: "archive_write_new")
        }
        do throws(ArchiveError) {
            switch format {
            case .paxRestricted:
                try check(archive_write_set_format_pax_restricted(handle), handle,
                          call: "set_format_pax_restricted", path: path)
            case .zip:
                try check(archive_write_set_format_zip(handle), handle, call: "set_format_zip", path: path)
            }
            switch filter {
            case .zstd(let level):
                try check(archive_write_add_filter_zstd(handle), handle, call: "add_filter_zstd", path: path,
                          allowWarn: true)
                let level = String(level)
                let status = archive_write_set_filter_option(handle, "zstd", "compression-level", level)
                try check(status, handle, call: "set_filter_option compression-level", path: path)
                // "threads" exists only when libarchive and libzstd were built with multithreading
                // (archive_write_set_options(3)); without it we compress on one thread, which is fine.
                // At most two workers: each buffers a few MiB, and the agent must stay under 40 MB.
                let threads = max(1, min(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
                _ = archive_write_set_filter_option(handle, "zstd", "threads", String(threads))
            case .gzip:
                try check(archive_write_add_filter_gzip(handle), handle, call: "add_filter_gzip", path: path,
                          allowWarn: true)
            case .none:
                try check(archive_write_add_filter_none(handle), handle, call: "add_filter_none", path: path)
            }
            // Without this libarchive pads the last block to 10240 bytes of compressed output; harmless
            // but pointless for a file.
            try check(archive_write_set_bytes_in_last_block(handle, 1), handle,
                      call: "set_bytes_in_last_block", path: path)
            try check(archive_write_open_fd(handle, fd), handle, call: "archive_write_open_fd", path: path)
        } catch {
            // Not fully initialised, so deinit will not run: undo by hand, including the file we created,
            // which holds no archive.
            archive_write_free(handle)
            Glibc.close(fd)
            unlink(path)
            throw error
        }
        self.fd = fd
        self.handle = handle
        self.path = path
    }

    deinit {
        if let entry { archive_entry_free(entry) }
        archive_write_free(handle)
        if !closed { Glibc.close(fd) }
    }

    public func addDirectory(path name: String, mode: UInt32, mtime: Int64 = 0) throws(ArchiveError) {
        try header(name, type: 0o040000, mode: mode, mtime: mtime, size: 0)
    }

    /// Starts a regular file of exactly `size` bytes; send them with `writeData`.
    public func addFile(path name: String, mode: UInt32, mtime: Int64 = 0, size: Int64)
        throws(ArchiveError)
    {
        try header(name, type: 0o100000, mode: mode, mtime: mtime, size: size)
    }

    public func addSymlink(path name: String, target: String, mode: UInt32 = 0o777, mtime: Int64 = 0)
        throws(ArchiveError)
    {
        try header(name, type: 0o120000, mode: mode, mtime: mtime, size: 0) {
            archive_entry_set_symlink($0, target)
        }
    }

    /// A hard link to an earlier entry (tests only: we never back up hard links as such).
    public func addHardlink(path name: String, target: String) throws(ArchiveError) {
        try header(name, type: 0o100000, mode: 0o644, mtime: 0, size: 0) {
            archive_entry_set_hardlink($0, target)
        }
    }

    /// A named pipe entry (tests only).
    public func addFIFO(path name: String, mode: UInt32 = 0o644) throws(ArchiveError) {
        try header(name, type: 0o010000, mode: mode, mtime: 0, size: 0)
    }

    /// Appends data to the current file entry.
    public func writeData(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard writtenSize + Int64(bytes.count) <= declaredSize else {
            let message = "entry \(pendingName) is longer than its declared \(declaredSize) bytes"
            throw ArchiveError(code: ARCHIVE_FATAL, message: message, path: path, call: "archive_write_data")
        }
        var offset = 0
        while offset < bytes.count {
            let count = archive_write_data(handle, base + offset, bytes.count - offset)
            if count < 0 {
                throw ArchiveError.from(handle, code: Int32(count), call: "archive_write_data", path: path)
            }
            offset += count
        }
        writtenSize += Int64(bytes.count)
    }

    public func writeData(_ bytes: [UInt8]) throws(ArchiveError) {
        // withUnsafeBytes rethrows untyped; carry the typed error out by hand.
        let failure: ArchiveError? = bytes.withUnsafeBytes { buffer in
            do throws(ArchiveError) { try writeData(buffer); return nil } catch { return error }
        }
        if let failure { throw failure }
    }

    /// Finishes the archive (`archive_write_close` writes the end-of-archive blocks and flushes the
    /// compressor), fsyncs and closes the file.
    public func close() throws(ArchiveError) {
        precondition(!closed, "ArchiveWriter.close called twice")
        try finishEntry()
        try check(archive_write_close(handle), handle, call: "archive_write_close", path: path)
        closed = true
        let synced = fsync(fd) == 0 ? 0 : errno
        let closedOK = Glibc.close(fd) == 0 ? 0 : errno
        if synced != 0 { throw ArchiveError.system("fsync", path: path, errno: synced) }
        if closedOK != 0 { throw ArchiveError.system("close", path: path, errno: closedOK) }
    }

    private func finishEntry() throws(ArchiveError) {
        // libarchive silently pads a short entry with zeros; a short entry here means the file
        // changed under us, which a backup must not hide.
        guard writtenSize == declaredSize else {
            throw ArchiveError(code: ARCHIVE_FATAL, message: "entry \(pendingName): wrote \(writtenSize) of "
                               + "\(declaredSize) declared bytes", path: path, call: "archive_write_data")
        }
    }

    private func header(
        _ name: String, type: UInt32, mode: UInt32, mtime: Int64, size: Int64,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws(ArchiveError) {
        // `type` is a libarchive AE_IF* value (archive_entry.h); the macros are casts Swift cannot import.
        try finishEntry()
        if entry == nil { entry = archive_entry_new() }
        guard let entry else {
            throw ArchiveError(code: ARCHIVE_FATAL, message: "out of memory", path: path,
                               call: "archive_entry_new")
        }
        archive_entry_clear(entry)
        archive_entry_copy_pathname(entry, name)
        archive_entry_set_filetype(entry, type)
        archive_entry_set_perm(entry, mode_t(mode & 0o7777))
        archive_entry_set_mtime(entry, time_t(mtime), 0)
        archive_entry_set_size(entry, size)
        configure(entry)
        try check(archive_write_header(handle, entry), handle, call: "archive_write_header", path: path)
        pendingName = name
        declaredSize = type == 0o100000 && archive_entry_hardlink(entry) == nil ? size : 0
        writtenSize = 0
    }
}
