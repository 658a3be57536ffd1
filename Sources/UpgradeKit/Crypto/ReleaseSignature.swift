import Foundation
import MolamCrypto

/// A release-signing public key as written in agent.json's `release_public_keys`: base64 of the
/// 32 raw bytes (what `release keygen` writes to the .pub file), optionally prefixed `ed25519:`.
public struct ReleasePublicKey: Sendable, Equatable {
    static let prefix = "ed25519:"

    public let key: Ed25519PublicKey
    /// First 16 hex characters of the SHA-256 of the raw key: enough to tell keys apart in messages
    /// and journals without printing the whole key.
    public let keyID: String

    /// Parses a key. Errors describe the text's shape but never echo it: a private key pasted into
    /// the wrong field must not end up in a log.
    public init(text: String) throws(ReleaseSignatureError) {
        var body = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        if body.lowercased().hasPrefix(Self.prefix) {
            body = body.dropFirst(Self.prefix.count)
        } else if let colon = body.firstIndex(of: ":") {
            // Base64 has no colon, so this is another key type; its name is echoed only if it looks like one.
            let type = body[..<colon]
            let named = type.count <= 16 && type.allSatisfy { $0.isLetter || $0.isNumber } ? " '\(type)'" : ""
            throw .malformedKey(
                "release public key has an unsupported type\(named) (expected ed25519:<base64>)")
        }
        guard !body.isEmpty else {
            throw .malformedKey("release public key is empty (expected ed25519:<base64>)")
        }
        guard let raw = Data(base64Encoded: String(body)) else {
            throw .malformedKey("release public key is not base64 "
                + "(expected ed25519:<base64 of 32 bytes>, as in the .pub file)")
        }
        let key: Ed25519PublicKey
        do {
            key = try Ed25519PublicKey(rawRepresentation: raw)
        } catch {
            throw .malformedKey("release public key is \(raw.count) bytes, not 32 (an Ed25519 public key)")
        }
        let digest: [UInt8]
        do {
            digest = try SHA256.digest(of: [UInt8](raw))
        } catch {
            throw .malformedKey("release public key could not be hashed: \(error)")
        }
        self.key = key
        keyID = String(SHA256.hex(digest).prefix(16))
    }

    public init(_ key: Ed25519PublicKey) throws(ReleaseSignatureError) {
        try self.init(text: Self.prefix + key.rawRepresentation.base64EncodedString())
    }

    /// The canonical form, as `release keygen` writes it: `ed25519:<base64>`.
    public var text: String { Self.prefix + key.rawRepresentation.base64EncodedString() }
}

/// Why a release's signature is refused. Each description is one line naming the release.
public enum ReleaseSignatureError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Keys are configured, but the release carries no signature.
    case unsigned(plugin: String, version: String)
    /// The signature does not verify under any configured key.
    case badSignature(plugin: String, version: String)
    /// The signature is not base64 of 64 bytes.
    case malformedSignature(plugin: String, version: String)
    /// A configured key cannot be used; the text says what is wrong without printing the key.
    case malformedKey(String)

    public var description: String {
        switch self {
        case .unsigned(let plugin, let version):
            "release \(plugin) \(version) is not signed, but release_public_keys are configured"
        case .badSignature(let plugin, let version):
            "release \(plugin) \(version) has a signature that does not verify under any configured release "
                + "public key (its metadata was altered, or it was signed with another key)"
        case .malformedSignature(let plugin, let version):
            "release \(plugin) \(version) has a malformed signature "
                + "(expected base64 of a 64-byte Ed25519 signature)"
        case .malformedKey(let text):
            text
        }
    }
}

/// Ed25519 signatures over `ReleaseMetadata.signedMessage`: the plugin name, version, SHA-256 and
/// size of a release archive.
public enum ReleaseSignature {
    /// No keys configured: accepts anything (returns nil), so sites without keys keep working. Keys
    /// configured: the signature must verify under at least one (several allow a key rotation);
    /// returns the keyID that verified it.
    public static func verify(
        _ release: ReleaseMetadata, keys: [ReleasePublicKey]
    ) throws(ReleaseSignatureError) -> String? {
        guard !keys.isEmpty else { return nil }
        let plugin = release.pluginName
        let version = release.version.description
        guard let text = release.signature else { throw .unsigned(plugin: plugin, version: version) }
        guard let signature = Data(base64Encoded: text), signature.count == 64 else {
            throw .malformedSignature(plugin: plugin, version: version)
        }
        let message = release.signedMessage
        guard let match = keys.first(where: { $0.key.isValidSignature(signature, for: message) }) else {
            throw .badSignature(plugin: plugin, version: version)
        }
        return match.keyID
    }

    /// The base64 signature of `release` (its own `signature` field is ignored).
    public static func sign(
        _ release: ReleaseMetadata, with key: Ed25519PrivateKey
    ) throws(CryptoError) -> String {
        try key.signature(for: release.signedMessage).base64EncodedString()
    }
}
