import Foundation

/// Why a central-API operation failed. Messages name the method and the URL (query cut, never a
/// header), so they can go to the journal and the terminal as they are; the token never appears.
public enum CentralAPIError: Error, CustomStringConvertible, Sendable {
    /// The API could not be reached or kept failing (connection errors, timeouts, 408, 429, 5xx),
    /// after the retries the policy allows. The only case worth trying again later.
    case unreachable(String)
    /// A 2xx (or an unexpected redirect) whose body is not what the contract says.
    case badAnswer(String)
    /// A 4xx other than 404: authentication, permissions, a request the API refuses.
    case rejected(status: Int, String)
    case notFound(String)
    /// Release metadata that is JSON but whose fields are wrong, or that describes another release
    /// than the one asked for: refused, not retried.
    case invalidRelease(String)
    /// The token cannot be sent (empty, or a line break or other control character, typically a
    /// token file's trailing newline). Detected before any request, so it never reaches the wire.
    case invalidToken(String)
    /// A URL, path or idempotency key that this client refuses before sending: not http(s), plain
    /// http to a remote host, a query in the base URL, a dot segment...
    case invalidRequest(String)
    /// A failure on this host rather than on the network: libcurl could not be set up, or the
    /// download's `restart` or `sink` threw (disk full, ...).
    case localFailure(String)
    /// The answer or download was larger than allowed (for a release: its signed size).
    case tooLarge(String)

    public var description: String {
        switch self {
        case .unreachable(let text), .badAnswer(let text), .rejected(_, let text), .notFound(let text),
             .invalidRelease(let text), .invalidToken(let text), .invalidRequest(let text),
             .localFailure(let text), .tooLarge(let text):
            return text
        }
    }

    /// The same error with every occurrence of `secret` replaced.
    func hiding(_ secret: String) -> CentralAPIError {
        guard !secret.isEmpty else { return self }
        func clean(_ text: String) -> String { text.replacingOccurrences(of: secret, with: "(token)") }
        switch self {
        case .unreachable(let text): return .unreachable(clean(text))
        case .badAnswer(let text): return .badAnswer(clean(text))
        case .rejected(let status, let text): return .rejected(status: status, clean(text))
        case .notFound(let text): return .notFound(clean(text))
        case .invalidRelease(let text): return .invalidRelease(clean(text))
        case .invalidToken(let text): return .invalidToken(clean(text))
        case .invalidRequest(let text): return .invalidRequest(clean(text))
        case .localFailure(let text): return .localFailure(clean(text))
        case .tooLarge(let text): return .tooLarge(clean(text))
        }
    }

    /// Whether the same operation may succeed later without anyone changing anything.
    public var isRetryable: Bool {
        switch self {
        case .unreachable:
            return true
        case .badAnswer, .rejected, .notFound, .invalidRelease, .invalidToken, .invalidRequest, .localFailure,
             .tooLarge:
            return false
        }
    }
}
