import Foundation
import MolamHTTP
import TestSupport
import Testing

/// The test server itself: later suites (the fake central API) build on it, so its own HTTP
/// handling must be right.
@Suite("LoopbackHTTPServer")
struct LoopbackHTTPServerTests {
    @Test("A chunked request body is decoded and recorded whole")
    func chunkedUpload() throws {
        let server = try LoopbackHTTPServer { request in .text(200, "\(request.body.count)") }
        defer { server.stop() }
        let payload = Data((0..<50_000).map { UInt8(truncatingIfNeeded: $0) })
        let response = try HTTPClient().send(HTTPRequest(
            url: server.baseURL + "/upload", method: "POST",
            headers: [("Transfer-Encoding", "chunked")], body: payload
        ))
        #expect(String(decoding: response.body, as: UTF8.self) == "50000")
        let recorded = try #require(server.requests.first)
        #expect(recorded.header("transfer-encoding") == "chunked")
        #expect(recorded.body == payload)
    }

    @Test("A client expecting 100-continue gets it and its body is read")
    func expectContinue() throws {
        let server = try LoopbackHTTPServer { request in .text(200, request.bodyText) }
        defer { server.stop() }
        let started = Date()
        let response = try HTTPClient().send(HTTPRequest(
            url: server.baseURL + "/", method: "PUT",
            headers: [("Expect", "100-continue")], body: Data("payload".utf8)
        ))
        #expect(String(decoding: response.body, as: UTF8.self) == "payload")
        #expect(server.requests.first?.method == "PUT")
        // libcurl waits 1 s for a 100 that never comes; the server answered it at once.
        #expect(Date().timeIntervalSince(started) < 0.9)
    }

    @Test("An HTTPS request to a plain server fails in the handshake, never falls back to http")
    func httpsToPlainServer() throws {
        let server = try LoopbackHTTPServer { _ in .text(200, "plain") }
        defer { server.stop() }
        // The server waits for a request head that a TLS ClientHello never completes, so the
        // handshake ends by the client's connect timeout (which covers TLS).
        #expect(throws: HTTPError.self) {
            try HTTPClient().send(HTTPRequest(url: "https://127.0.0.1:\(server.port)/", connectTimeout: 0.5))
        }
        #expect(server.requests.isEmpty)
    }

    @Test("After stop the port refuses connections, and stop may be called again")
    func stopCloses() throws {
        let server = try LoopbackHTTPServer { _ in .text(200, "ok") }
        _ = try HTTPClient().send(HTTPRequest(url: server.baseURL + "/"))
        server.stop()
        server.stop()
        let error = #expect(throws: HTTPError.self) {
            try HTTPClient().send(HTTPRequest(url: server.baseURL + "/", connectTimeout: 2))
        }
        #expect(error?.isRetryable == true)
        #expect(server.requests.count == 1)
    }

    @Test("waitForRequests returns once the count is reached and false at its deadline")
    func waitForRequests() throws {
        let server = try LoopbackHTTPServer { _ in .text(200, "ok") }
        defer { server.stop() }
        #expect(server.waitForRequests(count: 1, timeout: 0.05) == false)
        _ = try HTTPClient().send(HTTPRequest(url: server.baseURL + "/"))
        #expect(server.waitForRequests(count: 1, timeout: 5))
    }

    @Test("Response.json encodes with sorted keys and a JSON content type")
    func jsonResponse() {
        let response = LoopbackHTTPServer.Response.json(200, ["b": 1, "a": "x"])
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"a":"x","b":1}"#)
        #expect(response.headers.contains { $0.name == "Content-Type" && $0.value == "application/json" })
        #expect(LoopbackHTTPServer.Response.json(200, "not an object").status == 500)
    }
}
