import MolamHTTP

/// Where the central API is and how to authenticate to it.
///
/// `description`, `debugDescription` and the reflection mirror (`dump`, `String(reflecting:)`) all
/// leave the token out: an endpoint printed into a log or a crash report must not leak it.
public struct APIEndpoint: Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable {
    /// `https://api.molam.example`, or `http://127.0.0.1:PORT` in tests; a path prefix is kept, a
    /// trailing slash is not needed.
    public var baseURL: String
    public var token: String

    public init(baseURL: String, token: String) {
        self.baseURL = baseURL
        self.token = token
    }

    public var description: String { "\(URLText.redacted(baseURL)) (bearer token not shown)" }
    public var debugDescription: String { "APIEndpoint(\(description))" }
    public var customMirror: Mirror {
        Mirror(self, children: ["baseURL": URLText.redacted(baseURL), "token": "(not shown)"])
    }
}
