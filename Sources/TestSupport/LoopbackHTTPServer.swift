import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One request as the server parsed it.
public struct RecordedRequest: Sendable {
    public let method: String
    /// The request target as sent, query string included (`/api/x?y=1`).
    public let path: String
    /// Names lowercased; when a name repeats, the last value wins.
    public let headers: [String: String]
    public let body: Data

    public init(method: String, path: String, headers: [String: String], body: Data) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A real HTTP/1.1 server on 127.0.0.1 for tests: the client under test goes through libcurl,
/// sockets and the kernel exactly as in production, and faults are produced on the wire.
///
/// One connection at a time, each answered with `Connection: close`. The handler runs on the
/// server's own thread. `stop()` (also called from `deinit`) interrupts server-side delays, so a
/// test of a slow server finishes as soon as the client gives up.
public final class LoopbackHTTPServer: @unchecked Sendable {
    /// What to answer. Fault modes are behaviour of the server, not waits in the test.
    public struct Response: Sendable {
        public enum Behaviour: Sendable {
            case normal
            /// Read the request, then close without sending a byte.
            case dropConnection
            /// Wait before the status line (interrupted by `stop()`).
            case delayed(seconds: Double)
            /// Send the body in chunks with a pause before each.
            case slow(chunkBytes: Int, delayPerChunk: Double)
            /// No Content-Length: the body ends when the connection closes.
            case withoutContentLength
            /// Announce the full Content-Length, send only the first bytes, close.
            case truncated(afterBytes: Int)
        }

        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: Data
        public var behaviour: Behaviour

        public init(
            status: Int = 200,
            headers: [(name: String, value: String)] = [],
            body: Data = Data(),
            behaviour: Behaviour = .normal
        ) {
            self.status = status
            self.headers = headers
            self.body = body
            self.behaviour = behaviour
        }

        public static func text(_ status: Int, _ text: String) -> Response {
            Response(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")],
                     body: Data(text.utf8))
        }

        /// `object` as JSON with sorted keys. An object JSONSerialization cannot encode becomes a
        /// 500 naming the problem, so the test fails on the client side instead of crashing.
        public static func json(_ status: Int, _ object: Any) -> Response {
            guard JSONSerialization.isValidJSONObject(object),
                  let body = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            else {
                return .text(500, "LoopbackHTTPServer: not a JSON object: \(object)")
            }
            return Response(status: status, headers: [("Content-Type", "application/json")], body: body)
        }

        public static var dropConnection: Response { Response(behaviour: .dropConnection) }

        public static func delayed(_ seconds: Double, _ response: Response) -> Response {
            var delayed = response
            delayed.behaviour = .delayed(seconds: seconds)
            return delayed
        }
    }

    /// The server could not start listening.
    public struct StartError: Error, CustomStringConvertible {
        public let call: String
        public let errno: Int32
        public var description: String {
            "LoopbackHTTPServer: \(call) failed: \(String(cString: strerror(errno)))"
        }
    }

    public let port: UInt16
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    // The thread holds the core, not the server, so dropping the last reference to the server
    // runs `deinit`, which stops the thread.
    private let core: ServerCore

    public init(handler: @escaping @Sendable (RecordedRequest) -> Response) throws {
        let listener = try Self.listen()
        core = ServerCore(listener: listener.fd, handler: handler)
        port = listener.port
        let thread = Thread { [core] in core.serve() }
        thread.name = "LoopbackHTTPServer:\(listener.port)"
        thread.start()
    }

    deinit { core.stop() }

    /// Requests received so far, in arrival order. Each is recorded before its handler runs, so
    /// a client that got its answer always finds its request here.
    public var requests: [RecordedRequest] { core.recorded }

    /// Waits until at least `count` requests arrived or `timeout` seconds passed; for clients that
    /// send in the background. Returns whether the count was reached.
    public func waitForRequests(count: Int, timeout: Double) -> Bool {
        core.waitForRequests(count: count, deadline: Date(timeIntervalSinceNow: timeout))
    }

    /// Stops accepting, aborts the connection in progress and any server-side delay, and waits
    /// for the server thread to finish. Idempotent.
    public func stop() { core.stop() }

    private static func listen() throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartError(call: "socket", errno: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0  // the kernel picks a free port: tests run in parallel
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw StartError(call: "bind", errno: code)
        }
        guard Glibc.listen(fd, 64) == 0 else {
            let code = errno
            close(fd)
            throw StartError(call: "listen", errno: code)
        }
        var actual = sockaddr_in()
        var actualLength = length
        let named = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) }
        }
        guard named == 0 else {
            let code = errno
            close(fd)
            throw StartError(call: "getsockname", errno: code)
        }
        return (fd, UInt16(bigEndian: actual.sin_port))
    }
}
