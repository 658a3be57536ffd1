import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private MariaDB server for tests: its own data directory in a fresh temporary directory, a
/// unix socket and no TCP (`--skip-networking`), and `root@localhost` with no password so tests
/// connect as root through the socket.
///
/// `shared()` starts one per test process, on first use, and stops it when the process exits;
/// tests keep apart by using their own databases (`uniqueDatabaseName`). Thread-safe.
public final class MariaDBTestServer: @unchecked Sendable {
    /// The server could not be set up or did not come up in time; the message says where its log is.
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The unix socket to connect through.
    public let socketPath: String
    /// The temporary directory holding the data directory, socket, pid file and log.
    public let directory: String
    public var logPath: String { directory + "/mariadbd.log" }

    private let process: Process
    private let lock = NSLock()
    private var stopped = false
    private var databaseCounter = 0

    /// Whether the server binaries (Debian's mariadb-server) are installed.
    public static var isAvailable: Bool {
        executable("mariadbd") != nil && executable("mariadb-install-db") != nil
    }

    /// The server every test of this process shares, started on first use (callers block until it
    /// accepts connections) and stopped at exit. A failure to start is remembered and rethrown.
    public static func shared() throws -> MariaDBTestServer {
        try sharedServer.get()
    }

    // A static let is initialized exactly once, thread-safely (swift_once).
    private static let sharedServer = Result<MariaDBTestServer, any Error> { try MariaDBTestServer() }

    /// Creates a data directory and starts a server on it; returns once the socket accepts
    /// connections, or throws (the server stopped) after `startTimeoutSeconds`.
    public init(startTimeoutSeconds: Double = 120) throws {
        guard let installDB = Self.executable("mariadb-install-db"),
              let mariadbd = Self.executable("mariadbd")
        else {
            throw StartError(description: "mariadb-install-db or mariadbd not found; install mariadb-server")
        }
        directory = try Self.makeTemporaryDirectory()
        socketPath = directory + "/mysqld.sock"
        let dataDirectory = directory + "/data"
        let deadline = Date().addingTimeInterval(startTimeoutSeconds)
        let log = directory + "/mariadbd.log"
        guard FileManager.default.createFile(atPath: log, contents: nil) else {
            throw StartError(description: "cannot create \(log)")
        }

        let install = try Self.launch(installDB, [
            "--no-defaults", "--datadir=\(dataDirectory)", "--skip-test-db",
            "--auth-root-authentication-method=normal",
        ] + Self.userArguments, log: log)
        guard Self.waitForExit(install, until: deadline) else {
            install.terminate()
            try? FileManager.default.removeItem(atPath: directory)
            throw StartError(description: "mariadb-install-db did not finish in time")
        }
        guard install.terminationStatus == 0 else {
            let tail = Self.tail(of: log)
            try? FileManager.default.removeItem(atPath: directory)
            throw StartError(
                description: "mariadb-install-db exited with \(install.terminationStatus): \(tail)")
        }

        process = try Self.launch(mariadbd, [
            "--no-defaults", "--datadir=\(dataDirectory)", "--socket=\(socketPath)", "--skip-networking",
            "--pid-file=\(directory)/mariadbd.pid", "--log-error=\(log)",
            "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=2",
            "--innodb-log-file-size=16M",
            // What Debian's configuration sets (ignored under --no-defaults): utf8mb4 by default.
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
        ] + Self.userArguments, log: log)
        Self.running.add(self)

        while !Self.acceptsConnections(socketPath) {
            guard process.isRunning else {
                let tail = Self.tail(of: log)
                stop()
                throw StartError(description: "mariadbd exited with \(process.terminationStatus): \(tail)")
            }
            guard Date() < deadline else {
                stop()
                throw StartError(description: "mariadbd did not accept connections in time; see \(log)")
            }
            usleep(20_000)
        }
    }

    deinit { stop() }

    /// Stops the server (SIGTERM, then SIGKILL if it has not exited after `timeoutSeconds`) and
    /// removes its directory. Idempotent.
    public func stop(timeoutSeconds: Double = 30) {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        Self.running.remove(self)
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            if !Self.waitForExit(process, until: Date().addingTimeInterval(timeoutSeconds)) {
                kill(process.processIdentifier, SIGKILL)
                _ = Self.waitForExit(process, until: Date().addingTimeInterval(10))
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A database name no other test of this process uses: the hint's letters, digits and
    /// underscores, a counter and a random suffix, within MySQL's 64 characters.
    public func uniqueDatabaseName(_ hint: String) -> String {
        let number = lock.withLock {
            databaseCounter += 1
            return databaseCounter
        }
        let cleaned = String(hint.lowercased().unicodeScalars.map {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) ? Character($0) : "_"
        }.prefix(40))
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "t_\(cleaned)_\(number)_\(random)"
    }

    // MARK: Process plumbing

    /// mariadbd refuses to run as root unless told to.
    private static var userArguments: [String] { getuid() == 0 ? ["--user=root"] : [] }

    private static func executable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init)
            + ["/usr/sbin", "/usr/bin", "/usr/local/sbin"]
        return directories.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static func launch(_ executable: String, _ arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        output.seekToEndOfFile()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? output.close()
        return process
    }

    /// Polls, with a short interval, until the process has exited or `deadline` passes.
    private static func waitForExit(_ process: Process, until deadline: Date) -> Bool {
        while process.isRunning {
            guard Date() < deadline else { return false }
            usleep(10_000)
        }
        return true
    }

    /// A directory under $TMPDIR (or /tmp when that path would make the socket's too long for
    /// sockaddr_un), created private by mkdtemp.
    private static func makeTemporaryDirectory() throws -> String {
        var base = FileManager.default.temporaryDirectory.path
        if base.utf8.count > 60 { base = "/tmp" }
        if base.hasSuffix("/") { base.removeLast() }
        var template = Array((base + "/molam-mariadb-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }
        }
        guard let made else {
            throw StartError(description: "mkdtemp in \(base) failed: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    /// Whether a unix-socket connect to `path` succeeds (the server is listening).
    private static func acceptsConnections(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
        }
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }

    private static func tail(of log: String) -> String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n").suffix(5)
        return lines.isEmpty ? "see \(log)" : lines.joined(separator: " | ")
    }

    // MARK: Stopping at exit

    /// Servers still running, stopped by an atexit handler registered with the first one.
    private static let running = RunningServers()

    private final class RunningServers: @unchecked Sendable {
        private let lock = NSLock()
        private var servers: [ObjectIdentifier: MariaDBTestServer] = [:]
        private var registered = false

        func add(_ server: MariaDBTestServer) {
            lock.withLock {
                servers[ObjectIdentifier(server)] = server
                guard !registered else { return }
                registered = true
                atexit { MariaDBTestServer.running.stopAll() }
            }
        }

        func remove(_ server: MariaDBTestServer) {
            lock.withLock { _ = servers.removeValue(forKey: ObjectIdentifier(server)) }
        }

        func stopAll() {
            let all = lock.withLock { Array(servers.values) }
            for server in all { server.stop() }
        }
    }
}
