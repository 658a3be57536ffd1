internal import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// Container formats the reader accepts.
public enum ArchiveFormat: Sendable, Hashable {
    case zip
    /// ustar, pax and GNU tar (libarchive's `archive_read_support_format_tar`).
    case tar
}

/// Compression filters the reader accepts; `.none` is plain (uncompressed) data.
public enum ArchiveFilter: Sendable, Hashable {
    case gzip
    case zstd
    case none
}

/// What an entry is. Hard links are reported as `.hardlink` whatever their file type says.
public enum ArchiveEntryKind: String, Sendable {
    case file, directory, symlink, hardlink, characterDevice, blockDevice, fifo, socket, unknown
}

/// One entry header, copied out of libarchive so it stays valid after the next `nextEntry()`.
public struct ArchiveEntryInfo: Sendable {
    /// The raw name bytes as stored (see `ArchiveReader.nextEntry` for how they are obtained).
    public let pathBytes: [UInt8]
    public let kind: ArchiveEntryKind
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    public let mode: UInt32
    /// The declared size, or nil when the format does not know it up front.
    public let size: Int64?
    public let mtime: Int64?
    public let symlinkTarget: [UInt8]?
    public let hardlinkTarget: [UInt8]?

    /// The name for messages: lossless for UTF-8, `\xNN` for anything else or unprintable.
    public var displayPath: String { ArchiveEntryInfo.display(pathBytes) }

    public static func display(_ bytes: [UInt8]) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return bytes.map { $0 < 0x20 || $0 >= 0x7f ? hexEscape($0) : String(UnicodeScalar($0)) }.joined()
        }
        return text.unicodeScalars.map { scalar in
            scalar.value < 0x20 || scalar.value == 0x7f ? hexEscape(UInt8(scalar.value)) : String(scalar)
        }.joined()
    }

    private static func hexEscape(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0x0f)])
    }
}

/// Reads entries and their data from an archive, streaming from an `ArchiveByteSource` (a file, or
/// whatever layer sits between the archive and its file).
///
/// Owns one `struct archive *` (freed in `deinit`) and the source; not thread-safe, use from one
/// thread at a time. Memory stays flat: libarchive reads through one 64 KiB block.
/// Zip is read with libarchive's *seekable* zip reader, which works from the central directory,
/// rather than the streaming reader that only sees local headers (archive_read_format(3),
/// libarchive-formats(5)); tools that unpack zips read the central directory too, so what we check
/// is what they would see. It needs a source that can seek.
public final class ArchiveReader {
    private let handle: OpaquePointer
    /// Held for the handle's lifetime: libarchive's callbacks reach it unretained.
    private let stream: ReadStream
    /// The name in messages: the archive's path.
    public let path: String

    /// Opens the archive file at `path`.
    public convenience init(
        path: String,
        formats: Set<ArchiveFormat> = [.zip, .tar],
        filters: Set<ArchiveFilter> = [.gzip, .zstd, .none]
    ) throws(ArchiveError) {
        try self.init(
            source: FileDescriptorSource(path: path), path: path, formats: formats, filters: filters)
    }

    /// Reads the archive `source` delivers; the reader closes it. `path` names it in messages.
    public init(
        source: ArchiveByteSource,
        path: String,
        formats: Set<ArchiveFormat> = [.zip, .tar],
        filters: Set<ArchiveFilter> = [.gzip, .zstd, .none]
    ) throws(ArchiveError) {
        guard let handle = archive_read_new() else {
            source.close()
            throw ArchiveError(code: ARCHIVE_FATAL, message: "out of memory", path: path,
                               call: "archive_read_new")
        }
        self.handle = handle
        self.stream = ReadStream(source)
        self.path = path
        // From here on deinit frees the handle and closes the source on every throw.
        if formats.contains(.tar) {
            try check(archive_read_support_format_tar(handle), handle, call: "support_format_tar",
                      path: path)
        }
        if formats.contains(.zip) {
            try check(archive_read_support_format_zip_seekable(handle), handle,
                      call: "support_format_zip_seekable", path: path)
        }
        // ARCHIVE_WARN from a filter means "falls back to an external program": accepted, the
        // Debian build links zlib and libzstd.
        if filters.contains(.gzip) {
            try check(archive_read_support_filter_gzip(handle), handle, call: "support_filter_gzip",
                      path: path, allowWarn: true)
        }
        if filters.contains(.zstd) {
            try check(archive_read_support_filter_zstd(handle), handle, call: "support_filter_zstd",
                      path: path, allowWarn: true)
        }
        if filters.contains(.none) {
            try check(archive_read_support_filter_none(handle), handle, call: "support_filter_none",
                      path: path)
        }
        try check(stream.open(handle), handle, call: "archive_read_open2", path: path)
    }

    deinit {
        // Before `stream` is released: the close callback may still use it.
        archive_read_free(handle)
        stream.close()
    }

    /// The next entry's header, or nil at the end of the archive.
    ///
    /// Names come from `archive_entry_pathname` (the multibyte form). We never call `setlocale`, so
    /// the process runs in the "C" locale, where libarchive copies name bytes through unchanged
    /// (its "best effort" conversion in archive_string.c) and may return `ARCHIVE_WARN` for a name it
    /// could not convert; we accept that warning and let the caller validate the bytes. Only if the
    /// multibyte form is missing (an entry that carries only a wide name) do we ask for
    /// `archive_entry_pathname_utf8`.
    public func nextEntry() throws(ArchiveError) -> ArchiveEntryInfo? {
        var raw: OpaquePointer?
        let status = archive_read_next_header(handle, &raw)
        if status == ARCHIVE_EOF { return nil }
        try check(status, handle, call: "archive_read_next_header", path: path, allowWarn: true)
        guard let raw else {
            throw ArchiveError(code: ARCHIVE_FATAL, message: "no entry header", path: path,
                               call: "archive_read_next_header")
        }
        let name = Self.bytes(archive_entry_pathname(raw))
            ?? Self.bytes(archive_entry_pathname_utf8(raw)) ?? []
        let hardlink = Self.bytes(archive_entry_hardlink(raw))
        let symlink = Self.bytes(archive_entry_symlink(raw))
        let kind: ArchiveEntryKind
        if hardlink != nil {
            kind = .hardlink
        } else {
            // libarchive's AE_IF* values (archive_entry.h), spelled out: the macros are casts Swift
            // does not import.
            switch UInt32(archive_entry_filetype(raw)) {
            case 0o100000: kind = .file
            case 0o040000: kind = .directory
            case 0o120000: kind = .symlink
            case 0o020000: kind = .characterDevice
            case 0o060000: kind = .blockDevice
            case 0o010000: kind = .fifo
            case 0o140000: kind = .socket
            default: kind = .unknown
            }
        }
        return ArchiveEntryInfo(
            pathBytes: name,
            kind: kind,
            mode: UInt32(archive_entry_mode(raw)) & 0o7777,
            size: archive_entry_size_is_set(raw) != 0 ? archive_entry_size(raw) : nil,
            mtime: archive_entry_mtime_is_set(raw) != 0 ? Int64(archive_entry_mtime(raw)) : nil,
            symlinkTarget: symlink,
            hardlinkTarget: hardlink
        )
    }

    /// Reads the current entry's data into `buffer`; returns 0 at the end of the entry. Any
    /// negative status, warnings included (a zip CRC mismatch is `ARCHIVE_WARN`), is an error.
    public func readData(into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let count = archive_read_data(handle, base, buffer.count)
        if count < 0 {
            throw ArchiveError.from(handle, code: Int32(count), call: "archive_read_data", path: path)
        }
        return Int(count)
    }

    /// Skips the current entry's data.
    public func skipData() throws(ArchiveError) {
        try check(archive_read_data_skip(handle), handle, call: "archive_read_data_skip", path: path)
    }

    /// Whether the archive is a zip (known once the first header has been read). libarchive 3.6's
    /// seekable zip reader takes each entry's *name* from its local header, not the central directory,
    /// so callers cross-check zip names against the central directory themselves.
    public var isZip: Bool { archive_format(handle) & 0xff0000 == ARCHIVE_FORMAT_ZIP }

    /// Bytes consumed so far from the (compressed) file: the denominator of a compression-ratio check.
    public var compressedBytesRead: Int64 { archive_filter_bytes(handle, -1) }

    private static func bytes(_ pointer: UnsafePointer<CChar>?) -> [UInt8]? {
        guard let pointer else { return nil }
        return Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
    }
}
