import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A `LoopbackHTTPServer`'s state shared between the test thread and the server thread, all under
/// `condition`, and the serving of its connections on the server thread.
final class ServerCore: @unchecked Sendable {
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
        condition.wait(until: deadline) { requests.count >= count }
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
