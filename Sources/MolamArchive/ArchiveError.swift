internal import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// A failure inside libarchive (or opening the file it works on): the call that failed, libarchive's
/// return code and its own message (`archive_error_string`), the archive's path and errno when set.
public struct ArchiveError: Error, CustomStringConvertible, Sendable {
    /// libarchive's return code (`ARCHIVE_FATAL`, `ARCHIVE_FAILED`, `ARCHIVE_WARN`), or -1 for a syscall.
    public let code: Int32
    public let message: String
    public let path: String
    public let call: String
    /// `archive_errno` or the syscall's errno; 0 when libarchive set none.
    public let errno: Int32

    public init(code: Int32, message: String, path: String, call: String, errno: Int32 = 0) {
        self.code = code
        self.message = message
        self.path = path
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(path): \(message) (\(call))" }

    /// Out of space or quota, so callers can tell the user what to free.
    public var isOutOfSpace: Bool { errno == ENOSPC || errno == EDQUOT }

    /// The one funnel: reads libarchive's message and errno off the handle that just failed.
    static func from(_ handle: OpaquePointer, code: Int32, call: String, path: String) -> ArchiveError {
        let message = archive_error_string(handle).map { String(cString: $0) } ?? "error \(code)"
        return ArchiveError(code: code, message: message, path: path, call: call,
                            errno: archive_errno(handle))
    }

    static func system(_ call: String, path: String, errno code: Int32) -> ArchiveError {
        ArchiveError(code: -1, message: String(cString: strerror(code)), path: path, call: call, errno: code)
    }
}

/// Checks a libarchive status. `ARCHIVE_WARN` is accepted only where the caller says so: libarchive
/// uses it for recoverable conditions (e.g. an unconvertible name) but also for a zip CRC mismatch
/// on data, which must fail.
func check(
    _ status: Int32, _ handle: OpaquePointer, call: String, path: String, allowWarn: Bool = false
) throws(ArchiveError) {
    if status == ARCHIVE_OK || (allowWarn && status == ARCHIVE_WARN) { return }
    throw ArchiveError.from(handle, code: status, call: call, path: path)
}
