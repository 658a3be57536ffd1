import Foundation

/// One HTTP exchange to perform. Plain data; the policy (TLS, loopback-only http, redirects)
/// lives in `HTTPClient`, so a request cannot weaken it.
public struct HTTPRequest: Sendable {
    public var url: String
    public var method: String
    /// Sent in order; duplicates are allowed (a dictionary would lose them).
    public var headers: [(name: String, value: String)]
    public var body: Data?
    /// Seconds to establish the connection, TLS included.
    public var connectTimeout: Double
    /// Seconds for the whole exchange, body included.
    public var totalTimeout: Double
    /// A transfer slower than this for `lowSpeedTimeSeconds` is aborted as timed out: a stalled
    /// mirror should fail fast rather than hold the cron run until `totalTimeout`.
    public var lowSpeedLimitBytesPerSecond: Int
    public var lowSpeedTimeSeconds: Int
    /// Largest body accepted, counted while it streams in, whether collected or sent to a sink.
    public var maxBodyBytes: Int64
    /// Permits `http://` to loopback hosts (test servers, the site's own health check); never
    /// to any other host.
    public var allowInsecureLoopback: Bool

    public init(
        url: String,
        method: String = "GET",
        headers: [(name: String, value: String)] = [],
        body: Data? = nil,
        connectTimeout: Double = 10,
        totalTimeout: Double = 60,
        lowSpeedLimitBytesPerSecond: Int = 1024,
        lowSpeedTimeSeconds: Int = 30,
        maxBodyBytes: Int64 = 64 * 1024 * 1024,
        allowInsecureLoopback: Bool = true
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.lowSpeedLimitBytesPerSecond = lowSpeedLimitBytesPerSecond
        self.lowSpeedTimeSeconds = lowSpeedTimeSeconds
        self.maxBodyBytes = maxBodyBytes
        self.allowInsecureLoopback = allowInsecureLoopback
    }
}

/// What the server answered. Any status is a response, not an error: callers decide what a
/// 404 or a 429 means for them.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names lowercased; when a name repeats, the last value wins. Only the final
    /// response's headers (not those of redirects or `100 Continue`).
    public var headers: [String: String]
    /// The collected body; empty when the body went to a sink.
    public var body: Data
    /// Body bytes received, whether collected or streamed.
    public var bytesReceived: Int64

    public init(status: Int, headers: [String: String], body: Data, bytesReceived: Int64) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bytesReceived = bytesReceived
    }
}
