import Foundation
import MolamHTTP
import TestSupport
import Testing

/// The libcurl wrapper against a real server on 127.0.0.1: every behaviour here goes through
/// sockets, so timeouts, dropped connections and size caps are the ones production sees.
@Suite("HTTPClient")
struct HTTPClientTests {
    @Test("A GET returns the status, lowercased headers and the body")
    func getReturnsBody() throws {
        let server = try LoopbackHTTPServer { _ in
            .init(status: 200, headers: [("X-Release", "4.0.0")], body: Data("hello".utf8))
        }
        defer { server.stop() }
        let response = try HTTPClient().send(HTTPRequest(url: server.baseURL + "/api/ping?x=1"))
        #expect(response.status == 200)
        #expect(response.body == Data("hello".utf8))
        #expect(response.bytesReceived == 5)
        #expect(response.headers["x-release"] == "4.0.0")
        #expect(response.headers["content-length"] == "5")
        #expect(server.requests.map(\.method) == ["GET"])
        #expect(server.requests.map(\.path) == ["/api/ping?x=1"])
    }

    @Test("A 404 is returned as a response, not thrown")
    func notFoundIsAResponse() throws {
        let server = try LoopbackHTTPServer { _ in .text(404, "no such release") }
        defer { server.stop() }
        let response = try HTTPClient().send(HTTPRequest(url: server.baseURL + "/api/plugins/releases/x/9"))
        #expect(response.status == 404)
        #expect(String(decoding: response.body, as: UTF8.self) == "no such release")
    }

    @Test("A streamed body reaches the sink byte for byte and is not also collected")
    func streamsToSink() throws {
        let served = Data((0..<1_048_576).map { UInt8(truncatingIfNeeded: $0 % 251) })
        let server = try LoopbackHTTPServer { _ in .init(body: served) }
        defer { server.stop() }
        var received = Data()
        var chunks = 0
        let response = try HTTPClient().send(HTTPRequest(url: server.baseURL + "/release.zip")) { bytes in
            received.append(contentsOf: bytes)
            chunks += 1
        }
        #expect(received == served)
        #expect(chunks > 1)
        #expect(response.body.isEmpty)
        #expect(response.bytesReceived == Int64(served.count))
    }

    @Test("A body over the cap is refused, with or without a Content-Length", arguments: [true, false])
    func sizeCap(announced: Bool) throws {
        let body = Data(repeating: 0x61, count: 200_000)
        let server = try LoopbackHTTPServer { _ in
            .init(body: body, behaviour: announced ? .normal : .withoutContentLength)
        }
        defer { server.stop() }
        var request = HTTPRequest(url: server.baseURL + "/big")
        request.maxBodyBytes = 1000
        var streamed = 0
        let error = failure {
            try HTTPClient().send(request) { streamed += $0.count }
        }
        #expect(error?.kind == .tooLarge)
        #expect(streamed <= 1000)
        #expect(error?.isRetryable == false)
    }

    @Test("A sink that throws aborts the transfer with sinkFailed")
    func sinkFailure() throws {
        struct DiskFull: Error {}
        let server = try LoopbackHTTPServer { _ in .init(body: Data(repeating: 1, count: 100_000)) }
        defer { server.stop() }
        let error = failure {
            try HTTPClient().send(HTTPRequest(url: server.baseURL + "/x")) { _ in throw DiskFull() }
        }
        #expect(error?.kind == .sinkFailed)
        #expect(error?.description.contains("DiskFull") == true)
    }

    @Test("A connection closed without an answer is a retryable transport error")
    func droppedConnection() throws {
        let server = try LoopbackHTTPServer { _ in .dropConnection }
        defer { server.stop() }
        let error = failure { try HTTPClient().send(HTTPRequest(url: server.baseURL + "/api?token=secret")) }
        #expect(error?.kind == .transport)
        #expect(error?.isRetryable == true)
        #expect(error?.description.contains("127.0.0.1") == true)
        #expect(error?.description.contains("secret") == false)
        #expect(error?.description.contains("\n") == false)
    }

    @Test("A body cut short of its Content-Length is a retryable transport error")
    func truncatedBody() throws {
        let server = try LoopbackHTTPServer { _ in
            .init(body: Data(repeating: 7, count: 10_000), behaviour: .truncated(afterBytes: 100))
        }
        defer { server.stop() }
        let error = failure { try HTTPClient().send(HTTPRequest(url: server.baseURL + "/x")) }
        #expect(error?.kind == .transport)
        #expect(error?.isRetryable == true)
    }

    @Test("The total timeout fires against a server that answers too late")
    func totalTimeout() throws {
        let server = try LoopbackHTTPServer { _ in .delayed(3, .text(200, "late")) }
        var request = HTTPRequest(url: server.baseURL + "/slow")
        request.totalTimeout = 0.5
        let started = Date()
        let error = failure { try HTTPClient().send(request) }
        #expect(error?.kind == .timedOut)
        #expect(error?.isRetryable == true)
        #expect(Date().timeIntervalSince(started) < 2.5)
        // stop() interrupts the server's remaining delay instead of waiting it out.
        server.stop()
        #expect(Date().timeIntervalSince(started) < 2.5)
    }

    @Test("A transfer that stalls below the low-speed limit is timed out")
    func lowSpeedTimeout() throws {
        let server = try LoopbackHTTPServer { _ in
            .init(body: Data(repeating: 1, count: 1000), behaviour: .slow(chunkBytes: 1, delayPerChunk: 0.5))
        }
        defer { server.stop() }
        var request = HTTPRequest(url: server.baseURL + "/trickle")
        request.lowSpeedLimitBytesPerSecond = 100
        request.lowSpeedTimeSeconds = 1
        let error = failure { try HTTPClient().send(request) }
        #expect(error?.kind == .timedOut)
    }

    @Test(
        "Plain http to anything but loopback is refused before any traffic",
        arguments: [
            "http://example.invalid/",
            "http://127.0.0.1@example.invalid/",
            "http://127.1.example.invalid/",
            "HTTP://93.184.216.34/",
            "http://[::2]/",
        ]
    )
    func insecureURL(url: String) throws {
        let started = Date()
        let error = failure { try HTTPClient().send(HTTPRequest(url: url, connectTimeout: 30)) }
        #expect(error?.kind == .insecureURL)
        #expect(error?.isRetryable == false)
        // No resolver or connect attempt could have finished this fast against a .invalid host.
        #expect(Date().timeIntervalSince(started) < 1)
    }

    @Test("Loopback over plain http is refused when the request does not allow it")
    func loopbackNotAllowed() throws {
        let server = try LoopbackHTTPServer { _ in .text(200, "ok") }
        defer { server.stop() }
        var request = HTTPRequest(url: server.baseURL + "/")
        request.allowInsecureLoopback = false
        #expect(failure { try HTTPClient().send(request) }?.kind == .insecureURL)
        #expect(server.requests.isEmpty)
    }

    @Test(
        "Loopback is recognised by address and by the name localhost",
        arguments: ["127.0.0.1", "localhost"]
    )
    func loopbackHosts(host: String) throws {
        let server = try LoopbackHTTPServer { _ in .text(200, "ok") }
        defer { server.stop() }
        let response = try HTTPClient().send(HTTPRequest(url: "http://\(host):\(server.port)/"))
        #expect(response.status == 200)
    }

    @Test("URLs that are not absolute http(s) URLs are invalid", arguments: [
        "", "not a url", "/relative/path", "ftp://127.0.0.1/file", "file:///etc/passwd",
    ])
    func invalidURL(url: String) throws {
        #expect(failure { try HTTPClient().send(HTTPRequest(url: url)) }?.kind == .invalidURL)
    }

    @Test("A POST sends its JSON body and headers as given")
    func postJSON() throws {
        let server = try LoopbackHTTPServer { _ in .json(201, ["id": "run-1"]) }
        defer { server.stop() }
        let payload = Data(#"{"plugin_name":"molam-form","version":"4.0.0"}"#.utf8)
        let response = try HTTPClient().send(HTTPRequest(
            url: server.baseURL + "/api/plugins/upgrades",
            method: "POST",
            headers: [
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "b7f1c2"),
                ("Authorization", "Bearer t0ken"),
            ],
            body: payload
        ))
        #expect(response.status == 201)
        let object = try JSONSerialization.jsonObject(with: response.body) as? [String: String]
        #expect(object == ["id": "run-1"])
        let recorded = try #require(server.requests.first)
        #expect(recorded.method == "POST")
        #expect(recorded.path == "/api/plugins/upgrades")
        #expect(recorded.body == payload)
        #expect(recorded.header("content-type") == "application/json")
        #expect(recorded.header("Idempotency-Key") == "b7f1c2")
        #expect(recorded.header("authorization") == "Bearer t0ken")
        #expect(recorded.header("expect") == nil)
    }

    @Test("A POST without a body sends an empty one instead of reading stdin")
    func emptyPost() throws {
        let server = try LoopbackHTTPServer { _ in .init(status: 204) }
        defer { server.stop() }
        let response = try HTTPClient().send(HTTPRequest(url: server.baseURL + "/flush", method: "POST"))
        #expect(response.status == 204)
        #expect(server.requests.first?.method == "POST")
        #expect(server.requests.first?.header("content-length") == "0")
    }

    @Test("The client's User-Agent is sent")
    func userAgent() throws {
        let server = try LoopbackHTTPServer { _ in .text(200, "ok") }
        defer { server.stop() }
        _ = try HTTPClient(userAgent: "molam-upgrade/1.2.3").send(HTTPRequest(url: server.baseURL + "/"))
        #expect(server.requests.first?.header("user-agent") == "molam-upgrade/1.2.3")
    }

    @Test("A header value with a line break is refused, and the value stays out of the message")
    func headerInjection() throws {
        let server = try LoopbackHTTPServer { _ in .text(200, "ok") }
        defer { server.stop() }
        let request = HTTPRequest(
            url: server.baseURL + "/", headers: [("Authorization", "Bearer abc\nX-Evil: 1")]
        )
        let error = failure { try HTTPClient().send(request) }
        #expect(error?.kind == .invalidHeader)
        #expect(error?.description.contains("abc") == false)
        #expect(server.requests.isEmpty)
    }

    @Test("A redirect from a plain-http loopback server is returned, not followed")
    func loopbackRedirectNotFollowed() throws {
        let server = try LoopbackHTTPServer { _ in
            .init(status: 302, headers: [("Location", "http://example.invalid/evil")])
        }
        defer { server.stop() }
        let response = try HTTPClient().send(HTTPRequest(url: server.baseURL + "/release"))
        #expect(response.status == 302)
        #expect(response.headers["location"] == "http://example.invalid/evil")
        #expect(server.requests.count == 1)
    }

    @Test("One client serves many sequential requests")
    func sequentialRequests() throws {
        let server = try LoopbackHTTPServer { request in .text(200, request.path) }
        defer { server.stop() }
        let client = try HTTPClient()
        for index in 0..<25 {
            let response = try client.send(HTTPRequest(url: server.baseURL + "/n/\(index)"))
            #expect(String(decoding: response.body, as: UTF8.self) == "/n/\(index)")
        }
        #expect(server.requests.count == 25)
    }
}

/// The HTTPError a call threw, or nil if it returned. (Closures infer untyped `throws`, so the
/// type is checked here; `send` itself only throws HTTPError.)
private func failure(_ body: () throws -> HTTPResponse) -> HTTPError? {
    do {
        _ = try body()
        return nil
    } catch let error as HTTPError {
        return error
    } catch {
        Issue.record("expected an HTTPError, got \(error)")
        return nil
    }
}

/// The case without its payload, so tests can compare with `==`.
private enum ErrorKind {
    case invalidURL, insecureURL, invalidHeader, transport, timedOut, tooLarge, sinkFailed
}

extension HTTPError {
    fileprivate var kind: ErrorKind {
        switch self {
        case .invalidURL: .invalidURL
        case .insecureURL: .insecureURL
        case .invalidHeader: .invalidHeader
        case .transport: .transport
        case .timedOut: .timedOut
        case .tooLarge: .tooLarge
        case .sinkFailed: .sinkFailed
        }
    }
}
