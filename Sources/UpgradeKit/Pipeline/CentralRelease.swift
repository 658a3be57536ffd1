import Foundation
import MolamCrypto
import MolamHTTP
#if canImport(Glibc)
import Glibc
#endif

/// What the pipeline needs from the central API: the client built from the configuration, the
/// rollout, the signed release metadata, and the download, each failure mapped to DESIGN.md's exit
/// codes (unreachable or garbage: 75, try later; a release that fails its checks: 4).
enum CentralRelease {
    static func client(_ context: UpgradeContext) throws(UpgradeError) -> CentralAPI {
        guard let url = context.agent.apiURL else {
            throw .configuration(
                "no central API is configured (api_url in \(context.agent.source ?? AgentConfiguration.defaultPath)); "
                    + "pass --archive PATH --sha256 HEX to upgrade from a local release")
        }
        let token: String
        do { token = try context.agent.readToken() } catch { throw .configuration("\(error)") }
        do {
            return try CentralAPI(
                endpoint: APIEndpoint(baseURL: url, token: token), retry: context.retry, sleep: context.services.sleep,
                transport: try context.services.httpTransport())
        } catch {
            throw .unavailable("\(error)")
        }
    }

    /// The merchant as the rollout formula sees it.
    static func merchant(_ context: UpgradeContext) -> MerchantProfile {
        MerchantProfile(
            merchantID: context.agent.merchantID ?? "", country: context.agent.country, tier: context.agent.tier)
    }

    static func rollout(_ api: CentralAPI, plugin: String) throws(UpgradeError) -> Rollout? {
        do {
            return try api.rollout(plugin: plugin)
        } catch {
            throw map(error, doing: "the rollout check")
        }
    }

    /// The release metadata, checked before anything is downloaded: the plugin and version it names,
    /// its Ed25519 signature against the configured keys, and the version against the highest this
    /// install has accepted (a replayed old release is refused unless `--force`).
    static func release(
        _ api: CentralAPI, plugin: String, version: SemanticVersion, context: UpgradeContext, policy: ReleasePolicy
    ) throws(UpgradeError) -> (ReleaseMetadata, String) {
        let release: ReleaseMetadata
        do {
            release = try api.release(plugin: plugin, version: version.description)
        } catch {
            if case .notFound(let text) = error {
                throw .refused("release \(plugin) \(version) is not on the central API: \(text)")
            }
            throw map(error, doing: "the release check")
        }
        guard release.pluginName == plugin, release.version == version else {
            throw .refused(
                "the central API answered release \(release.pluginName) \(release.version) for \(plugin) \(version)")
        }
        // The URL is not signed: vetted here, before any signature work, connection or file access.
        try checkDownloadURL(release.downloadURL, label: "release \(plugin) \(version)")
        let keys = try publicKeys(context)
        let signer: String?
        do {
            signer = try ReleaseSignature.verify(release, keys: keys)
        } catch {
            throw .refused("\(error)")
        }
        try policy.checkFloor(plugin: plugin, version: version)
        let how = signer.map { "signature verified (key \($0))" } ?? "unsigned (no release_public_keys configured)"
        return (release, how)
    }

    static func publicKeys(_ context: UpgradeContext) throws(UpgradeError) -> [ReleasePublicKey] {
        var keys: [ReleasePublicKey] = []
        for (index, text) in context.agent.releasePublicKeys.enumerated() {
            do {
                keys.append(try ReleasePublicKey(text: text))
            } catch {
                throw .configuration(
                    "\(context.agent.source ?? "configuration"): key 'release_public_keys[\(index)]': \(error)")
            }
        }
        return keys
    }

    /// A release's `download_url` comes from the API and is not signed, so it is held to the
    /// transport policy before anything touches it: `https://`, `http://` only to loopback, or a
    /// path on the API itself (`/downloads/...`, joined to the API's base URL). `file://`, `ftp://`
    /// and anything else are refused (exit 4): a `file://` URL would make the agent, as root, read
    /// any file of the host (a FIFO hangs the run; a secret's SHA-256 would land in the refusal,
    /// the journal and the reports).
    static func checkDownloadURL(_ url: String, label: String) throws(UpgradeError) {
        if url.hasPrefix("/"), !url.hasPrefix("//") { return }
        do {
            _ = try HTTPClient.checkURL(url)
        } catch {
            throw .refused("\(label): download_url '\(URLText.redacted(url))' is refused: only https:// "
                + "(plain http:// to loopback only) or a path on the central API can be downloaded; "
                + "nothing was fetched")
        }
    }

    /// Streams the release to `destination`, hashing as it arrives, then holds it to the signed size
    /// and SHA-256.
    static func download(
        _ release: ReleaseMetadata, api: CentralAPI?, baseURL: String?, to destination: String, maxBytes: Int64
    ) throws -> Int64 {
        let label = "release \(release.pluginName) \(release.version)"
        try checkDownloadURL(release.downloadURL, label: label)
        return try download(
            url: release.downloadURL, sha256: release.sha256, sizeBytes: release.sizeBytes,
            label: label, api: api, baseURL: baseURL, to: destination,
            maxBytes: maxBytes)
    }

    /// A client for `--archive URL` on a host with no central API configured. Its origin is in the
    /// reserved `.invalid` domain (RFC 6761), so its placeholder credential matches no URL and is
    /// never sent: the download goes out without any Authorization header.
    static func downloadClient(_ context: UpgradeContext) throws(UpgradeError) -> CentralAPI {
        do {
            return try CentralAPI(
                endpoint: APIEndpoint(baseURL: "https://no-central-api.invalid", token: "unused"), retry: context.retry,
                sleep: context.services.sleep, transport: try context.services.httpTransport())
        } catch {
            throw .failed("\(error)")
        }
    }

    static func download(
        url: String, sha256: String, sizeBytes: Int64?, label: String, api: CentralAPI?, baseURL: String?,
        to destination: String, maxBytes: Int64
    ) throws -> Int64 {
        let cap = min(maxBytes, sizeBytes ?? maxBytes)
        var absolute = url
        if url.hasPrefix("/"), let baseURL {
            absolute = (baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL) + url
        }
        guard let api else { throw UpgradeError.configuration("no HTTP client to download \(absolute)") }
        let fd = try systemCall("open", path: destination) {
            open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        }
        defer { close(fd) }
        let copy = HashingCopy(hasher: try SHA256())
        let received: Int64
        do {
            received = try api.download(url: absolute, maxBytes: cap, restart: {
                guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
                    throw SystemError(call: "ftruncate", path: destination, errno: errno)
                }
                copy.restart(hasher: try SHA256())
            }, sink: { bytes in
                try copy.pass(bytes) { chunk in
                    try FileSystem.writeAll(fd, chunk, path: destination)
                    if copy.byteCount == 0 { try FaultInjection.hit("mid-download") }
                }
            })
        } catch {
            unlink(destination)
            if case .tooLarge(let text) = error {
                let limit = sizeBytes.map { "its signed size (\($0) bytes)" } ?? "the \(cap)-byte limit"
                throw UpgradeError.refused("\(label) is larger than \(limit): \(text)")
            }
            throw map(error, doing: "the download of \(label)")
        }
        try FileSystem.fsync(fd, path: destination)
        let written = copy.byteCount
        if let sizeBytes, received != sizeBytes || written != sizeBytes {
            unlink(destination)
            throw UpgradeError.refused("\(label): downloaded \(written) bytes, the signed size is \(sizeBytes)")
        }
        let actual = copy.finalizeHex()
        guard actual == sha256.lowercased() else {
            unlink(destination)
            throw UpgradeError.refused("\(label): SHA-256 of the download is \(actual), expected \(sha256.lowercased())")
        }
        return written
    }

    static func map(_ error: CentralAPIError, doing what: String) -> UpgradeError {
        switch error {
        case .rejected(let status, _) where status == 401 || status == 403:
            return .configuration("central API refused our credentials during \(what): \(error); check token_file")
        case .invalidRelease:
            return .refused("\(error)")
        case .invalidToken, .invalidRequest:
            return .configuration("\(error)")
        case .localFailure:
            return .failed("\(what): \(error)")
        default:
            return .unavailable("central API unavailable for \(what): \(error)")
        }
    }
}
