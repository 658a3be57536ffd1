import CSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Makes every process a smoke command started die with the check, daemons included.
///
/// A process group is not enough: a daemon calls `setsid` (a new group) after a double fork, and its
/// parent's exit hands it to init. The agent therefore becomes a child subreaper
/// (`PR_SET_CHILD_SUBREAPER`, prctl(2)) at start: such orphans are re-parented to the agent, where
/// they can be found in /proc (ppid == our pid), killed and reaped. The sweep runs only in a process
/// that is a subreaper, since only there are all its other children known to be none of ours to keep
/// (the `molam-upgrade` binary starts no other children; a test runner in which the library is loaded
/// does, so there only the process group is killed).
public enum DescendantReaper {
    /// Makes this process adopt its orphaned descendants. Called once by the agent at start.
    @discardableResult
    public static func adoptOrphans() -> Bool { csys_become_subreaper() == 0 }

    /// Whether this process adopts orphaned descendants.
    public static var adoptsOrphans: Bool { csys_is_subreaper() == 1 }

    /// Kills and reaps every child of this process until none is left or `deadline` passes; returns
    /// how many were killed. Each round kills what it finds; what those had started is re-parented to
    /// us and found by the next round. The programs in `sparing` (those another thread is running
    /// and waiting for) are left alone; the set is read under its lock, which a spawn holds until
    /// the new program is in it.
    @discardableResult
    static func killAdoptedChildren(deadline: Date, sparing: LockedState<Set<pid_t>>? = nil) -> Int {
        guard adoptsOrphans else { return 0 }
        var killed = Set<pid_t>()
        while true {
            let children = sparing?.withLock { running in childrenOfThisProcess().filter { !running.contains($0) } }
                ?? childrenOfThisProcess()
            if children.isEmpty { return killed.count }
            for child in children {
                kill(child, SIGKILL)
                killed.insert(child)
            }
            for child in children {
                var status: Int32 = 0
                _ = waitpid(child, &status, WNOHANG)
            }
            if Date() >= deadline { return killed.count }
            // A killed process becomes reapable a moment later: wait for any child, briefly.
            var ignored = pollfd()
            _ = poll(&ignored, 0, 2)
        }
    }

    /// Pids whose parent is this process, read from /proc/<pid>/stat (the field after the command
    /// name, which is in parentheses and may itself contain spaces or parentheses).
    static func childrenOfThisProcess() -> [pid_t] {
        let me = getpid()
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var children: [pid_t] = []
        for name in names {
            guard let pid = pid_t(name), pid != me,
                  let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // fields[0] is the state, fields[1] the parent's pid.
            if fields.count > 1, pid_t(fields[1]) == me { children.append(pid) }
        }
        return children
    }
}
