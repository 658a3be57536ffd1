import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The exclusive run lock: flock(2) on `<state-dir>/lock`. The kernel drops it when the process dies,
/// even by SIGKILL, so a crash never leaves a stale lock behind. The holder writes who it is into
/// the file so that a second run can name it.
public final class StateLock {
    public let path: String
    private let fd: Int32

    /// Takes the lock at once or throws `.held` naming the holder; never waits.
    public init(stateDirectory: String, command: String) throws(LockError) {
        path = stateDirectory + "/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .system(SystemError(call: "open", path: path, errno: errno)) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            close(fd)
            if code == EWOULDBLOCK {
                let holder = (try? String(contentsOfFile: path, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                throw .held(path: path, holder: holder.flatMap { $0.isEmpty ? nil : $0 } ?? "unknown holder")
            }
            throw .system(SystemError(call: "flock", path: path, errno: code))
        }
        self.fd = fd
        let holder = "pid \(getpid()), \(command), since \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = ftruncate(fd, 0)
        _ = holder.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    private var released = false

    /// Releases the lock now rather than when the object goes away, so that work done after the run
    /// (report delivery) never keeps another command waiting. Idempotent.
    public func release() {
        guard !released else { return }
        released = true
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }

    deinit { release() }
}

public enum LockError: Error, CustomStringConvertible, Sendable {
    case held(path: String, holder: String)
    case system(SystemError)

    public var description: String {
        switch self {
        case .held(let path, let holder):
            "another molam-upgrade run holds \(path) (\(holder)); try again when it has finished"
        case .system(let error):
            "cannot take the run lock: \(error)"
        }
    }
}
