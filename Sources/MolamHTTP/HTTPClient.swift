internal import CCurl
import Foundation

/// libcurl's process-wide setup must run once, before any handle exists, and is itself not
/// thread-safe; a global `let` is initialised lazily, exactly once, under a lock.
/// https://curl.se/libcurl/c/curl_global_init.html
private let curlGlobalInitCode: UInt32 = curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue

/// A blocking HTTP client over one libcurl easy handle.
///
/// Owns the handle and cleans it up in `deinit`. Not Sendable: use one instance from one thread
/// at a time (libcurl forbids concurrent use of an easy handle); create one per thread instead.
/// Reusing an instance keeps libcurl's connection cache, so sequential requests to the central
/// API share one TLS session.
///
/// Policy, not configurable per request:
/// - `https://` with peer and host verification, TLS 1.2 or later;
/// - `http://` only to a loopback host, and only if the request allows it; such requests never
///   use a proxy and never follow redirects (the caller sees the 3xx), so a local server cannot
///   bounce the agent to a remote plain-http URL;
/// - https redirects are followed at most 5 times, and only to https;
/// - status codes are returned, not thrown.
public final class HTTPClient {
    /// `CURL *` (libcurl declares it as `void`).
    private let handle: UnsafeMutableRawPointer
    private let userAgent: String

    public init(userAgent: String = "molam-upgrade") throws(HTTPError) {
        guard curlGlobalInitCode == CURLE_OK.rawValue else {
            throw .transport(code: Int32(bitPattern: curlGlobalInitCode),
                             message: "curl_global_init failed", url: "")
        }
        guard let handle = curl_easy_init() else {
            throw .transport(code: Int32(CURLE_FAILED_INIT.rawValue), message: "curl_easy_init failed",
                             url: "")
        }
        self.handle = handle
        self.userAgent = userAgent
    }

    deinit { curl_easy_cleanup(handle) }

    /// Checks `url` against the transport policy without connecting: an absolute `https://` URL, or
    /// `http://` to a loopback host when `allowInsecureLoopback`; anything else (`file://`, `ftp://`,
    /// a relative or unparsable URL) throws. Parsed by libcurl's own URL parser, as `send` does, so
    /// a caller vetting a URL it did not write (a release's `download_url`) sees exactly what the
    /// transfer would. Returns the URL redacted for messages.
    public static func checkURL(
        _ url: String, allowInsecureLoopback: Bool = true
    ) throws(HTTPError) -> String {
        try TargetURL(url, allowInsecureLoopback: allowInsecureLoopback).redacted
    }

    /// Performs `request`. With a `sink`, the body is handed over chunk by chunk as it arrives
    /// (the download step hashes and writes while streaming) and `HTTPResponse.body` is empty;
    /// without one, the body is collected. Either way `maxBodyBytes` is enforced as bytes arrive.
    public func send(
        _ request: HTTPRequest,
        body sink: ((UnsafeRawBufferPointer) throws -> Void)? = nil
    ) throws(HTTPError) -> HTTPResponse {
        let target = try TargetURL(request.url, allowInsecureLoopback: request.allowInsecureLoopback)
        let headerList = try Self.headerList(request.headers, url: target.redacted)
        defer { curl_slist_free_all(headerList) }
        let transfer = Transfer(limit: request.maxBodyBytes, sink: sink)

        // Start from defaults so nothing leaks from the previous request, and reset again after
        // the transfer so the handle keeps no pointer into `transfer` or `headerList`.
        curl_easy_reset(handle)
        defer { curl_easy_reset(handle) }
        let options = OptionSetter(handle: handle, url: target.redacted)
        try configure(options, request: request, target: target, headerList: headerList)
        try options.set(CURLOPT_ERRORBUFFER, pointer: transfer.errorBuffer)
        let userdata = Unmanaged.passUnretained(transfer).toOpaque()
        try options.set(CURLOPT_WRITEDATA, pointer: userdata)
        try options.set(CURLOPT_HEADERDATA, pointer: userdata)
        try options.check(ccurl_easy_setopt_write_function(handle) { data, size, count, userdata in
            guard let userdata else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
            let length = size * count
            // Returning fewer bytes than given makes libcurl abort with CURLE_WRITE_ERROR.
            return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
        }, "CURLOPT_WRITEFUNCTION")
        try options.check(ccurl_easy_setopt_header_function(handle) { data, size, count, userdata in
            guard let userdata else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
            let length = size * count
            transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: length))
            return length
        }, "CURLOPT_HEADERFUNCTION")

        let code = withExtendedLifetime(transfer) { curl_easy_perform(handle) }
        guard code == CURLE_OK else {
            throw transfer.error(for: code, url: target.redacted)
        }
        var status = 0
        _ = ccurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.body,
                            bytesReceived: transfer.received)
    }

    private func configure(
        _ options: OptionSetter, request: HTTPRequest, target: TargetURL,
        headerList: UnsafeMutablePointer<curl_slist>?
    ) throws(HTTPError) {
        try options.set(CURLOPT_URL, string: target.normalized)
        // Defence in depth behind TargetURL: libcurl itself refuses any other protocol.
        try options.set(CURLOPT_PROTOCOLS_STR, string: "http,https")
        if target.isHTTPS {
            try options.set(CURLOPT_FOLLOWLOCATION, long: 1)
            try options.set(CURLOPT_MAXREDIRS, long: 5)
            try options.set(CURLOPT_REDIR_PROTOCOLS_STR, string: "https")
        } else {
            try options.set(CURLOPT_FOLLOWLOCATION, long: 0)
        }
        if target.isLoopback {
            // An empty proxy disables http_proxy/https_proxy from the environment: loopback
            // traffic must never leave the host.
            try options.set(CURLOPT_PROXY, string: "")
        }
        try options.set(CURLOPT_SSL_VERIFYPEER, long: 1)
        try options.set(CURLOPT_SSL_VERIFYHOST, long: 2)
        try options.set(CURLOPT_SSLVERSION, long: Int(CURL_SSLVERSION_TLSv1_2))
        // Without NOSIGNAL libcurl uses SIGALRM for DNS timeouts, which is unsafe with threads.
        try options.set(CURLOPT_NOSIGNAL, long: 1)
        // 0 means "no timeout" to libcurl; clamp so a zero from a config never disables it.
        try options.set(CURLOPT_CONNECTTIMEOUT_MS, long: Self.milliseconds(request.connectTimeout))
        try options.set(CURLOPT_TIMEOUT_MS, long: Self.milliseconds(request.totalTimeout))
        try options.set(CURLOPT_LOW_SPEED_LIMIT, long: max(1, request.lowSpeedLimitBytesPerSecond))
        try options.set(CURLOPT_LOW_SPEED_TIME, long: max(1, request.lowSpeedTimeSeconds))
        // Rejects early when Content-Length already exceeds the cap; the write callback enforces
        // it for bodies without one.
        try options.set(CURLOPT_MAXFILESIZE_LARGE, int64: request.maxBodyBytes)
        try options.set(CURLOPT_USERAGENT, string: userAgent)
        // CURLOPT_ACCEPT_ENCODING stays unset on purpose: a server compressing a .tar.gz on the
        // fly would make libcurl hand us decoded bytes, and the SHA-256 would not match.
        try options.set(CURLOPT_HTTPHEADER, pointer: UnsafeMutableRawPointer(headerList))

        let method = request.method.uppercased()
        precondition(!method.isEmpty && method.allSatisfy { $0.isASCII && $0.isLetter },
                     "HTTP method must be a token: \(request.method)")
        if let body = request.body {
            try options.set(CURLOPT_POSTFIELDSIZE_LARGE, int64: Int64(body.count))
            // COPYPOSTFIELDS copies the bytes now, so `body` need not outlive this call. An empty
            // Data may have no address; libcurl needs a non-null one even for zero bytes.
            let code = body.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else {
                    return ccurl_easy_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
                }
                let bytes = UnsafeMutableRawPointer(mutating: base)
                return ccurl_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, bytes)
            }
            try options.check(code, "CURLOPT_COPYPOSTFIELDS")
            if method != "POST" { try options.set(CURLOPT_CUSTOMREQUEST, string: method) }
        } else {
            switch method {
            case "GET":
                try options.set(CURLOPT_HTTPGET, long: 1)
            case "HEAD":
                try options.set(CURLOPT_NOBODY, long: 1)
            case "POST":
                // An explicit empty body: otherwise libcurl would read the body from stdin.
                try options.set(CURLOPT_POSTFIELDSIZE_LARGE, int64: 0)
                try options.set(CURLOPT_COPYPOSTFIELDS, string: "")
            default:
                try options.set(CURLOPT_CUSTOMREQUEST, string: method)
            }
        }
    }

    private static func milliseconds(_ seconds: Double) -> Int {
        guard seconds.isFinite, seconds > 0 else { return 1 }
        return max(1, Int(min(seconds * 1000, Double(Int32.max))))
    }

    /// Builds libcurl's header list, refusing names and values that would split the request
    /// (a token read from a file with a trailing newline must not become a second header).
    private static func headerList(
        _ headers: [(name: String, value: String)], url: String
    ) throws(HTTPError) -> UnsafeMutablePointer<curl_slist>? {
        var list: UnsafeMutablePointer<curl_slist>?
        var namesSent = Set<String>()
        for (name, value) in headers {
            let nameIsToken = !name.isEmpty && name.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII && scalar.value > 0x20 && scalar.value < 0x7f && scalar != ":"
            }
            let valueIsClean = !value.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" }
            guard nameIsToken, valueIsClean else {
                curl_slist_free_all(list)
                throw .invalidHeader(name: nameIsToken ? name : "(malformed name)", url: url)
            }
            namesSent.insert(name.lowercased())
            // "Name:" would tell libcurl to remove the header; "Name;" sends it empty.
            let line = value.isEmpty ? "\(name);" : "\(name): \(value)"
            guard let appended = curl_slist_append(list, line) else {
                curl_slist_free_all(list)
                throw .transport(code: Int32(CURLE_OUT_OF_MEMORY.rawValue),
                                 message: "curl_slist_append failed", url: url)
            }
            list = appended
        }
        if !namesSent.contains("expect") {
            // libcurl sends `Expect: 100-continue` for larger bodies and then waits up to a second
            // for servers that never answer it; our bodies are small JSON documents.
            guard let appended = curl_slist_append(list, "Expect:") else {
                curl_slist_free_all(list)
                throw .transport(code: Int32(CURLE_OUT_OF_MEMORY.rawValue),
                                 message: "curl_slist_append failed", url: url)
            }
            list = appended
        }
        return list
    }
}

@available(*, unavailable, message: "an easy handle must not be shared between threads")
extension HTTPClient: Sendable {}

/// The error funnel for curl_easy_setopt: any failure names the option and keeps libcurl's code.
private struct OptionSetter {
    let handle: UnsafeMutableRawPointer
    let url: String

    func check(_ code: CURLcode, _ option: String) throws(HTTPError) {
        guard code == CURLE_OK else {
            let message = String(cString: curl_easy_strerror(code))
            throw .transport(code: Int32(bitPattern: code.rawValue), message: "\(option): \(message)",
                             url: url)
        }
    }

    func set(_ option: CURLoption, long value: Int) throws(HTTPError) {
        try check(ccurl_easy_setopt_long(handle, option, value), "\(option)")
    }

    func set(_ option: CURLoption, string value: String) throws(HTTPError) {
        try check(ccurl_easy_setopt_string(handle, option, value), "\(option)")
    }

    func set(_ option: CURLoption, int64 value: Int64) throws(HTTPError) {
        try check(ccurl_easy_setopt_int64(handle, option, curl_off_t(value)), "\(option)")
    }

    func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws(HTTPError) {
        try check(ccurl_easy_setopt_pointer(handle, option, value), "\(option)")
    }
}

/// State of one transfer, reached from libcurl's callbacks through `Unmanaged` user data.
/// Lives on the stack of `send`, which outlives `curl_easy_perform`.
private final class Transfer {
    let limit: Int64
    let sink: ((UnsafeRawBufferPointer) throws -> Void)?
    /// CURLOPT_ERRORBUFFER: libcurl writes a detail message here that strerror lacks.
    let errorBuffer: UnsafeMutablePointer<CChar>
    var body = Data()
    var received: Int64 = 0
    var headers: [String: String] = [:]
    var exceededLimit = false
    var sinkError: (any Error)?

    init(limit: Int64, sink: ((UnsafeRawBufferPointer) throws -> Void)?) {
        self.limit = limit
        self.sink = sink
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit { errorBuffer.deallocate() }

    /// False aborts the transfer.
    func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        received += Int64(bytes.count)
        guard received <= limit else {
            exceededLimit = true
            return false
        }
        guard let sink else {
            body.append(contentsOf: bytes)
            return true
        }
        do {
            try sink(bytes)
            return true
        } catch {
            sinkError = error
            return false
        }
    }

    func receiveHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self)
        // A status line starts a new response (after a redirect or `100 Continue`): only the
        // final response's headers are reported.
        if line.hasPrefix("HTTP/") {
            headers = [:]
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { return }
        headers[name] = value
    }

    /// The one funnel from a failed `curl_easy_perform` to a typed error. Our own aborts come
    /// first: libcurl reports them only as a generic write error.
    func error(for code: CURLcode, url: String) -> HTTPError {
        if let sinkError { return .sinkFailed(url: url, underlying: "\(sinkError)") }
        if exceededLimit || code == CURLE_FILESIZE_EXCEEDED { return .tooLarge(url: url, limit: limit) }
        if code == CURLE_OPERATION_TIMEDOUT { return .timedOut(url: url) }
        let summary = String(cString: curl_easy_strerror(code))
        let detail = String(cString: errorBuffer).trimmingCharacters(in: .whitespacesAndNewlines)
        let message = detail.isEmpty || detail == summary ? summary : "\(summary): \(detail)"
        return .transport(code: Int32(bitPattern: code.rawValue), message: message, url: url)
    }
}
