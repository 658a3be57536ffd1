internal import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// Where an `ArchiveWriter` sends the archive's bytes once libarchive has formatted and compressed
/// them. A file today (`FileDescriptorSink`); a layer that encrypts at rest can sit here later
/// without the writer or its callers changing.
///
/// Used from the writer's thread only, while the writer lives. A thrown error's `message` and
/// `errno` become libarchive's error for the call that was running (`archive_write_data`,
/// `archive_write_close`…), so `ArchiveError.isOutOfSpace` keeps working through any sink.
public protocol ArchiveByteSink: AnyObject {
    /// Takes all of `bytes` or throws.
    func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError)
    /// Makes what was written durable and lets go of the destination. Called exactly once, also when
    /// the archive is abandoned (then its error is ignored).
    func close() throws(ArchiveError)
}

/// Where an `ArchiveReader` reads the archive's bytes from. A file today (`FileDescriptorSource`).
///
/// Used from the reader's thread only, while the reader lives. Errors reach the caller as for
/// `ArchiveByteSink`.
public protocol ArchiveByteSource: AnyObject {
    /// Reads at most `buffer.count` bytes into `buffer`; 0 only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int
    /// Whether `seek` works. libarchive's seekable zip reader reads the central directory at the end
    /// of the file first, so a zip cannot be read from a source that cannot seek.
    var isSeekable: Bool { get }
    /// Moves the read position as lseek(2) does and returns the new offset from the start.
    func seek(to offset: Int64, from origin: ArchiveSeekOrigin) throws(ArchiveError) -> Int64
    /// Moves forward by at most `count` bytes without reading them and returns how many it skipped;
    /// 0 asks libarchive to read and discard instead (archive_read_set_skip_callback(3)).
    func skip(_ count: Int64) throws(ArchiveError) -> Int64
    /// Lets go of the source. Called exactly once.
    func close()
}

public enum ArchiveSeekOrigin: Sendable {
    case start, current, end

    var whence: Int32 {
        switch self {
        case .start: SEEK_SET
        case .current: SEEK_CUR
        case .end: SEEK_END
        }
    }
}

extension ArchiveByteSource {
    public var isSeekable: Bool { false }

    public func seek(to offset: Int64, from origin: ArchiveSeekOrigin) throws(ArchiveError) -> Int64 {
        throw ArchiveError(code: ARCHIVE_FATAL, message: "the source cannot seek", path: "", call: "seek",
                           errno: ESPIPE)
    }

    public func skip(_ count: Int64) throws(ArchiveError) -> Int64 { 0 }
}

/// An archive file written through a descriptor: what `archive_write_open_fd` did, plus the fsync.
/// Owns the descriptor; not thread-safe.
public final class FileDescriptorSink: ArchiveByteSink {
    public let path: String
    private var fd: Int32

    /// Creates `path`, which must not exist, with mode 0600 and never through a symlink.
    public init(creating path: String) throws(ArchiveError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ArchiveError.system("open", path: path, errno: errno) }
        self.fd = fd
        self.path = path
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let count = Glibc.write(fd, base + offset, bytes.count - offset)
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                // libarchive's own fd writer says the same (archive_write_open_fd.c).
                throw fatal("Write error", path: path, call: "write", errno: code)
            }
            offset += count
        }
    }

    /// fsync, then close: only a synced archive is a backup.
    public func close() throws(ArchiveError) {
        guard fd >= 0 else { return }
        let synced = fsync(fd) == 0 ? 0 : errno
        let closed = Glibc.close(fd) == 0 ? 0 : errno
        fd = -1
        if synced != 0 { throw ArchiveError.system("fsync", path: path, errno: synced) }
        if closed != 0 { throw ArchiveError.system("close", path: path, errno: closed) }
    }
}

/// An archive file read through a descriptor, as `archive_read_open_filename` read it: seeks with
/// lseek(2), and skips with lseek(2) on a regular file (elsewhere libarchive reads and discards).
/// Owns the descriptor; not thread-safe.
public final class FileDescriptorSource: ArchiveByteSource {
    public let path: String
    private var fd: Int32
    private var skipsBySeeking: Bool

    public init(path: String) throws(ArchiveError) {
        // The messages are libarchive's own (archive_read_open_filename.c), which callers show.
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw fatal("Failed to open '\(path)'", path: path, call: "open", errno: code)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw fatal("Can't stat '\(path)'", path: path, call: "fstat", errno: code)
        }
        self.fd = fd
        self.path = path
        self.skipsBySeeking = info.st_mode & S_IFMT == S_IFREG
    }

    deinit { close() }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int {
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            let code = errno
            if code == EINTR { continue }
            throw fatal("Error reading '\(path)'", path: path, call: "read", errno: code)
        }
    }

    public var isSeekable: Bool { true }

    public func seek(to offset: Int64, from origin: ArchiveSeekOrigin) throws(ArchiveError) -> Int64 {
        let position = lseek(fd, off_t(offset), origin.whence)
        guard position >= 0 else { throw seekError(errno) }
        return Int64(position)
    }

    public func skip(_ count: Int64) throws(ArchiveError) -> Int64 {
        guard skipsBySeeking else { return 0 }
        let old = lseek(fd, 0, SEEK_CUR)
        let new = old >= 0 ? lseek(fd, off_t(count), SEEK_CUR) : -1
        if old >= 0 && new >= 0 { return Int64(new - old) }
        // As libarchive does: a failed lseek is not tried again; a pipe falls back to reading.
        let code = errno
        skipsBySeeking = false
        if code == ESPIPE { return 0 }
        throw seekError(code)
    }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private func seekError(_ code: Int32) -> ArchiveError {
        fatal("Error seeking in '\(path)'", path: path, call: "lseek", errno: code)
    }
}

/// A stream failure as libarchive's own fd callbacks report it: ARCHIVE_FATAL, their message, errno.
private func fatal(_ message: String, path: String, call: String, errno: Int32) -> ArchiveError {
    ArchiveError(code: ARCHIVE_FATAL, message: message, path: path, call: call, errno: errno)
}
