internal import CCrypto
import Foundation

/// An Ed25519 private key (RFC 8032) held by libcrypto.
///
/// One owner of an `EVP_PKEY`; not Sendable: use it from one thread at a time. The key never leaves
/// libcrypto except through `pemRepresentation()`, which the caller must store with care.
public final class Ed25519PrivateKey {
    private let key: OpaquePointer

    private init(owning key: OpaquePointer) {
        self.key = key
    }

    deinit { EVP_PKEY_free(key) }

    /// A fresh key from libcrypto's CSPRNG.
    public static func generate() throws(CryptoError) -> Ed25519PrivateKey {
        // EVP_PKEY_Q_keygen is variadic, so the two-step context API is used instead.
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else {
            throw CryptoError.fromQueue("EVP_PKEY_CTX_new_id")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1 else { throw CryptoError.fromQueue("EVP_PKEY_keygen_init") }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen(context, &key) == 1, let key else {
            throw CryptoError.fromQueue("EVP_PKEY_keygen")
        }
        return Ed25519PrivateKey(owning: key)
    }

    /// The key whose 32-byte seed is `rawSeed` (RFC 8032's "secret key"), as in its test vectors.
    public init(rawSeed: Data) throws(CryptoError) {
        guard rawSeed.count == 32 else {
            throw CryptoError(
                call: "Ed25519PrivateKey(rawSeed:)", message: "seed is \(rawSeed.count) bytes, not 32")
        }
        let made = rawSeed.withUnsafeBytes { raw in
            EVP_PKEY_new_raw_private_key(
                EVP_PKEY_ED25519, nil, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        guard let made else { throw CryptoError.fromQueue("EVP_PKEY_new_raw_private_key") }
        key = made
    }

    /// Reads an unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Any other key type, and an
    /// encrypted key, is refused.
    public init(pem: Data) throws(CryptoError) {
        let bio = try MemoryBIO(reading: pem)
        // With no callback, libcrypto "will typically prompt for the passphrase on the current
        // terminal" (PEM_read_bio_PrivateKey(3)); a CI job must fail instead, so this one refuses.
        let refusePassphrase: @convention(c) (
            UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?
        ) -> Int32 = { _, _, _, _ in -1 }
        // The queue is per thread and shared with libcurl's TLS: start it empty, so the message
        // names this call's failure only, not a stale one left by another library.
        ERR_clear_error()
        guard let read = PEM_read_bio_PrivateKey(bio.handle, nil, refusePassphrase, nil) else {
            throw CryptoError.fromQueue("PEM_read_bio_PrivateKey")
        }
        guard EVP_PKEY_is_a(read, "ED25519") == 1 else {
            let type = EVP_PKEY_get0_type_name(read).map { String(cString: $0) } ?? "unknown"
            EVP_PKEY_free(read)
            ERR_clear_error()
            throw CryptoError(
                call: "Ed25519PrivateKey(pem:)", message: "the PEM holds a \(type) key, not Ed25519")
        }
        key = read
    }

    /// The key as unencrypted PKCS#8 PEM.
    public func pemRepresentation() throws(CryptoError) -> Data {
        let bio = try MemoryBIO()
        guard PEM_write_bio_PrivateKey(bio.handle, key, nil, nil, 0, nil, nil) == 1 else {
            throw CryptoError.fromQueue("PEM_write_bio_PrivateKey")
        }
        return bio.contents()
    }

    public var publicKey: Ed25519PublicKey {
        get throws(CryptoError) {
            var raw = [UInt8](repeating: 0, count: Ed25519PublicKey.byteCount)
            var length = raw.count
            guard EVP_PKEY_get_raw_public_key(key, &raw, &length) == 1 else {
                throw CryptoError.fromQueue("EVP_PKEY_get_raw_public_key")
            }
            return try Ed25519PublicKey(rawRepresentation: Data(raw.prefix(length)))
        }
    }

    /// The 64-byte Ed25519 signature of `message` (PureEdDSA: the message is not pre-hashed).
    public func signature(for message: Data) throws(CryptoError) -> Data {
        guard let context = EVP_MD_CTX_new() else { throw CryptoError.fromQueue("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        // Ed25519 takes no digest: EVP_DigestSignInit must be given NULL (EVP_PKEY-ED25519(7)).
        guard EVP_DigestSignInit(context, nil, nil, nil, key) == 1 else {
            throw CryptoError.fromQueue("EVP_DigestSignInit")
        }
        var signature = [UInt8](repeating: 0, count: Ed25519PublicKey.signatureByteCount)
        var length = signature.count
        let status = withMessageBytes(message) { bytes, count in
            EVP_DigestSign(context, &signature, &length, bytes, count)
        }
        guard status == 1 else { throw CryptoError.fromQueue("EVP_DigestSign") }
        return Data(signature.prefix(length))
    }
}

/// An Ed25519 public key: its 32 raw bytes. A value, so it can be shared freely; libcrypto's
/// handle is made for each verification.
public struct Ed25519PublicKey: Sendable, Equatable {
    static let byteCount = 32
    static let signatureByteCount = 64

    public let rawRepresentation: Data

    public init(rawRepresentation: Data) throws(CryptoError) {
        guard rawRepresentation.count == Self.byteCount else {
            throw CryptoError(
                call: "Ed25519PublicKey(rawRepresentation:)",
                message: "key is \(rawRepresentation.count) bytes, not \(Self.byteCount)")
        }
        self.rawRepresentation = Data(rawRepresentation)
    }

    /// Whether `signature` is this key's signature of `message`. Every failure, a malformed signature
    /// included, is `false`; libcrypto's error queue is left empty so no stale error reaches a later call.
    public func isValidSignature(_ signature: Data, for message: Data) -> Bool {
        defer { ERR_clear_error() }
        guard signature.count == Self.signatureByteCount else { return false }
        let key = rawRepresentation.withUnsafeBytes { raw in
            EVP_PKEY_new_raw_public_key(
                EVP_PKEY_ED25519, nil, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        guard let key else { return false }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1 else { return false }
        let signatureBytes = [UInt8](signature)
        // 1 is a valid signature, 0 a wrong one, anything else an error: only 1 passes.
        let status = withMessageBytes(message) { bytes, count in
            EVP_DigestVerify(context, signatureBytes, signatureBytes.count, bytes, count)
        }
        return status == 1
    }
}

/// Calls `body` with a pointer to the message's bytes. An empty `Data` may have no base address, and
/// libcrypto's one-shot calls want a pointer even for zero bytes (RFC 8032's first vector is empty).
private func withMessageBytes<Result>(
    _ message: Data, _ body: (UnsafePointer<UInt8>, Int) -> Result
) -> Result {
    let bytes = [UInt8](message)
    if bytes.isEmpty {
        var placeholder: UInt8 = 0
        return withUnsafePointer(to: &placeholder) { body($0, 0) }
    }
    return bytes.withUnsafeBufferPointer { buffer in
        // A non-empty array always has storage.
        body(buffer.baseAddress!, buffer.count)
    }
}

/// A memory BIO, owned: the bridge between PEM functions and `Data`.
private final class MemoryBIO {
    let handle: OpaquePointer
    /// The bytes a read-only BIO points into; kept alive as long as the BIO.
    private let backing: UnsafeMutableRawBufferPointer?

    /// An empty, growable BIO to write into.
    init() throws(CryptoError) {
        guard let handle = BIO_new(BIO_s_mem()) else { throw CryptoError.fromQueue("BIO_new") }
        self.handle = handle
        backing = nil
    }

    /// A read-only BIO over a private copy of `data`.
    init(reading data: Data) throws(CryptoError) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 1)
        copy.copyBytes(from: data)
        guard let length = Int32(exactly: data.count),
              let handle = BIO_new_mem_buf(UnsafeRawPointer(copy.baseAddress), length) else {
            copy.deallocate()
            throw CryptoError.fromQueue("BIO_new_mem_buf")
        }
        self.handle = handle
        backing = copy
    }

    deinit {
        BIO_free(handle)
        // The copy may hold a private key: wiped before it returns to the allocator.
        if let backing {
            OPENSSL_cleanse(backing.baseAddress, backing.count)
            backing.deallocate()
        }
    }

    /// Everything written so far.
    func contents() -> Data {
        var pointer: UnsafeMutablePointer<CChar>?
        let length = ccrypto_bio_get_mem_data(handle, &pointer)
        guard let pointer, length > 0 else { return Data() }
        return Data(bytes: pointer, count: length)
    }
}
