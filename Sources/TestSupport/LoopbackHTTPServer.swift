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

/// The state shared between the test thread and the server thread, all under `condition`.
private final class ServerCore: @unchecked Sendable {
    private let listener: Int32
    private let handler: @Sendable (RecordedRequest) -> LoopbackHTTPServer.Response
    private let condition = NSCondition()
    private var stopped = false
    private var finished = false
    private var listenerClosed = false
    private var client: Int32?
    private var requests: [RecordedRequest] = []
    private var serverThread: pthread_t?

    init(listener: Int32, handler: @escaping @Sendable (RecordedRequest) -> LoopbackHTTPServer.Response) {
        self.listener = listener
        self.handler = handler
    }

    var recorded: [RecordedRequest] {
        condition.lock()
        defer { condition.unlock() }
        return requests
    }

    func waitForRequests(count: Int, deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while requests.count < count {
            if !condition.wait(until: deadline) { return requests.count >= count }
        }
        return true
    }

    func stop() {
        condition.lock()
        if !stopped {
            stopped = true
            // shutdown, not close: it wakes the blocked accept/recv without freeing the
            // descriptor number while the server thread still uses it.
            shutdown(listener, Int32(SHUT_RDWR))
            if let client { shutdown(client, Int32(SHUT_RDWR)) }
            condition.broadcast()
        }
        // From the server thread itself (a handler dropping the last reference) waiting would
        // deadlock; serve() closes the listener on its way out instead.
        let onServerThread = serverThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        if !onServerThread {
            let deadline = Date(timeIntervalSinceNow: 10)
            while !finished, condition.wait(until: deadline) {}
        }
        closeListenerIfFinished()
        condition.unlock()
    }

    /// Caller holds the lock.
    private func closeListenerIfFinished() {
        guard finished, !listenerClosed else { return }
        listenerClosed = true
        close(listener)
    }

    func serve() {
        condition.lock()
        serverThread = pthread_self()
        condition.unlock()
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break  // shut down by stop()
            }
            // Binaries that end-to-end tests spawn must not inherit (and hold open) the socket.
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            condition.lock()
            if stopped {
                condition.unlock()
                close(fd)
                break
            }
            client = fd
            condition.unlock()

            handle(connection: fd)

            condition.lock()
            client = nil
            condition.unlock()
            close(fd)
        }
        condition.lock()
        finished = true
        closeListenerIfFinished()
        condition.broadcast()
        condition.unlock()
    }

    // MARK: One connection

    private func handle(connection fd: Int32) {
        // A client that stalls must not hang the test run.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        let size = socklen_t(MemoryLayout<timeval>.size)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, size)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, size)

        var reader = ConnectionReader(fd: fd)
        guard let request = readRequest(&reader, fd: fd) else { return }
        condition.lock()
        requests.append(request)
        condition.broadcast()
        condition.unlock()
        write(handler(request), to: fd)
    }

    private func readRequest(_ reader: inout ConnectionReader, fd: Int32) -> RecordedRequest? {
        guard let head = reader.readHead() else { return nil }
        var lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
            let answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            sendAll(fd, Data(answer.utf8))
            return nil
        }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if headers["expect"]?.lowercased() == "100-continue" {
            sendAll(fd, Data("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        let body: Data
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            guard let chunked = reader.readChunkedBody() else { return nil }
            body = chunked
        } else if let length = headers["content-length"].flatMap({ Int($0) }), length > 0 {
            guard let exact = reader.readExactly(length) else { return nil }
            body = exact
        } else {
            body = Data()
        }
        return RecordedRequest(method: String(requestLine[0]), path: String(requestLine[1]),
                               headers: headers, body: body)
    }

    private func write(_ response: LoopbackHTTPServer.Response, to fd: Int32) {
        var announcedLength: Int? = response.body.count
        var bodyToSend = response.body
        switch response.behaviour {
        case .dropConnection:
            return
        case .delayed(let seconds):
            guard pause(seconds) else { return }
        case .withoutContentLength:
            announcedLength = nil
        case .truncated(let count):
            bodyToSend = response.body.prefix(max(0, count))
        case .normal, .slow:
            break
        }
        var head = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
        let userNames = Set(response.headers.map { $0.name.lowercased() })
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        if let announcedLength, !userNames.contains("content-length") {
            head += "Content-Length: \(announcedLength)\r\n"
        }
        head += "Connection: close\r\n\r\n"
        guard sendAll(fd, Data(head.utf8)) else { return }

        guard case .slow(let chunkBytes, let delay) = response.behaviour else {
            sendAll(fd, bodyToSend)
            return
        }
        var offset = 0
        while offset < bodyToSend.count {
            guard pause(delay) else { return }
            let end = min(bodyToSend.count, offset + max(1, chunkBytes))
            guard sendAll(fd, bodyToSend.subdata(in: offset..<end)) else { return }
            offset = end
        }
    }

    /// Waits `seconds` unless stopped first; false if stopped. A condition wait, not a sleep,
    /// so `stop()` ends it at once.
    private func pause(_ seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while !stopped, Date() < deadline {
            _ = condition.wait(until: deadline)
        }
        return !stopped
    }

    /// MSG_NOSIGNAL: a client that already hung up must produce EPIPE here, not a SIGPIPE that
    /// kills the whole test process.
    @discardableResult
    private func sendAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return true }
            var offset = 0
            while offset < bytes.count {
                let sent = send(fd, base + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                if sent < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += sent
            }
            return true
        }
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 409: "Conflict"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status"
        }
    }
}

/// Buffered reads from one socket, with limits so a confused client cannot exhaust memory.
private struct ConnectionReader {
    let fd: Int32
    private var buffer: [UInt8] = []
    private static let maxHeadBytes = 64 * 1024

    init(fd: Int32) { self.fd = fd }

    /// Appends what the socket has; false at end of stream or on error (timeouts included).
    private mutating func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return false }
            buffer.append(contentsOf: chunk[..<count])
            return true
        }
    }

    /// Bytes up to the blank line ending the head, without it.
    mutating func readHead() -> [UInt8]? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var searchFrom = 0
        while true {
            if buffer.count >= 4 {
                for index in searchFrom...(buffer.count - 4)
                where buffer[index..<index + 4].elementsEqual(terminator) {
                    let head = Array(buffer[..<index])
                    buffer.removeFirst(index + 4)
                    return head
                }
                searchFrom = buffer.count - 3
            }
            guard buffer.count <= Self.maxHeadBytes, fill() else { return nil }
        }
    }

    mutating func readExactly(_ count: Int) -> Data? {
        while buffer.count < count {
            guard fill() else { return nil }
        }
        let data = Data(buffer[..<count])
        buffer.removeFirst(count)
        return data
    }

    mutating func readLine() -> String? {
        while true {
            if let index = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<index], as: UTF8.self)
                buffer.removeFirst(index + 1)
                return line.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard buffer.count <= Self.maxHeadBytes, fill() else { return nil }
        }
    }

    /// RFC 9112 §7.1 chunked body; extensions and trailers are read and ignored.
    mutating func readChunkedBody() -> Data? {
        var body = Data()
        while true {
            guard let sizeLine = readLine() else { return nil }
            let hex = sizeLine.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
            guard let size = Int(hex.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                return nil
            }
            if size == 0 {
                while let trailer = readLine(), !trailer.isEmpty {}
                return body
            }
            guard let chunk = readExactly(size), readLine() != nil else { return nil }
            body.append(chunk)
        }
    }
}
