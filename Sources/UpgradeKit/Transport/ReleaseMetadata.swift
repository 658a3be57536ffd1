import Foundation

/// A release as the central API describes it (`GET /api/plugins/releases/{plugin}/{version}`), and as
/// `molam-upgrade release sign` produces it for plugin teams' CI.
///
/// The signature covers `signedMessage`: the plugin name, the version, the archive's SHA-256 and its
/// size, the facts that pin the bytes to install. The download URL is not signed, so a release can
/// move between mirrors without being signed again; the hash and size make any mirror's bytes exact.
public struct ReleaseMetadata: Sendable, Equatable {
    public var pluginName: String
    public var version: SemanticVersion
    public var downloadURL: String
    /// Lowercase hexadecimal, 64 characters.
    public var sha256: String
    public var sizeBytes: Int64
    /// Base64 Ed25519 signature over `signedMessage`, or nil for an unsigned release.
    public var signature: String?

    public init(
        pluginName: String, version: SemanticVersion, downloadURL: String, sha256: String, sizeBytes: Int64,
        signature: String? = nil
    ) {
        self.pluginName = pluginName
        self.version = version
        self.downloadURL = downloadURL
        self.sha256 = sha256.lowercased()
        self.sizeBytes = sizeBytes
        self.signature = signature
    }

    /// The exact bytes an Ed25519 release signature covers: a domain-separation line, then one
    /// `key=value` line per pinned fact, each ending in a newline. Names and versions never contain
    /// a newline (decoding refuses them), so the encoding is unambiguous.
    public var signedMessage: Data {
        Data((
            "molam-release-signature-v1\n"
                + "plugin_name=\(pluginName)\n"
                + "version=\(version)\n"
                + "sha256=\(sha256)\n"
                + "size_bytes=\(sizeBytes)\n"
        ).utf8)
    }

    /// The JSON object the API serves and `release sign` prints (keys as in DESIGN.md).
    public var jsonObject: [String: Any] {
        var object: [String: Any] = [
            "plugin_name": pluginName, "version": version.description, "download_url": downloadURL,
            "sha256": sha256, "size_bytes": sizeBytes,
        ]
        object["signature"] = signature ?? NSNull()
        return object
    }

    /// Decodes the API's answer. `plugin_name` may be absent (DESIGN.md's answer has none); then
    /// `expectedPlugin` is used. Every problem names `source` (the URL) and the field.
    public static func decode(
        _ data: Data, source: String, expectedPlugin: String
    ) throws(ReleaseMetadataError) -> ReleaseMetadata {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .malformed("release metadata from \(source) is not a JSON object")
        }
        func string(_ key: String) throws(ReleaseMetadataError) -> String {
            guard let value = object[key] as? String, !value.isEmpty else {
                throw .invalid("release metadata from \(source): field '\(key)' is missing or not a string")
            }
            guard !value.contains(where: { $0.isNewline || $0 == "\0" }) else {
                throw .invalid("release metadata from \(source): field '\(key)' contains a line break")
            }
            return value
        }
        let plugin = object["plugin_name"] == nil ? expectedPlugin : try string("plugin_name")
        let versionText = try string("version")
        guard let version = SemanticVersion(versionText) else {
            throw .invalid("release metadata from \(source): field 'version' ('\(versionText)') is not a semantic version")
        }
        let url = try string("download_url")
        let sha = try string("sha256")
        guard sha.count == 64, sha.allSatisfy(\.isHexDigit) else {
            throw .invalid("release metadata from \(source): field 'sha256' is not 64 hexadecimal characters")
        }
        guard let size = JSONNumbers.integer(object["size_bytes"]), size > 0 else {
            throw .invalid("release metadata from \(source): field 'size_bytes' is missing or not a positive integer")
        }
        var signature: String?
        switch object["signature"] {
        case nil, is NSNull: signature = nil
        case let text as String where !text.isEmpty: signature = text
        default:
            throw .invalid("release metadata from \(source): field 'signature' is not a string")
        }
        return ReleaseMetadata(
            pluginName: plugin, version: version, downloadURL: url, sha256: sha, sizeBytes: size, signature: signature)
    }
}

/// Why release metadata could not be used. `malformed`: not JSON at all (a proxy's error page,
/// say: worth trying again later). `invalid`: JSON whose fields are wrong (refused).
public enum ReleaseMetadataError: Error, CustomStringConvertible, Sendable, Equatable {
    case malformed(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .malformed(let text), .invalid(let text): text
        }
    }
}

/// Numbers from JSONSerialization, which hands them over as NSNumber, and `true`/`false` too (as
/// NSNumbers whose Objective-C type is `c`); a boolean is never taken for a number.
public enum JSONNumbers {
    public static func double(_ value: Any?) -> Double? {
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        return number.doubleValue
    }

    /// Integral numbers only: `5` and `5.0`, not `5.5`.
    public static func integer(_ value: Any?) -> Int64? {
        double(value).flatMap { Int64(exactly: $0) }
    }
}
