internal import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// Writes a new archive, streaming, into an `ArchiveByteSink` (a file, or whatever layer sits
/// between the archive and its file). Used for backups (pax tar + zstd) and by tests to build
/// hostile archives, so it writes whatever names it is given: sanitising is the reader's side.
///
/// Owns one `struct archive *` and the sink; not thread-safe. Call `close()` to finish: only then is
/// the archive complete and (for a file) fsynced. `deinit` frees without finishing.
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
    /// Held for the handle's lifetime: libarchive's callbacks reach it unretained.
    private let stream: WriteStream
    public let path: String
    private var entry: OpaquePointer?
    private var pendingName = ""
    private var declaredSize: Int64 = 0
    private var writtenSize: Int64 = 0
    private var closed = false

    /// Creates `path` (must not exist) with mode 0600. If the writer cannot be set up, the file is
    /// removed again: it holds no archive.
    public convenience init(path: String, format: Format, filter: Filter) throws(ArchiveError) {
        let sink = try FileDescriptorSink(creating: path)
        try self.init(sink: sink, path: path, format: format, filter: filter) { unlink(path) }
    }

    /// Writes into `sink`; the writer closes it. `path` names the archive in messages.
    public convenience init(sink: ArchiveByteSink, path: String, format: Format, filter: Filter)
        throws(ArchiveError)
    {
        try self.init(sink: sink, path: path, format: format, filter: filter) {}
    }

    private init(
        sink: ArchiveByteSink, path: String, format: Format, filter: Filter, undo: () -> Void
    ) throws(ArchiveError) {
        let stream = WriteStream(sink)
        guard let handle = archive_write_new() else {
            stream.close()
            undo()
            throw ArchiveError(code: ARCHIVE_FATAL, message: "out of memory", path: path,
                               call: "archive_write_new")
        }
        do throws(ArchiveError) {
            try Self.configure(handle, format: format, filter: filter, path: path)
            try check(stream.open(handle), handle, call: "archive_write_open2", path: path)
        } catch {
            // Not fully initialised, so deinit will not run: undo by hand.
            archive_write_free(handle)
            stream.close()
            undo()
            throw error
        }
        self.handle = handle
        self.stream = stream
        self.path = path
    }

    private static func configure(
        _ handle: OpaquePointer, format: Format, filter: Filter, path: String
    ) throws(ArchiveError) {
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
            // No "threads" option on purpose: libzstd's multithreaded mode (ZSTD_c_nbWorkers >= 1)
            // queues jobs of four windows each (8 MiB at level 3) per worker plus input and output
            // buffers, tens of MiB, while single-threaded compression at a low level needs the
            // window and its tables only (about 1.5 MiB at level 1) and still outruns the disk.
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
    }

    deinit {
        if let entry { archive_entry_free(entry) }
        // Before `stream` is released: freeing an unfinished archive still flushes through it.
        archive_write_free(handle)
        stream.close()
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

    /// Finishes the archive (`archive_write_close` writes the end-of-archive blocks, flushes the
    /// compressor and closes the sink, which for a file fsyncs and closes it).
    public func close() throws(ArchiveError) {
        precondition(!closed, "ArchiveWriter.close called twice")
        try finishEntry()
        let status = archive_write_close(handle)
        closed = true
        stream.close()
        // A refused write is libarchive's error already; otherwise the sink's own close error (fsync)
        // is the one to report, as it is.
        if !stream.writeFailed, let failure = stream.closeFailure { throw failure }
        try check(status, handle, call: "archive_write_close", path: path)
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
