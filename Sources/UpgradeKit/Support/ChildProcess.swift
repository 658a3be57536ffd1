import CSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program with a deadline, in its own process group so that a timeout kills everything it
/// started, and keeps the tail of its combined output.
public struct ChildProcess {
    public struct Outcome: Sendable {
        public var exitStatus: Int32?      // nil when killed by a signal or by the timeout
        public var signal: Int32?
        public var timedOut: Bool
        public var outputTail: String
        public var durationSeconds: Double
    }

    public static let tailBytes = 4096

    /// Starts `arguments[0]` (an absolute path, or a name searched in PATH) in `directory`.
    public static func run(
        _ arguments: [String], directory: String, environment: [String: String], timeoutSeconds: Double
    ) throws(SystemError) -> Outcome {
        precondition(!arguments.isEmpty, "ChildProcess.run needs a program")
        let started = Date()
        var pipeFDs: [Int32] = [0, 0]
        try systemCall("pipe2") { csys_pipe_cloexec(&pipeFDs) }
        let readEnd = pipeFDs[0], writeEnd = pipeFDs[1]

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        csys_spawn_add_chdir(&actions, directory)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        sigaddset(&defaultSignals, SIGPIPE)
        sigaddset(&defaultSignals, SIGTERM)
        sigaddset(&defaultSignals, SIGINT)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawnResult = arguments[0].contains("/")
            ? posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
            : posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        close(writeEnd)
        guard spawnResult == 0 else {
            close(readEnd)
            throw SystemError(call: "posix_spawn", path: arguments[0], errno: spawnResult)
        }

        var tail = [UInt8]()
        var timedOut = false
        let deadline = started.addingTimeInterval(timeoutSeconds)
        var buffer = [UInt8](repeating: 0, count: 16384)
        var open = true
        while open {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                timedOut = true
                break
            }
            var poller = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining * 1000, 1000)) + 1)
            if ready < 0 && errno != EINTR { break }
            if ready <= 0 { continue }
            let count = read(readEnd, &buffer, buffer.count)
            if count > 0 {
                tail.append(contentsOf: buffer[0..<count])
                if tail.count > tailBytes * 2 { tail.removeFirst(tail.count - tailBytes) }
            } else if count == 0 || (count < 0 && errno != EINTR && errno != EAGAIN) {
                open = false
            }
        }
        close(readEnd)
        if timedOut { kill(-pid, SIGKILL) }

        var status: Int32 = 0
        while true {
            if timedOut {
                if waitpid(pid, &status, 0) == -1 && errno == EINTR { continue }
                break
            }
            // The output closed; the program may still run (a daemon it forked kept nothing open).
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { break }
            if result == -1 && errno != EINTR { break }
            if Date() >= deadline {
                timedOut = true
                kill(-pid, SIGKILL)
                continue
            }
            usleep(2000)
        }
        // Also reap anything left in the group (a background child of a smoke script).
        if !timedOut { kill(-pid, SIGKILL) }

        let termSignal = status & 0x7f
        let exited = termSignal == 0
        return Outcome(
            exitStatus: exited && !timedOut ? (status >> 8) & 0xff : nil,
            signal: exited ? nil : termSignal,
            timedOut: timedOut,
            outputTail: String(decoding: tail.suffix(tailBytes), as: UTF8.self),
            durationSeconds: Date().timeIntervalSince(started))
    }
}
