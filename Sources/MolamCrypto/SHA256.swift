internal import CCrypto
import Foundation

/// A failure inside libcrypto: the call that failed and OpenSSL's own error string.
public struct CryptoError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let message: String

    public var description: String { "\(call) failed: \(message)" }

    /// Drains OpenSSL's thread-local error queue into one message.
    static func fromQueue(_ call: String) -> CryptoError {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return CryptoError(call: call, message: messages.isEmpty ? "unknown error" : messages.joined(separator: "; "))
    }
}

/// Streaming SHA-256 over libcrypto's EVP interface.
///
/// One owner of an `EVP_MD_CTX`; use it from one thread at a time. Feed bytes with `update`,
/// then call `finalize()` once.
public final class SHA256 {
    private let context: OpaquePointer
    private var finished = false

    public init() throws(CryptoError) {
        guard let context = EVP_MD_CTX_new() else { throw CryptoError.fromQueue("EVP_MD_CTX_new") }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            EVP_MD_CTX_free(context)
            throw CryptoError.fromQueue("EVP_DigestInit_ex")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "SHA256.update after finalize")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // EVP_DigestUpdate only fails on a misused context, which the precondition rules out.
        _ = EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update(_ data: Data) {
        data.withUnsafeBytes { update($0) }
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 32-byte digest. The hasher cannot be used afterwards.
    public func finalize() -> [UInt8] {
        precondition(!finished, "SHA256.finalize called twice")
        finished = true
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &digest, &length)
        return Array(digest.prefix(Int(length)))
    }

    /// The digest as 64 lowercase hex characters.
    public func finalizeHex() -> String { Self.hex(finalize()) }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// SHA-256 of an in-memory buffer, as hex.
    public static func hexDigest(of data: Data) throws(CryptoError) -> String {
        let hasher = try SHA256()
        hasher.update(data)
        return hasher.finalizeHex()
    }

    /// SHA-256 of an in-memory buffer, raw bytes.
    public static func digest(of bytes: [UInt8]) throws(CryptoError) -> [UInt8] {
        let hasher = try SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }
}
