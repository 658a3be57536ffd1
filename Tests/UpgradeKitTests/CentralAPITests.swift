import Foundation
import MolamHTTP
import TestSupport
import Testing
import UpgradeKit

/// The central API client against real HTTP servers on 127.0.0.1. Waits are injected (recorded,
/// never slept) and the jitter always takes the upper bound, so every backoff is an exact number.
@Suite("central API client")
struct CentralAPITests {
    private static let token = "s3cr3t-TOKEN-7f1c9a"
    private static let sha = String(repeating: "ab", count: 32)

    // MARK: Requests

    @Test("Every API request carries the bearer token, Accept and the agent's User-Agent")
    func headers() throws {
        let server = try LoopbackHTTPServer { _ in .json(200, rolloutObject()) }
        defer { server.stop() }
        let api = try makeAPI(server)
        let rollout = try #require(try api.rollout(plugin: "molam-form"))
        let expected = Rollout(
            id: "r-17", pluginName: "molam-form", version: try #require(SemanticVersion("4.0.0")),
            percentage: 5, strategy: .random, status: .active, errorThreshold: 0.05)
        #expect(rollout == expected)
        let request = try #require(server.requests.first)
        #expect(request.method == "GET")
        #expect(request.path == "/api/plugins/rollouts/molam-form")
        #expect(request.header("Authorization") == "Bearer \(Self.token)")
        #expect(request.header("Accept") == "application/json")
        #expect(request.header("User-Agent") == "molam-upgrade/\(UpgradeKitVersion.string)")
        #expect(api.requestCount == 1)
    }

    @Test("A plugin name is one percent-encoded path segment, after the base URL's own prefix")
    func pathEncoding() throws {
        let server = try LoopbackHTTPServer { _ in .text(404, "no rollout") }
        defer { server.stop() }
        let api = try CentralAPI(endpoint: APIEndpoint(baseURL: server.baseURL + "/v2/", token: Self.token))
        #expect(try api.rollout(plugin: "molam form/é?x") == nil)
        #expect(server.requests.map(\.path) == ["/v2/api/plugins/rollouts/molam%20form%2F%C3%A9%3Fx"])
        #expect(URLText.pathSegment("u-1_a.b~c") == "u-1_a.b~c")
    }

    @Test("A rollout 404 means no rollout: nil, without retrying")
    func rolloutNotFound() throws {
        let server = try LoopbackHTTPServer { _ in .text(404, "not found") }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        #expect(try api.rollout(plugin: "molam-form") == nil)
        #expect(api.requestCount == 1)
        #expect(waits.recorded.isEmpty)
    }

    @Test("A release is fetched and checked against the plugin and version asked for")
    func release() throws {
        let server = try LoopbackHTTPServer { _ in .json(200, releaseObject()) }
        defer { server.stop() }
        let api = try makeAPI(server)
        let release = try api.release(plugin: "molam-form", version: "4.0.0")
        #expect(release.pluginName == "molam-form")
        #expect(release.version == SemanticVersion("4.0.0"))
        #expect(release.sha256 == Self.sha)
        #expect(release.sizeBytes == 1234)
        #expect(server.requests.map(\.path) == ["/api/plugins/releases/molam-form/4.0.0"])
    }

    @Test("A release 404 is .notFound, not retried")
    func releaseNotFound() throws {
        let server = try LoopbackHTTPServer { _ in .text(404, "no such release") }
        defer { server.stop() }
        let api = try makeAPI(server)
        let error = failure { () throws(CentralAPIError) in
            try api.release(plugin: "molam-form", version: "9.9.9")
        }
        #expect(error?.kind == .notFound)
        #expect(error?.isRetryable == false)
        #expect(error?.description.contains("/api/plugins/releases/molam-form/9.9.9") == true)
        #expect(api.requestCount == 1)
    }

    @Test("Malformed JSON is .badAnswer and is not retried",
          arguments: ["<html>proxy error</html>", "", "[1]"])
    func malformedJSON(body: String) throws {
        let server = try LoopbackHTTPServer { _ in .text(200, body) }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        let rolloutError = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        let releaseError = failure { () throws(CentralAPIError) in
            try api.release(plugin: "molam-form", version: "4.0.0")
        }
        #expect(rolloutError?.kind == .badAnswer)
        #expect(releaseError?.kind == .badAnswer)
        let url = server.baseURL + "/api/plugins/rollouts/molam-form"
        #expect(rolloutError?.description.contains(url) == true)
        #expect(api.requestCount == 2)
        #expect(waits.recorded.isEmpty)
    }

    @Test("Release JSON with a wrong field, or for another version, is .invalidRelease")
    func invalidRelease() throws {
        var badHash = releaseObject()
        badHash["sha256"] = "xyz"
        var otherVersion = releaseObject()
        otherVersion["version"] = "4.0.1"
        let answers = Script([.json(200, badHash), .json(200, otherVersion)])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let api = try makeAPI(server)
        let first = failure { () throws(CentralAPIError) in
            try api.release(plugin: "molam-form", version: "4.0.0")
        }
        #expect(first?.kind == .invalidRelease)
        #expect(first?.description.contains("'sha256'") == true)
        let second = failure { () throws(CentralAPIError) in
            try api.release(plugin: "molam-form", version: "4.0.0")
        }
        #expect(second?.kind == .invalidRelease)
        #expect(second?.description.contains("4.0.1") == true)
    }

    @Test("A 2xx other than 200 to a GET is .badAnswer")
    func unexpectedSuccessStatus() throws {
        let server = try LoopbackHTTPServer { _ in .init(status: 204) }
        defer { server.stop() }
        let api = try makeAPI(server)
        let error = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        #expect(error?.kind == .badAnswer)
        #expect(error?.description.contains("HTTP 204") == true)
    }

    @Test("A 401 is .rejected at once, with the body's start on one line")
    func unauthorized() throws {
        let body = "invalid token\r\nfor this merchant\n" + String(repeating: "x", count: 300)
        let server = try LoopbackHTTPServer { _ in .text(401, body) }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        let error = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        guard case .rejected(let status, let message) = error else {
            Issue.record("expected .rejected, got \(String(describing: error))")
            return
        }
        #expect(status == 401)
        #expect(message.contains("HTTP 401"))
        #expect(message.contains("invalid token for this merchant xxx"))
        #expect(!message.contains("\n") && !message.contains("\r"))
        #expect(message.count < 200 + 120)
        #expect(error?.isRetryable == false)
        #expect(api.requestCount == 1)
        #expect(waits.recorded.isEmpty)
    }

    // MARK: Retries

    @Test("503 twice then 200 succeeds on the third request after waits of 0.5 and 1 s")
    func retriesServerErrors() throws {
        let answers = Script([.text(503, "busy"), .text(503, "busy"), .json(200, rolloutObject())])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        #expect(try api.rollout(plugin: "molam-form")?.id == "r-17")
        #expect(api.requestCount == 3)
        #expect(server.requests.count == 3)
        #expect(waits.recorded == [0.5, 1])
    }

    @Test("429 with Retry-After: 2 waits 2 s")
    func retryAfterSeconds() throws {
        let answers = Script([tooMany("2"), .json(200, rolloutObject())])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        #expect(try api.rollout(plugin: "molam-form") != nil)
        #expect(waits.recorded == [2])
    }

    @Test("A Retry-After HTTP-date is measured from the injected clock")
    func retryAfterDate() throws {
        let answers = Script([tooMany("Sun, 06 Nov 1994 08:49:37 GMT"), .json(200, rolloutObject())])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let waits = Waits()
        let api = try CentralAPI(
            endpoint: APIEndpoint(baseURL: server.baseURL, token: Self.token), sleep: { waits.record($0) },
            random: { $0.upperBound }, now: { Date(timeIntervalSince1970: 784_111_777 - 3) })
        #expect(try api.rollout(plugin: "molam-form") != nil)
        #expect(waits.recorded == [3])
    }

    @Test("Retry-After: 100000 is clamped to maxRetryAfter")
    func retryAfterClamped() throws {
        let answers = Script([tooMany("100000"), .json(200, rolloutObject())])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, policy: RetryPolicy(maxRetryAfter: 5), waits: waits)
        #expect(try api.rollout(plugin: "molam-form") != nil)
        #expect(waits.recorded == [5])
    }

    @Test("A Retry-After beyond the budget ends the operation at once with .unreachable")
    func retryAfterBeyondBudget() throws {
        let server = try LoopbackHTTPServer { _ in tooMany("45") }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        let error = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        #expect(error?.kind == .unreachable)
        #expect(error?.description.contains("retry budget") == true)
        #expect(api.requestCount == 1)
        #expect(waits.recorded.isEmpty)
    }

    @Test("When the next wait would exceed the budget, the client stops before maxAttempts")
    func budgetExhausted() throws {
        let server = try LoopbackHTTPServer { _ in .text(503, "busy") }
        defer { server.stop() }
        let waits = Waits()
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: 1, maxDelay: 8, budget: 5)
        let api = try makeAPI(server, policy: policy, waits: waits)
        let error = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        #expect(error?.kind == .unreachable)
        #expect(error?.isRetryable == true)
        // Waits 1 and 2 fit in 5 s; the third (4 s) would not.
        #expect(waits.recorded == [1, 2])
        #expect(api.requestCount == 3)
        #expect(error?.description.contains("3 attempts") == true)
        #expect(error?.description.contains("HTTP 503") == true)
    }

    @Test("Failing every attempt gives .unreachable naming the URL, the attempts and the last problem")
    func attemptsExhausted() throws {
        let server = try LoopbackHTTPServer { _ in .text(502, "bad gateway") }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        let error = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        #expect(error?.kind == .unreachable)
        let message = error?.description ?? ""
        #expect(message.contains("GET \(server.baseURL)/api/plugins/rollouts/molam-form"))
        #expect(message.contains("4 attempts"))
        #expect(message.contains("HTTP 502"))
        #expect(waits.recorded == [0.5, 1, 2])
        #expect(server.requests.count == 4)
    }

    @Test("A refused connection is retried, then reported as .unreachable")
    func connectionRefused() throws {
        let stopped = try LoopbackHTTPServer { _ in .text(200, "never") }
        let baseURL = stopped.baseURL
        stopped.stop()
        let waits = Waits()
        let api = try CentralAPI(
            endpoint: APIEndpoint(baseURL: baseURL, token: Self.token), sleep: { waits.record($0) },
            random: { $0.upperBound })
        let error = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        #expect(error?.kind == .unreachable)
        #expect(error?.description.contains("curl error 7") == true)
        #expect(api.requestCount == 4)
        #expect(waits.recorded == [0.5, 1, 2])
    }

    @Test("A dropped connection is retried")
    func droppedConnection() throws {
        let answers = Script([.dropConnection, .json(200, rolloutObject())])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        #expect(try api.rollout(plugin: "molam-form")?.id == "r-17")
        #expect(api.requestCount == 2)
        #expect(waits.recorded == [0.5])
    }

    @Test("maxAttempts 1 means a single request and no wait")
    func noRetry() throws {
        let server = try LoopbackHTTPServer { _ in .text(503, "busy") }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, policy: RetryPolicy(maxAttempts: 1), waits: waits)
        let error = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        #expect(error?.kind == .unreachable)
        #expect(error?.description.contains("after 1 attempt;") == true)
        #expect(api.requestCount == 1)
        #expect(waits.recorded.isEmpty)
    }

    // MARK: POST

    @Test("A POST sends JSON and its Idempotency-Key, and the same key again on the retry")
    func postIdempotencyKey() throws {
        let answers = Script([.text(503, "busy"), .json(201, ["id": "u-1"])])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let api = try makeAPI(server)
        let json = Data(#"{"merchant_id":"m-1","plugin_name":"molam-form"}"#.utf8)
        let answer = try api.post(path: "/api/plugins/upgrades", json: json, idempotencyKey: "run-42-upgrade")
        #expect(String(decoding: answer, as: UTF8.self) == #"{"id":"u-1"}"#)
        #expect(server.requests.count == 2)
        for request in server.requests {
            #expect(request.method == "POST")
            #expect(request.path == "/api/plugins/upgrades")
            #expect(request.header("Idempotency-Key") == "run-42-upgrade")
            #expect(request.header("Content-Type") == "application/json")
            #expect(request.header("Authorization") == "Bearer \(Self.token)")
            #expect(request.body == json)
        }
    }

    @Test("A POST answered 409 is .rejected; 404 is .notFound")
    func postRejected() throws {
        let answers = Script([.text(409, "duplicate step"), .text(404, "no such upgrade")])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let api = try makeAPI(server)
        let conflict = failure { () throws(CentralAPIError) in
            try api.post(path: "/api/plugins/upgrades/u-1/steps", json: Data("{}".utf8), idempotencyKey: "k1")
        }
        guard case .rejected(409, let message) = conflict else {
            Issue.record("expected .rejected(409), got \(String(describing: conflict))")
            return
        }
        #expect(message.contains("duplicate step"))
        let missing = failure { () throws(CentralAPIError) in
            try api.post(path: "/api/plugins/upgrades/u-9/steps", json: Data("{}".utf8), idempotencyKey: "k2")
        }
        #expect(missing?.kind == .notFound)
        #expect(api.requestCount == 2)
    }

    @Test("Bad paths and idempotency keys are refused before anything is sent", arguments: [
        ("api/plugins/upgrades", "k"), ("/api/plugins/../admin", "k"), ("/api/x?y=1", "k"),
        ("/api/x y", "k"), ("/api/plugins/upgrades", ""), ("/api/plugins/upgrades", "a b"),
        ("/api/plugins/upgrades", "key\r\nX-Evil: 1"),
    ])
    func refusedBeforeSending(path: String, key: String) throws {
        let server = try LoopbackHTTPServer { _ in .json(201, ["id": "u-1"]) }
        defer { server.stop() }
        let api = try makeAPI(server)
        let error = failure { () throws(CentralAPIError) in
            try api.post(path: path, json: Data("{}".utf8), idempotencyKey: key)
        }
        #expect(error?.kind == .invalidRequest)
        #expect(server.requests.isEmpty)
        #expect(api.requestCount == 0)
    }

    // MARK: Configuration

    @Test("A token with a line break, a space or nothing at all is refused before sending",
          arguments: ["s3cr3t-TOKEN-7f1c9a\n", "s3cr3t-TOKEN-7f1c9a\r\nX-Evil: 1", "", "two words"])
    func invalidToken(token: String) throws {
        let server = try LoopbackHTTPServer { _ in .json(200, rolloutObject()) }
        defer { server.stop() }
        let error = failure { () throws(CentralAPIError) in
            try CentralAPI(endpoint: APIEndpoint(baseURL: server.baseURL, token: token))
        }
        #expect(error?.kind == .invalidToken)
        #expect(error?.isRetryable == false)
        #expect(server.requests.isEmpty)
    }

    @Test("A base URL with a query, user info or another scheme is refused", arguments: [
        "https://api.molam.example?x=1", "ftp://api.molam.example", "api.molam.example",
        "https://user@api.molam.example", "https://",
    ])
    func invalidBaseURL(baseURL: String) {
        let error = failure { () throws(CentralAPIError) in
            try CentralAPI(endpoint: APIEndpoint(baseURL: baseURL, token: Self.token))
        }
        #expect(error?.kind == .invalidRequest)
    }

    @Test("Plain http to a remote API host is refused by the transport, not retried")
    func insecureRemote() throws {
        let waits = Waits()
        let api = try CentralAPI(
            endpoint: APIEndpoint(baseURL: "http://api.molam.example", token: Self.token),
            sleep: { waits.record($0) })
        let error = failure { () throws(CentralAPIError) in try api.rollout(plugin: "molam-form") }
        #expect(error?.kind == .invalidRequest)
        #expect(error?.description.contains("https://") == true)
        #expect(waits.recorded.isEmpty)
    }

    // MARK: Download

    @Test("A download sends the token to the API's own origin and never to another one")
    func downloadTokenOnlyToSameOrigin() throws {
        let payload = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 % 253) })
        let api = try LoopbackHTTPServer { _ in .init(body: payload) }
        defer { api.stop() }
        let cdn = try LoopbackHTTPServer { _ in .init(body: payload) }
        defer { cdn.stop() }
        let client = try makeAPI(api)

        for url in [api.baseURL + "/files/molam-form-4.0.0.zip", "http://localhost:\(cdn.port)/m.zip?sig=abc",
                    "http://127.0.0.1:\(cdn.port)/m.zip"] {
            var received = Data()
            let count = try client.download(
                url: url, maxBytes: 1 << 20, restart: { received.removeAll() },
                sink: { received.append(contentsOf: $0) })
            #expect(count == Int64(payload.count))
            #expect(received == payload)
        }
        #expect(api.requests.map { $0.header("Authorization") } == ["Bearer \(Self.token)"])
        #expect(cdn.requests.count == 2)
        #expect(cdn.requests.allSatisfy { $0.header("Authorization") == nil })
        #expect(cdn.requests.first?.path == "/m.zip?sig=abc")
    }

    @Test("A download is retried from the start: restart is called once per attempt")
    func downloadRestartsEachAttempt() throws {
        let payload = Data("the release archive".utf8)
        let answers = Script([.text(503, "busy"), .init(body: payload, behaviour: .truncated(afterBytes: 5)),
                              .init(body: payload)])
        let server = try LoopbackHTTPServer { _ in answers.next() }
        defer { server.stop() }
        let waits = Waits()
        let api = try makeAPI(server, waits: waits)
        var restarts = 0
        var file = Data()
        let count = try api.download(
            url: server.baseURL + "/r.zip", maxBytes: 1000,
            restart: {
                restarts += 1
                file.removeAll()
            },
            sink: { file.append(contentsOf: $0) })
        #expect(count == Int64(payload.count))
        #expect(file == payload)
        #expect(restarts == 3)
        #expect(api.requestCount == 3)
        #expect(waits.recorded == [0.5, 1])
    }

    @Test("A download larger than maxBytes fails without retry")
    func downloadTooLarge() throws {
        let server = try LoopbackHTTPServer { _ in
            .init(body: Data(repeating: 7, count: 100_000), behaviour: .withoutContentLength)
        }
        defer { server.stop() }
        let api = try makeAPI(server)
        var received = 0
        let error = failure { () throws(CentralAPIError) in
            try api.download(
                url: server.baseURL + "/r.zip", maxBytes: 1000, restart: {}, sink: { received += $0.count })
        }
        #expect(error?.kind == .tooLarge)
        #expect(error?.description.contains("1000-byte limit") == true)
        #expect(received <= 1000)
        #expect(api.requestCount == 1)
    }

    @Test("A download answered other than 200 fails, naming the status", arguments: [206, 404, 403])
    func downloadStatus(status: Int) throws {
        let kind: CentralAPIError.Kind = switch status {
        case 404: .notFound
        case 403: .rejected
        default: .badAnswer
        }
        let server = try LoopbackHTTPServer { _ in .text(status, "AccessDenied: signature expired") }
        defer { server.stop() }
        let api = try makeAPI(server)
        let error = failure { () throws(CentralAPIError) in
            try api.download(url: server.baseURL + "/r.zip", maxBytes: 1000, restart: {}) { _ in }
        }
        #expect(error?.kind == kind)
        #expect(error?.description.contains("\(status)") == true)
        if kind == .rejected {
            #expect(error?.description.contains("AccessDenied: signature expired") == true)
        }
    }

    @Test("A sink or restart that throws is a .localFailure, not retried")
    func downloadLocalFailure() throws {
        struct DiskFull: Error {}
        let server = try LoopbackHTTPServer { _ in .init(body: Data(repeating: 1, count: 10_000)) }
        defer { server.stop() }
        let api = try makeAPI(server)
        let sinkError = failure { () throws(CentralAPIError) in
            try api.download(url: server.baseURL + "/r.zip", maxBytes: 1 << 20, restart: {}) { _ in
                throw DiskFull()
            }
        }
        #expect(sinkError?.kind == .localFailure)
        #expect(sinkError?.description.contains("DiskFull") == true)
        let restartError = failure { () throws(CentralAPIError) in
            try api.download(
                url: server.baseURL + "/r.zip", maxBytes: 1 << 20, restart: { throw DiskFull() },
                sink: { _ in })
        }
        #expect(restartError?.kind == .localFailure)
        #expect(server.requests.count == 1)
    }

    // MARK: Secrecy

    @Test("No error message, description or dump ever contains the token")
    func tokenNeverShown() throws {
        // The fake API echoes the Authorization header into its error bodies, as a careless
        // server might: the client must not pass it on.
        let server = try LoopbackHTTPServer { request in
            let echo = "bad credentials: \(request.header("Authorization") ?? "")"
            switch request.path {
            case "/api/plugins/rollouts/malformed": return .text(200, echo)
            case "/api/plugins/rollouts/rejected": return .text(401, echo)
            case "/api/plugins/rollouts/echoing":
                var rollout = rolloutObject()
                rollout["plugin_name"] = echo
                return .json(200, rollout)
            case "/api/plugins/releases/molam-form/4.0.0": return .json(200, ["version": "4.0.0"])
            case "/big": return .text(200, echo + String(repeating: "x", count: 100))
            default: return .text(404, echo)
            }
        }
        defer { server.stop() }
        let stopped = try LoopbackHTTPServer { _ in .text(200, "") }
        stopped.stop()
        let endpoint = APIEndpoint(baseURL: server.baseURL, token: Self.token)
        let api = try CentralAPI(endpoint: endpoint, sleep: { _ in })
        let unreachableAPI = try CentralAPI(
            endpoint: APIEndpoint(baseURL: stopped.baseURL, token: Self.token), sleep: { _ in })

        let errors: [CentralAPIError?] = [
            failure { () throws(CentralAPIError) in try unreachableAPI.rollout(plugin: "molam-form") },
            failure { () throws(CentralAPIError) in try api.rollout(plugin: "malformed") },
            failure { () throws(CentralAPIError) in try api.rollout(plugin: "rejected") },
            failure { () throws(CentralAPIError) in try api.rollout(plugin: "echoing") },
            failure { () throws(CentralAPIError) in try api.release(plugin: "molam-form", version: "9.0.0") },
            failure { () throws(CentralAPIError) in try api.release(plugin: "molam-form", version: "4.0.0") },
            failure { () throws(CentralAPIError) in
                try CentralAPI(endpoint: APIEndpoint(baseURL: server.baseURL, token: Self.token + "\n"))
            },
            failure { () throws(CentralAPIError) in
                try api.post(path: "/api/../x", json: Data(), idempotencyKey: "k")
            },
            failure { () throws(CentralAPIError) in
                try api.download(
                    url: server.baseURL + "/r", maxBytes: 10,
                    restart: { throw CocoaError(.fileWriteOutOfSpace) },
                    sink: { _ in })
            },
            failure { () throws(CentralAPIError) in
                try api.download(url: server.baseURL + "/big", maxBytes: 10, restart: {}, sink: { _ in })
            },
        ]
        let kinds = Set(errors.compactMap { $0?.kind })
        #expect(kinds == Set(CentralAPIError.Kind.allCases), "every case is provoked")
        for error in errors {
            guard let error else { continue }
            for text in [error.description, String(reflecting: error), "\(error)"] {
                #expect(!text.contains(Self.token), "\(text)")
            }
        }
        var dumped = ""
        dump(endpoint, to: &dumped)
        dump(api, to: &dumped)
        for text in [endpoint.description, String(reflecting: endpoint), dumped] {
            #expect(!text.contains(Self.token), "\(text)")
        }
        #expect(server.requests.contains { $0.header("Authorization") == "Bearer \(Self.token)" })
    }

    // MARK: Helpers

    private func makeAPI(
        _ server: LoopbackHTTPServer, policy: RetryPolicy = .default, waits: Waits = Waits()
    ) throws -> CentralAPI {
        try CentralAPI(
            endpoint: APIEndpoint(baseURL: server.baseURL, token: Self.token), retry: policy,
            sleep: { waits.record($0) }, random: { $0.upperBound })
    }

    private func tooMany(_ retryAfter: String) -> LoopbackHTTPServer.Response {
        .init(status: 429, headers: [("Retry-After", retryAfter)], body: Data("slow down".utf8))
    }
}

private func rolloutObject() -> [String: Any] {
    [
        "id": "r-17", "plugin_name": "molam-form", "version": "4.0.0", "rollout_percentage": 5,
        "rollout_strategy": "random", "target_countries": NSNull(), "target_tiers": [String](),
        "status": "active", "error_threshold": 0.05,
    ]
}

private func releaseObject() -> [String: Any] {
    [
        "version": "4.0.0", "download_url": "https://cdn.molam.example/molam-form-4.0.0.zip",
        "sha256": String(repeating: "ab", count: 32), "size_bytes": 1234, "signature": NSNull(),
    ]
}

/// Answers in order; the last one repeats. The server calls `next()` from its own thread.
private final class Script: @unchecked Sendable {
    private let lock = NSLock()
    private let answers: [LoopbackHTTPServer.Response]
    private var served = 0

    init(_ answers: [LoopbackHTTPServer.Response]) { self.answers = answers }

    func next() -> LoopbackHTTPServer.Response {
        lock.lock()
        defer { lock.unlock() }
        let answer = answers[min(served, answers.count - 1)]
        served += 1
        return answer
    }
}

/// The waits the client asked for, in order, instead of sleeping through them.
private final class Waits {
    private(set) var recorded: [Double] = []
    func record(_ seconds: Double) { recorded.append(seconds) }
}

/// The error a call threw, or nil (recorded as an issue) when it returned.
private func failure<T>(_ body: () throws(CentralAPIError) -> T) -> CentralAPIError? {
    do {
        _ = try body()
        Issue.record("expected a CentralAPIError, the call returned")
        return nil
    } catch {
        return error
    }
}

extension CentralAPIError {
    /// The case without its payload, so tests can compare with `==`.
    fileprivate enum Kind: CaseIterable, Sendable {
        case unreachable, badAnswer, rejected, notFound, invalidRelease, invalidToken, invalidRequest
        case localFailure, tooLarge
    }

    fileprivate var kind: Kind {
        switch self {
        case .unreachable: .unreachable
        case .badAnswer: .badAnswer
        case .rejected: .rejected
        case .notFound: .notFound
        case .invalidRelease: .invalidRelease
        case .invalidToken: .invalidToken
        case .invalidRequest: .invalidRequest
        case .localFailure: .localFailure
        case .tooLarge: .tooLarge
        }
    }
}
