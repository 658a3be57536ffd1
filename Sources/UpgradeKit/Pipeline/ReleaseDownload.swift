import Foundation
import MolamCrypto
#if canImport(Glibc)
import Glibc
#endif

/// The `download` step for a local archive: copies it into the run's work directory, hashing the
/// bytes as they stream, so what is extracted later is exactly what was verified (the source file
/// could change after a check done in place).
enum ReleaseDownload {
    /// Opens a local release archive for reading, refusing anything but a regular file (exit 2) at
    /// once. `O_NONBLOCK` keeps `open` itself from waiting on a FIFO with no writer; the type is
    /// then checked on the descriptor (`fstat`), not on a path that could be swapped in between.
    /// On a regular file `O_NONBLOCK` changes nothing (open(2)), so reads behave as usual.
    static func openRegularFile(_ source: String) throws(UpgradeError) -> Int32 {
        let fd = open(source, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let error = SystemError(call: "open", path: source, errno: errno)
            throw .configuration("release archive \(source): \(error.message)")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = SystemError(call: "fstat", path: source, errno: errno)
            close(fd)
            throw .configuration("release archive \(source): \(error.message)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw .configuration("release archive \(source) is \(kind(info.st_mode)), not a regular file; "
                + "pass the path of the archive file itself")
        }
        return fd
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        default: "not a regular file"
        }
    }

    static func copy(from source: String, to destination: String, expectedSHA256: String, maxBytes: Int64) throws -> Int64 {
        let input = try openRegularFile(source)
        defer { close(input) }
        let output = try systemCall("open", path: destination) {
            open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        }
        var closed = false
        defer { if !closed { close(output) } }
        let copy = HashingCopy(hasher: try SHA256(), maxBytes: maxBytes) {
            UpgradeError.refused("release archive \(source) is larger than the \(maxBytes)-byte limit")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        try copy.copy(from: input, path: source, through: buffer) { chunk in
            try FileSystem.writeAll(output, chunk, path: destination)
            if copy.byteCount == 0 { try FaultInjection.hit("mid-download") }
        }
        let total = copy.byteCount
        try FileSystem.fsync(output, path: destination)
        close(output)
        closed = true
        let actual = copy.finalizeHex()
        guard actual == expectedSHA256.lowercased() else {
            unlink(destination)
            throw UpgradeError.refused(
                "release archive \(source): SHA-256 is \(actual), expected \(expectedSHA256.lowercased())")
        }
        return total
    }
}
