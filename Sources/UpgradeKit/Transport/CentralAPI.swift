import Foundation
import MolamHTTP

/// The central API's client side (DESIGN.md "Central API"): a blocking client with bearer
/// authentication, explicit status checks and retries under a `RetryPolicy`.
///
/// Holds one `HTTPClient`, which is not Sendable: use an instance from one thread only. Reusing it
/// keeps libcurl's connection cache, so a run's requests share one TLS session.
public final class CentralAPI {
    public let endpoint: APIEndpoint
    public let retry: RetryPolicy
    /// Requests handed to the transport so far, retries included; the lead reports "requests per
    /// cron run" from it.
    public private(set) var requestCount = 0
    /// When set, API requests (not downloads) end by this time: each request's timeouts shrink to
    /// what is left, and no attempt starts and no retry wait begins that would end past it. Report
    /// delivery sets it, so a slow API cannot stretch a delivery pass.
    public var deadline: Deadline?

    private let client: any HTTPTransport
    private let base: String
    private let origin: Origin
    private let sleep: (Double) -> Void
    private let random: (ClosedRange<Double>) -> Double
    private let now: () -> Date

    public static let userAgent = "molam-upgrade/\(UpgradeKitVersion.string)"

    /// API answers are small JSON documents; anything larger is not the contract.
    private static let maxAnswerBytes: Int64 = 1 << 20

    /// Checks the endpoint before anything is sent: a token that would split the request or a
    /// base URL with a query is a configuration error, reported here rather than as a failed call.
    public init(
        endpoint: APIEndpoint, retry: RetryPolicy = .default,
        sleep: @escaping (Double) -> Void = { Thread.sleep(forTimeInterval: $0) },
        random: @escaping (ClosedRange<Double>) -> Double = { Double.random(in: $0) },
        now: @escaping () -> Date = Date.init, transport: (any HTTPTransport)? = nil
    ) throws(CentralAPIError) {
        try Self.checkToken(endpoint.token)
        var base = endpoint.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        guard let origin = Origin(base), !base.contains("?"), !base.contains("#") else {
            throw .invalidRequest("central API base URL '\(URLText.redacted(endpoint.baseURL))' is not usable: "
                + "expected https://host[:port][/prefix] without user info, query or fragment")
        }
        do {
            client = try transport ?? HTTPClient(userAgent: Self.userAgent)
        } catch {
            throw .localFailure("cannot set up the HTTP client: \(error)")
        }
        self.endpoint = endpoint
        self.retry = retry
        self.base = base
        self.origin = origin
        self.sleep = sleep
        self.random = random
        self.now = now
    }

    // MARK: Operations

    /// `GET /api/plugins/rollouts/{plugin}`, as the seeds document it (115ter): `{"rollout": {...}}`,
    /// with `{"rollout": null}` or a 404 when no rollout is active (nil); a bare rollout object is
    /// accepted too (`Rollout.decodeAnswer`).
    public func rollout(plugin: String) throws(CentralAPIError) -> Rollout? {
        try hidingToken { () throws(CentralAPIError) in
            let url = try apiURL("/api/plugins/rollouts/" + URLText.pathSegment(checkedComponent(plugin)))
            let response = try get(url)
            if response.status == 404 { return nil }
            let body = try expectOK(response, method: "GET", url: url)
            return try Rollout.decodeAnswer(body, source: URLText.redacted(url), expectedPlugin: plugin)
        }
    }

    /// `GET /api/plugins/releases/{plugin}/{version}`; `version` as the rollout wrote it. A 404 is
    /// `.notFound`; a body that is not JSON is `.badAnswer` (try later); JSON with wrong fields, or
    /// describing another plugin or version, is `.invalidRelease`.
    public func release(plugin: String, version: String) throws(CentralAPIError) -> ReleaseMetadata {
        try hidingToken { () throws(CentralAPIError) in
            guard let requested = SemanticVersion(version) else {
                throw .invalidRequest(
                    "cannot ask for release '\(version)' of \(plugin): not a semantic version")
            }
            let path = "/api/plugins/releases/" + URLText.pathSegment(try checkedComponent(plugin)) + "/"
                + URLText.pathSegment(version)
            let url = try apiURL(path)
            let response = try get(url)
            if response.status == 404 {
                throw .notFound("GET \(URLText.redacted(url)): no release \(version) of \(plugin) (HTTP 404)")
            }
            let body = try expectOK(response, method: "GET", url: url)
            let metadata: ReleaseMetadata
            do throws(ReleaseMetadataError) {
                metadata = try ReleaseMetadata.decode(body, source: URLText.redacted(url), expectedPlugin: plugin)
            } catch {
                switch error {
                case .malformed(let text): throw .badAnswer(text)
                case .invalid(let text): throw .invalidRelease(text)
                }
            }
            guard metadata.pluginName == plugin, metadata.version == requested else {
                throw .invalidRelease("release metadata from \(URLText.redacted(url)) describes "
                    + "\(metadata.pluginName) \(metadata.version), not \(plugin) \(version)")
            }
            return metadata
        }
    }

    /// POSTs `json` to `path` (e.g. `/api/plugins/upgrades`) with `Idempotency-Key: key`, retried
    /// with the same key so the API can drop duplicates; returns the body of a 2xx answer.
    public func post(path: String, json: Data, idempotencyKey: String) throws(CentralAPIError) -> Data {
        try hidingToken { () throws(CentralAPIError) in
            let url = try apiURL(path)
            let keyIsClean = !idempotencyKey.isEmpty && idempotencyKey.utf8.count <= 255
                && idempotencyKey.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f }
            guard keyIsClean else {
                throw .invalidRequest("POST \(URLText.redacted(url)): the idempotency key must be 1 to 255 "
                    + "printable ASCII characters without spaces")
            }
            var request = apiRequest(url: url, method: "POST")
            request.headers.append(("Content-Type", "application/json"))
            request.headers.append(("Idempotency-Key", idempotencyKey))
            request.body = json
            let response = try withRetries(method: "POST", url: url) { () throws(CentralAPIError) in
                let bounded = bounded(request)
                return .init { () throws(HTTPError) in try client.send(bounded) }
            }
            if (200...299).contains(response.status) { return response.body }
            throw unexpected(response, method: "POST", url: url, expected: "a 2xx status")
        }
    }

    /// Streams `url` to `sink` and returns the number of bytes received.
    ///
    /// `maxBytes` is enforced while streaming. The bearer token goes only to the API's own origin
    /// (same scheme, host and port as the base URL): a CDN or mirror must never see it. Before
    /// every attempt, the first included, `restart()` is called so the caller can truncate its
    /// file and reset its hash. Only 200 is success. The sink may see the body of an error answer
    /// before the status is known; the call then throws, and the caller discards what it wrote.
    public func download(
        url: String, maxBytes: Int64, restart: () throws -> Void,
        sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws(CentralAPIError) -> Int64 {
        var request = HTTPRequest(url: url, connectTimeout: 10, totalTimeout: 30 * 60,
                                  lowSpeedLimitBytesPerSecond: 1024, lowSpeedTimeSeconds: 30,
                                  maxBodyBytes: maxBytes)
        // On a redirect, libcurl (7.83 and later) drops a custom Authorization header when the
        // scheme, host or port changes (CVE-2022-27776), so a same-origin URL that redirects to a
        // CDN does not leak it either.
        if Origin(url) == origin {
            request.headers.append(("Authorization", "Bearer \(endpoint.token)"))
        }
        return try hidingToken { () throws(CentralAPIError) in
            // The first bytes of an answer, for the message when it turns out to be an error page.
            var head = Data()
            let response = try withRetries(method: "GET", url: url) { () throws(CentralAPIError) in
                do {
                    try restart()
                } catch {
                    throw .localFailure("GET \(URLText.redacted(url)): could not restart the download: \(error)")
                }
                head.removeAll()
                return Self.send(request, with: client, sink: { bytes in
                    if head.count < 512 { head.append(contentsOf: bytes.prefix(512 - head.count)) }
                    try sink(bytes)
                })
            }
            guard response.status == 200 else {
                var withHead = response
                withHead.body = head
                if response.status == 404 {
                    throw .notFound("GET \(URLText.redacted(url)): the release archive is not there (HTTP 404)")
                }
                throw unexpected(withHead, method: "GET", url: url, expected: "200")
            }
            return response.bytesReceived
        }
    }

    // MARK: Requests

    /// The one exit for errors of the public operations: any text the server could have put into
    /// a message (an error body, a field value it echoed) loses the token here.
    private func hidingToken<Value>(
        _ operation: () throws(CentralAPIError) -> Value
    ) throws(CentralAPIError) -> Value {
        do {
            return try operation()
        } catch {
            throw error.hiding(endpoint.token)
        }
    }

    private func apiRequest(url: String, method: String) -> HTTPRequest {
        HTTPRequest(
            url: url, method: method,
            headers: [("Authorization", "Bearer \(endpoint.token)"), ("Accept", "application/json")],
            connectTimeout: 10, totalTimeout: 30, maxBodyBytes: Self.maxAnswerBytes)
    }

    /// `request` with its timeouts cut to what is left before `deadline`.
    private func bounded(_ request: HTTPRequest) -> HTTPRequest {
        guard let deadline else { return request }
        var bounded = request
        // libcurl needs a positive timeout; an attempt is not started at all once the deadline passed.
        let left = max(0.1, min(deadline.remaining, deadline.requestTimeout))
        bounded.totalTimeout = min(request.totalTimeout, left)
        bounded.connectTimeout = min(request.connectTimeout, left)
        return bounded
    }

    private func get(_ url: String) throws(CentralAPIError) -> HTTPResponse {
        let request = apiRequest(url: url, method: "GET")
        return try withRetries(method: "GET", url: url) { () throws(CentralAPIError) in
            let bounded = bounded(request)
            return .init { () throws(HTTPError) in try client.send(bounded) }
        }
    }

    private static func send(
        _ request: HTTPRequest, with client: any HTTPTransport, sink: (UnsafeRawBufferPointer) throws -> Void
    ) -> Result<HTTPResponse, HTTPError> {
        // HTTPClient stores no reference to the sink beyond the call; its parameter is only
        // formally escaping because it is optional.
        withoutActuallyEscaping(sink) { sink in
            Result { () throws(HTTPError) in try client.send(request, body: sink) }
        }
    }

    /// Runs `attempt` until it yields a response whose status is not retryable, retrying transport
    /// errors that may clear up, within `retry.maxAttempts` and `retry.budget` seconds of waits.
    private func withRetries(
        method: String, url: String,
        attempt: () throws(CentralAPIError) -> Result<HTTPResponse, HTTPError>
    ) throws(CentralAPIError) -> HTTPResponse {
        let what = "\(method) \(URLText.redacted(url))"
        let maxAttempts = max(1, retry.maxAttempts)
        var waited = 0.0
        var attempts = 0
        while true {
            if let deadline, deadline.hasPassed {
                throw .unreachable("\(what): not sent, the delivery deadline of "
                    + "\(Self.seconds(deadline.seconds)) has passed")
            }
            attempts += 1
            let outcome = try attempt()
            // Counted once the transport had the request: a failed `restart` sent nothing.
            requestCount += 1
            let problem: String
            var retryAfter: Double?
            switch outcome {
            case .success(let response):
                guard RetryPolicy.isRetryable(status: response.status) else { return response }
                problem = "HTTP \(response.status)"
                retryAfter = response.headers["retry-after"].flatMap {
                    RetryPolicy.parseRetryAfter($0, now: now())
                }
            case .failure(let error):
                guard error.isRetryable else { throw Self.map(error, what: what) }
                problem = error.description
            }
            let tries = attempts == 1 ? "1 attempt" : "\(attempts) attempts"
            guard attempts < maxAttempts else {
                throw .unreachable(
                    "\(what): gave up after \(tries); last problem: \(problem)")
            }
            let wait = retry.delay(afterAttempt: attempts, retryAfter: retryAfter, random: random)
            guard waited + wait <= retry.budget else {
                throw .unreachable("\(what): gave up after \(tries); the next wait of "
                    + "\(Self.seconds(wait)) would exceed the retry budget of \(Self.seconds(retry.budget)) "
                    + "(\(Self.seconds(waited)) already waited); last problem: \(problem)")
            }
            if let deadline, wait >= deadline.remaining {
                throw .unreachable("\(what): gave up after \(tries); the next wait of \(Self.seconds(wait)) "
                    + "would pass the delivery deadline; last problem: \(problem)")
            }
            sleep(wait)
            waited += wait
        }
    }

    /// The funnel from a transport error that retrying would not fix to this client's errors.
    private static func map(_ error: HTTPError, what: String) -> CentralAPIError {
        switch error {
        case .invalidURL, .insecureURL:
            return .invalidRequest("\(what): \(error)")
        case .invalidHeader(let name, _) where name == "Authorization":
            return .invalidToken("\(what): the API token cannot be sent in a header (line break?)")
        case .invalidHeader:
            return .invalidRequest("\(what): \(error)")
        case .transport(_, _, let url) where url.isEmpty:
            return .localFailure("\(what): \(error)")
        case .transport, .timedOut:
            // Certificate and TLS failures land here: not worth an immediate retry, but the API
            // may well be reachable later, so the outbox keeps its reports.
            return .unreachable("\(what) failed, not retried: \(error)")
        case .tooLarge(_, let limit):
            return .tooLarge("\(what): the answer is larger than the \(limit)-byte limit")
        case .sinkFailed(_, let underlying):
            return .localFailure("\(what): could not store the download: \(underlying)")
        }
    }

    // MARK: Answers

    /// The body of a 200, or the error that describes any other final status.
    private func expectOK(
        _ response: HTTPResponse, method: String, url: String
    ) throws(CentralAPIError) -> Data {
        guard response.status == 200 else {
            throw unexpected(response, method: method, url: url, expected: "200")
        }
        return response.body
    }

    private func unexpected(
        _ response: HTTPResponse, method: String, url: String, expected: String
    ) -> CentralAPIError {
        let what = "\(method) \(URLText.redacted(url))"
        let status = response.status
        switch status {
        case 404:
            return .notFound("\(what): not found (HTTP 404)")
        case 400...499:
            let said = Self.snippet(response.body, hiding: endpoint.token)
            return .rejected(status: status, "\(what) was rejected with HTTP \(status)\(said)")
        case 300...399:
            return .badAnswer(
                "\(what) answered with a redirect (HTTP \(status)) where \(expected) was expected")
        default:
            return .badAnswer("\(what) answered HTTP \(status) where \(expected) was expected")
        }
    }

    // MARK: URLs

    private func apiURL(_ path: String) throws(CentralAPIError) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        let clean = path.hasPrefix("/")
            && path.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && $0 != "?" && $0 != "#" }
            && !segments.contains { $0 == "." || $0 == ".." }
        guard clean else {
            throw .invalidRequest("central API path '\(URLText.redacted(path))' is not usable: expected an "
                + "absolute path of printable ASCII without query, fragment or dot segments")
        }
        return base + path
    }

    /// A name used as one path segment: an empty name or a dot segment would address another
    /// resource once libcurl normalises the path.
    private func checkedComponent(_ name: String) throws(CentralAPIError) -> String {
        guard !name.isEmpty, name != ".", name != ".." else {
            throw .invalidRequest("'\(name)' cannot be used as a plugin name in a central API path")
        }
        return name
    }
}
