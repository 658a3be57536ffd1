import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The outbox's own lock: flock(2) on `<state-dir>/outbox.lock`, separate from the run lock.
///
/// Delivery happens after a run has released the run lock, so a slow API never keeps an operator's
/// `rollback` waiting; this lock keeps two deliverers (a cron run, a `flush`, the next run) from
/// sending the same reports at once, so each is sent once and in order. It is taken without
/// waiting: whoever holds it is delivering, and sends what is queued.
public final class OutboxLock {
    public let path: String
    private let fd: Int32

    /// Why the lock could not be taken.
    public enum Failure: Error, CustomStringConvertible, Sendable {
        /// Another process is delivering the outbox.
        case held(path: String)
        /// The lock file could not be opened or is not a plain private file of ours.
        case unusable(String)

        public var description: String {
            switch self {
            case .held(let path):
                "another molam-upgrade process is delivering the queued reports (it holds \(path)); "
                    + "it sends them"
            case .unusable(let text):
                text
            }
        }
    }

    /// Takes the lock at once or throws; never waits. The file is never truncated or written: a
    /// hard link planted at the path cannot make root change the file it points to, and one that
    /// is not a private regular file of ours (link count 1) is refused.
    public init(stateDirectory: String) throws(Failure) {
        path = stateDirectory + "/outbox.lock"
        let fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard fd >= 0 else {
            throw .unusable("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1,
              info.st_uid == geteuid(), info.st_mode & 0o022 == 0
        else {
            close(fd)
            throw .unusable("\(path) is not a private regular file of this user with one link; "
                + "remove it so that report delivery can recreate it")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            close(fd)
            if code == EWOULDBLOCK { throw .held(path: path) }
            throw .unusable("cannot lock \(path): \(String(cString: strerror(code)))")
        }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

extension ReportDelivery {
    /// Seconds one delivery pass after a run may take, waits and retries included. What is left
    /// stays queued for the next run or `flush`: a cron run must end, and 80 queued reports to a
    /// slow API once held a run for 391 s.
    public static let runDeadline: Double = 20
    /// Seconds for `flush`, which an operator runs on purpose and which holds no run lock.
    public static let flushDeadline: Double = 120

    /// Delivers the outbox under `OutboxLock`, within `deadline` seconds. Called with no run lock
    /// held. If another process holds the outbox lock, nothing is sent here (`stoppedBy` says so):
    /// that process delivers. Never throws; returns nil when no central API is configured.
    public static func deliverQueued(context: UpgradeContext, journal: Journal, deadline: Double) -> Result? {
        guard context.agent.apiURL != nil else { return nil }
        var result = Result()
        result.pending = (try? journal.reportCounts().pending) ?? 0
        guard result.pending > 0 else { return result }
        let lock: OutboxLock
        do {
            lock = try OutboxLock(stateDirectory: context.paths.root)
        } catch {
            if case .held = error { result.otherDeliverer = true }
            result.stoppedBy = "\(error)"
            return result
        }
        defer { withExtendedLifetime(lock) {} }
        let api: CentralAPI
        do {
            api = try CentralRelease.client(context)
        } catch {
            result.stoppedBy = "\(error)"
            return result
        }
        return deliver(journal: journal, api: api, now: context.clock, deadline: Deadline(seconds: deadline))
    }
}

/// A point in time on the monotonic clock (uptime), `seconds` from when it was made: a wall clock
/// set back or forward while reports are sent must not stretch or cut the delivery.
public struct Deadline: Sendable {
    public let seconds: Double
    /// The longest one request may take within it: one stalled report must not eat the whole pass.
    public let requestTimeout: Double
    private let end: Double

    public init(seconds: Double, requestTimeout: Double = 10) {
        self.seconds = seconds
        self.requestTimeout = requestTimeout
        end = ProcessInfo.processInfo.systemUptime + seconds
    }

    /// Seconds left, 0 once passed.
    public var remaining: Double { max(0, end - ProcessInfo.processInfo.systemUptime) }
    public var hasPassed: Bool { remaining <= 0 }
}
