/// What sends a request: `HTTPClient` over libcurl, or a test's double. The central API client and
/// downloads reach the network through this and nothing else.
public protocol HTTPTransport: AnyObject {
    /// Performs `request`; with a `sink`, the body is handed over chunk by chunk as it arrives.
    func send(
        _ request: HTTPRequest, body sink: ((UnsafeRawBufferPointer) throws -> Void)?
    ) throws(HTTPError) -> HTTPResponse
}

extension HTTPTransport {
    public func send(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        try send(request, body: nil)
    }
}

extension HTTPClient: HTTPTransport {}
