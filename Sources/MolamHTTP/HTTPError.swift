/// Why an HTTP exchange produced no response. URLs are carried without their query string or
/// user info (signed download URLs and credentials must not reach logs); headers never appear.
public enum HTTPError: Error, CustomStringConvertible, Sendable {
    case invalidURL(String)
    /// `http://` to a host that is not loopback, or any `http://` when loopback is not allowed.
    case insecureURL(String)
    /// A header name or value that would break the request framing (CR, LF, NUL, or a bad name);
    /// typically a token file with a trailing newline. Carries the name only, never the value.
    case invalidHeader(name: String, url: String)
    /// libcurl's code, with `curl_easy_strerror` and the detail from CURLOPT_ERRORBUFFER. An empty
    /// `url` means libcurl itself could not be set up (no request was attempted).
    case transport(code: Int32, message: String, url: String)
    case timedOut(url: String)
    case tooLarge(url: String, limit: Int64)
    /// The body sink threw (disk full, hash mismatch decided early, ...).
    case sinkFailed(url: String, underlying: String)

    public var description: String {
        switch self {
        case .invalidURL(let url):
            return "invalid URL '\(url)': expected an absolute http:// or https:// URL"
        case .insecureURL(let url):
            return "refusing insecure URL \(url): use https:// (plain http is allowed only to loopback)"
        case .invalidHeader(let name, let url):
            return "invalid HTTP header '\(name)' for \(url): names and values must not contain line breaks"
        case .transport(let code, let message, let url) where url.isEmpty:
            return "libcurl setup failed: \(message) (curl error \(code))"
        case .transport(let code, let message, let url):
            return "HTTP request to \(url) failed: \(message) (curl error \(code))"
        case .timedOut(let url):
            return "HTTP request to \(url) timed out"
        case .tooLarge(let url, let limit):
            return "response from \(url) exceeds the limit of \(limit) bytes"
        case .sinkFailed(let url, let underlying):
            return "could not store the response from \(url): \(underlying)"
        }
    }

    /// Whether trying again later may succeed: the network or the server was unavailable, as
    /// opposed to a refused URL, a bad certificate or a local failure.
    public var isRetryable: Bool {
        switch self {
        case .timedOut:
            return true
        case .transport(let code, _, _):
            return Self.retryableCurlCodes.contains(code)
        case .invalidURL, .insecureURL, .invalidHeader, .tooLarge, .sinkFailed:
            return false
        }
    }

    // Raw values from curl.h's CURLcode, kept here so that callers need not see libcurl.
    private static let retryableCurlCodes: Set<Int32> = [
        5,  // CURLE_COULDNT_RESOLVE_PROXY
        6,  // CURLE_COULDNT_RESOLVE_HOST: resolvers on shared hosts fail transiently
        7,  // CURLE_COULDNT_CONNECT
        16, // CURLE_HTTP2
        18, // CURLE_PARTIAL_FILE: the connection closed mid-body
        28, // CURLE_OPERATION_TIMEDOUT
        35, // CURLE_SSL_CONNECT_ERROR: handshake cut short, not a verification failure
        52, // CURLE_GOT_NOTHING
        55, // CURLE_SEND_ERROR
        56, // CURLE_RECV_ERROR
        92, // CURLE_HTTP2_STREAM
    ]
}
