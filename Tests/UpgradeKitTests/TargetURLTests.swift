@testable import MolamHTTP
import Testing

/// Loopback detection decides whether plain http is allowed at all, so its edges are pinned
/// directly rather than only through requests (an IPv6 server is not available in every sandbox).
@Suite("TargetURL")
struct TargetURLTests {
    @Test("Loopback means 127.0.0.0/8, ::1 or localhost, by address", arguments: [
        ("127.0.0.1", true), ("127.255.3.9", true), ("[::1]", true), ("localhost", true),
        ("LOCALHOST", true), ("128.0.0.1", false), ("[::2]", false), ("127.1", false),
        ("[::ffff:127.0.0.1]", false), ("localhost.example", false), ("0.0.0.0", false),
    ])
    func loopback(host: String, expected: Bool) {
        #expect(TargetURL.isLoopback(host: host) == expected)
    }

    @Test("Messages never carry the query string or user info")
    func redaction() throws {
        let target = try TargetURL("https://user:pw@cdn.example/r/4.0.0.zip?X-Signature=abc#frag",
                                   allowInsecureLoopback: true)
        #expect(target.redacted == "https://cdn.example/r/4.0.0.zip?…")
        #expect(target.isHTTPS)
        #expect(URLText.redacted("bad url?token=abc\n") == "bad url?…")
    }

    @Test("http to IPv6 loopback is allowed")
    func ipv6Loopback() throws {
        let target = try TargetURL("http://[::1]:8080/health", allowInsecureLoopback: true)
        #expect(target.isLoopback)
        #expect(!target.isHTTPS)
    }
}
