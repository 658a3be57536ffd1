import CSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs programs in their own process group (so the end of a check kills everything they started;
/// `DescendantReaper` catches what left the group), with stdin from /dev/null and no descriptor
/// above 2 inherited: by path with posix_spawn, or, for smoke commands, by descriptor with fork and
/// execveat (a user switch needs the fork; the descriptor means the checked file is the one run).
public enum ChildProcess {
    public struct Outcome: Sendable {
        public var exitStatus: Int32?      // nil when killed by a signal or by the timeout
        public var signal: Int32?
        public var timedOut: Bool
        public var outputTail: String
        public var durationSeconds: Double
    }

    /// Where a child's stdout and stderr go.
    public enum Output {
        /// Both into one descriptor the caller owns (the write end of a pipe).
        case descriptor(Int32)
        /// Each into a file, created or truncated.
        case files(stdout: String, stderr: String)
    }

    public static let tailBytes = 4096

    /// Whether a child can be shown a staged tree at the live path (`view:`): root, and a kernel and
    /// container that allow a mount namespace. Asked once.
    static let canShowStagedTree: Bool = geteuid() == 0 && csys_mount_namespace_available() == 1

    /// Starts `arguments[0]` (a path, or a name searched in PATH) in `directory`; returns its pid.
    public static func spawn(
        _ arguments: [String], directory: String, environment: [String: String], output: Output
    ) throws(SystemError) -> pid_t {
        precondition(!arguments.isEmpty, "ChildProcess.spawn needs a program")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        switch output {
        case .descriptor(let fd):
            posix_spawn_file_actions_adddup2(&actions, fd, 1)
            posix_spawn_file_actions_adddup2(&actions, fd, 2)
        case .files(let stdout, let stderr):
            posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        }
        csys_spawn_add_closefrom(&actions, 3)
        csys_spawn_add_chdir(&actions, directory)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP] { sigaddset(&defaultSignals, signal) }
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
        let result = arguments[0].contains("/")
            ? posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
            : posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard result == 0 else { throw SystemError(call: "posix_spawn", path: arguments[0], errno: result) }
        return pid
    }

    /// Waits for a child and returns its raw wait status.
    public static func wait(_ pid: pid_t) throws(SystemError) -> Int32 {
        var status: Int32 = 0
        try systemCall("waitpid") { waitpid(pid, &status, 0) }
        return status
    }

    /// Runs a program to completion or until the deadline, keeping the tail of its output.
    public static func run(
        _ arguments: [String], directory: String, environment: [String: String], timeoutSeconds: Double
    ) throws(SystemError) -> Outcome {
        try collect(timeoutSeconds: timeoutSeconds) { (writeEnd) throws(SystemError) -> pid_t in
            try spawn(arguments, directory: directory, environment: environment, output: .descriptor(writeEnd))
        }
    }

    /// Runs the file open on `executable` (the very file that was checked: execveat, never its path
    /// again) in `directory`, as `user` when given, like `run` otherwise.
    ///
    /// `input` is the child's stdin (a descriptor the caller owns; /dev/null when nil). With `view`,
    /// the child runs in a mount namespace of its own where the tree at `view.tree` is bind-mounted
    /// over the path `view.at`, and works there: a staged release checked where it will be live, by
    /// a user who could not reach the private folder it is staged in. `directory` is then that
    /// tree's descriptor, and the child refuses to start (ESTALE) if the mount shows anything else.
    public static func run(
        executable: Int32, arguments: [String], directory: Int32, environment: [String: String],
        timeoutSeconds: Double, as user: FileOwner?, input: Int32? = nil, view: (tree: String, at: String)? = nil
    ) throws(SystemError) -> Outcome {
        try collect(timeoutSeconds: timeoutSeconds) { (writeEnd) throws(SystemError) -> pid_t in
            try spawn(
                executable: executable, arguments: arguments, directory: directory, environment: environment,
                output: writeEnd, as: user, input: input, view: view)
        }
    }

    /// fork + execveat of the file open on `executable` (`csys_spawn_fd`); returns the pid.
    private static func spawn(
        executable: Int32, arguments: [String], directory: Int32, environment: [String: String], output: Int32,
        as user: FileOwner?, input: Int32?, view: (tree: String, at: String)?
    ) throws(SystemError) -> pid_t {
        // Prepared before the fork: the child may only make async-signal-safe calls.
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let source = view.map { strdup($0.tree) } ?? nil
        let target = view.map { strdup($0.at) } ?? nil
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
            free(source)
            free(target)
        }
        let pid = csys_spawn_fd(
            executable, argv, envp, directory, output, user == nil ? 0 : 1, uid_t(user?.uid ?? 0),
            gid_t(user?.gid ?? 0), input ?? -1, source, target)
        guard pid > 0 else {
            let call = "execveat" + (user.map { " as uid \($0.uid)" } ?? "")
            throw SystemError(call: call, path: arguments[0], errno: -pid)
        }
        return pid
    }

    /// A program left running while the agent does something else (a private PHP server answering
    /// the agent's requests), in its own process group, output discarded. `stop` kills the group and
    /// reaps it; the child dies with the agent too (PR_SET_PDEATHSIG).
    final class Background {
        let pid: pid_t
        private var stopped = false

        init(pid: pid_t) { self.pid = pid }

        var hasExited: Bool { csys_child_exited(pid) != 0 }

        func stop() {
            guard !stopped else { return }
            stopped = true
            kill(-pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            DescendantReaper.killAdoptedChildren(deadline: Date().addingTimeInterval(10))
        }

        deinit { stop() }
    }

    /// Starts the file open on `executable` like `run(executable:…)`, without waiting for it.
    static func start(
        executable: Int32, arguments: [String], directory: Int32, environment: [String: String], as user: FileOwner?,
        view: (tree: String, at: String)? = nil
    ) throws(SystemError) -> Background {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard null >= 0 else { throw SystemError(call: "open", path: "/dev/null", errno: errno) }
        defer { close(null) }
        let pid = try spawn(
            executable: executable, arguments: arguments, directory: directory, environment: environment,
            output: null, as: user, input: nil, view: view)
        return Background(pid: pid)
    }

    /// Starts a program with its output on a pipe, keeps the tail of that output until the program
    /// exits or the deadline passes, then kills its process group and, in an agent that adopts
    /// orphans, every descendant that escaped the group (`DescendantReaper`). The outcome is the
    /// program's own; the clean-up does not change it.
    /// The programs `collect` is running, on any thread: another's end leaves them be when it kills
    /// what is left of its own (`DescendantReaper.killAdoptedChildren`).
    static let running = LockedState(Set<pid_t>())

    private static func collect(
        timeoutSeconds: Double, start: (Int32) throws(SystemError) -> pid_t
    ) throws(SystemError) -> Outcome {
        let started = Date()
        var pipeFDs: [Int32] = [0, 0]
        try systemCall("pipe2") { csys_pipe_cloexec(&pipeFDs) }
        let readEnd = pipeFDs[0], writeEnd = pipeFDs[1]
        let pid: pid_t
        do {
            pid = try running.withLock { (pids) throws(SystemError) -> pid_t in
                let pid = try start(writeEnd)
                pids.insert(pid)
                return pid
            }
        } catch {
            close(readEnd)
            close(writeEnd)
            throw error
        }
        close(writeEnd)

        var tail = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 16384)
        func keep(_ count: Int) {
            tail.append(contentsOf: buffer[0..<count])
            if tail.count > tailBytes * 2 { tail.removeFirst(tail.count - tailBytes) }
        }
        var timedOut = false
        var interrupted = false
        var exited = false
        let deadline = started.addingTimeInterval(timeoutSeconds)
        var open = true
        while true {
            // The program's exit ends the wait even if something it started still holds the pipe.
            if csys_child_exited(pid) != 0 {
                exited = true
                break
            }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                timedOut = true
                break
            }
            // SIGINT, SIGTERM or SIGHUP to the agent: the child must die with the run, not outlive it.
            if Signals.interruption != nil {
                interrupted = true
                break
            }
            var poller = pollfd(fd: open ? readEnd : -1, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining * 1000, 20)) + 1)
            if ready <= 0 { continue }
            let count = read(readEnd, &buffer, buffer.count)
            if count > 0 {
                keep(count)
            } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                open = false
            }
        }
        // What the program wrote just before exiting; bounded, in case a descendant keeps writing.
        for _ in 0..<8 where open && exited {
            var poller = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 0) > 0 else { break }
            let count = read(readEnd, &buffer, buffer.count)
            guard count > 0 else { break }
            keep(count)
        }
        close(readEnd)
        if interrupted { terminateGroup(pid, graceSeconds: 2) }
        // Still unreaped, so the group id cannot have been reused: whatever the program left running
        // in its group (a background child) goes with it.
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        var reaped = false
        while !reaped {
            reaped = waitpid(pid, &status, 0) == pid
            if !reaped && errno != EINTR { break }
        }
        running.withLock { _ = $0.remove(pid) }
        DescendantReaper.killAdoptedChildren(deadline: Date().addingTimeInterval(10), sparing: running)

        let termSignal = status & 0x7f
        let exitedNormally = termSignal == 0
        return Outcome(
            exitStatus: reaped && exitedNormally && !timedOut ? (status >> 8) & 0xff : nil,
            signal: !reaped || exitedNormally ? nil : termSignal,
            timedOut: timedOut,
            outputTail: String(decoding: tail.suffix(tailBytes), as: UTF8.self),
            durationSeconds: Date().timeIntervalSince(started))
    }

    /// SIGTERM to a child's process group, then a short grace for it to exit by itself (a smoke
    /// command cleaning up its test charge); the caller's SIGKILL follows whatever happened.
    private static func terminateGroup(_ pid: pid_t, graceSeconds: Double) {
        kill(-pid, SIGTERM)
        let deadline = Date().addingTimeInterval(graceSeconds)
        while csys_child_exited(pid) == 0, Date() < deadline {
            var nothing = pollfd(fd: -1, events: 0, revents: 0)
            _ = poll(&nothing, 1, 10)
        }
    }
}
