internal import CCurl
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A request URL that passed the transport policy, parsed by libcurl's own URL parser so that
/// the host we vet is exactly the host libcurl connects to (two parsers can disagree on inputs
/// such as `http://127.0.0.1@evil.example/`).
struct TargetURL {
    /// libcurl's normalised form, handed back to libcurl for the transfer.
    let normalized: String
    /// For messages: no user info, query replaced by `?…` (signed URLs carry secrets there).
    let redacted: String
    let isHTTPS: Bool
    let isLoopback: Bool

    init(_ raw: String, allowInsecureLoopback: Bool) throws(HTTPError) {
        guard let handle = curl_url() else {
            throw .transport(code: Int32(CURLE_OUT_OF_MEMORY.rawValue), message: "curl_url failed",
                             url: URLText.redacted(raw))
        }
        defer { curl_url_cleanup(handle) }
        // Flags 0: a scheme is required, spaces and control characters are rejected.
        guard curl_url_set(handle, CURLUPART_URL, raw, 0) == CURLUE_OK,
              let scheme = Self.part(handle, CURLUPART_SCHEME)?.lowercased(),
              let host = Self.part(handle, CURLUPART_HOST), !host.isEmpty,
              let normalized = Self.part(handle, CURLUPART_URL)
        else {
            throw .invalidURL(URLText.redacted(raw))
        }
        var redacted = "\(scheme)://\(host)"
        if let port = Self.part(handle, CURLUPART_PORT) { redacted += ":\(port)" }
        redacted += Self.part(handle, CURLUPART_PATH) ?? "/"
        if Self.part(handle, CURLUPART_QUERY) != nil { redacted += "?…" }

        self.normalized = normalized
        self.redacted = redacted
        self.isLoopback = Self.isLoopback(host: host)
        switch scheme {
        case "https":
            isHTTPS = true
        case "http":
            guard allowInsecureLoopback, isLoopback else { throw .insecureURL(redacted) }
            isHTTPS = false
        default:
            throw .invalidURL(redacted)
        }
    }

    /// One component, or nil when absent (libcurl reports absence as an error code).
    private static func part(_ handle: OpaquePointer, _ which: CURLUPart) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard curl_url_get(handle, which, &value, 0) == CURLUE_OK, let value else { return nil }
        defer { curl_free(value) }
        return String(cString: value)
    }

    /// Loopback by address, not by name resolution: 127.0.0.0/8, ::1, and `localhost`, which
    /// libcurl resolves to loopback itself. Anything else (including `127.1` shorthands, which
    /// inet_pton rejects) counts as remote, the safe side.
    static func isLoopback(host: String) -> Bool {
        if host.lowercased() == "localhost" { return true }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            var address = in6_addr()
            let literal = String(host.dropFirst().dropLast())
            guard inet_pton(AF_INET6, literal, &address) == 1 else { return false }
            return withUnsafeBytes(of: &address) { bytes in
                bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1
            }
        }
        var address = in_addr()
        guard inet_pton(AF_INET, host, &address) == 1 else { return false }
        // s_addr is in network byte order: its first byte in memory is the first octet.
        return withUnsafeBytes(of: &address) { $0[0] == 127 }
    }
}
