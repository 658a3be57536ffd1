import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: its name, the path it worked on, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let call: String
    public let path: String?
    public let errno: Int32

    public init(call: String, path: String? = nil, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var message: String { String(cString: strerror(errno)) }

    public var description: String {
        if let path { return "\(call) \(path): \(message)" }
        return "\(call): \(message)"
    }

    /// Out of space or quota: reported as such so the user knows what to free.
    public var isOutOfSpace: Bool { errno == ENOSPC || errno == EDQUOT }
}

/// The one funnel for raw syscalls: retries EINTR, turns -1 into a typed `SystemError` that keeps
/// the call's name, the path and errno.
@discardableResult
public func systemCall<T: BinaryInteger>(
    _ name: String, path: String? = nil, _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(call: name, path: path, errno: code)
    }
}
