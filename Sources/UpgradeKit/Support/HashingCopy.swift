import MolamCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Bytes on their way from a source to a destination, hashed (SHA-256) and counted as they pass, so
/// that the digest checked is the digest of exactly what was written: the release download (from the
/// central API or a local file) and each file of a backup archive. Each chunk is hashed and written
/// once, from the same buffer; nothing is held beyond the caller's buffer.
///
/// Not thread-safe: one copy, one thread.
final class HashingCopy {
    private var hasher: SHA256
    /// Bytes hashed and written so far.
    private(set) var byteCount: Int64 = 0
    private let maxBytes: Int64
    private let tooLarge: () -> any Error

    /// The caller makes the hasher, so each keeps its own error for the (out of memory) case where
    /// libcrypto cannot. A chunk that would take the copy past `maxBytes` throws `tooLarge()` before
    /// it is hashed or written.
    init(
        hasher: SHA256, maxBytes: Int64 = .max,
        tooLarge: @escaping () -> any Error = { HashingCopy.unlimited }
    ) {
        self.hasher = hasher
        self.maxBytes = maxBytes
        self.tooLarge = tooLarge
    }

    /// Hashes `chunk`, hands it to `write`, then counts it: inside `write`, `byteCount` is what came
    /// before the chunk (0 for the first one).
    func pass(_ chunk: UnsafeRawBufferPointer, to write: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard byteCount + Int64(chunk.count) <= maxBytes else { throw tooLarge() }
        hasher.update(chunk)
        try write(chunk)
        byteCount += Int64(chunk.count)
    }

    /// Passes everything left in `fd` to `write`, read through `buffer`. A failed read throws
    /// `SystemError` ("read", `path`); EINTR is retried.
    func copy(
        from fd: Int32, path: String, through buffer: UnsafeMutableRawBufferPointer,
        to write: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        while true {
            let count = try systemCall("read", path: path) {
                Glibc.read(fd, buffer.baseAddress, buffer.count)
            }
            if count == 0 { return }
            try pass(UnsafeRawBufferPointer(rebasing: buffer[..<count]), to: write)
        }
    }

    /// Starts over with a fresh hasher (a download that restarts from its first byte).
    func restart(hasher: SHA256) {
        self.hasher = hasher
        byteCount = 0
    }

    /// The SHA-256 of everything passed since the start, in lowercase hex. Ends the copy.
    func finalizeHex() -> String { hasher.finalizeHex() }

    /// Never thrown: `maxBytes` defaults to `Int64.max`, which no copy reaches.
    private static let unlimited = SystemError(call: "copy", errno: EFBIG)
}
