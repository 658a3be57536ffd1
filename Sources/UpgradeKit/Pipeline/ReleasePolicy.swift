import Foundation

/// Which release this install takes, decided in one place for `check`, the download's metadata check
/// and `stage`: the same plugin, the requested version, no downgrade, nothing already installed, and
/// nothing older than the highest version this install has accepted (a replayed old release), each
/// waived by `--force` alone.
struct ReleasePolicy {
    var installed: PluginManifest
    /// The version asked for (`--to`, or the rollout's).
    var requested: SemanticVersion?
    var force: Bool
    var highestAccepted: SemanticVersion?

    /// A release that is already installed: nothing to do (exit 0), never a refusal.
    struct AlreadyInstalled: Error, CustomStringConvertible {
        let description: String
    }

    /// Holds a release (`plugin` `version`, found at `source`) to the policy: throws `.refused`, or
    /// `AlreadyInstalled`.
    func check(plugin: String, version: SemanticVersion, source: String) throws {
        guard plugin == installed.name else {
            throw UpgradeError.refused(
                "release archive \(source) holds plugin '\(plugin)', but the installed plugin is '\(installed.name)'")
        }
        if let requested, requested != version {
            throw UpgradeError.refused(
                "release archive \(source) holds \(plugin) \(version), not the requested \(requested)")
        }
        if version < installed.version && !force {
            throw UpgradeError.refused(
                "release \(plugin) \(version) is older than the installed \(installed.version); "
                    + "pass --force to downgrade")
        }
        if version == installed.version && !force {
            throw AlreadyInstalled(description: "\(plugin) \(version) is already installed")
        }
        try checkFloor(plugin: plugin, version: version)
    }

    /// The version floor alone: what a release's metadata is held to before it is downloaded.
    func checkFloor(plugin: String, version: SemanticVersion) throws(UpgradeError) {
        if let highestAccepted, version < highestAccepted, !force {
            throw .refused(
                "release \(plugin) \(version) is older than \(highestAccepted), the highest version this "
                    + "install has accepted; pass --force to install it anyway")
        }
    }
}

/// Where a release comes from: a local file, a URL, or the central API. `check` and `upgrade` tell
/// them apart here, once.
enum ReleaseSource {
    /// `--archive PATH --sha256 HEX`.
    case file(path: String, sha256: String)
    /// `--archive URL --sha256 HEX`.
    case url(String, sha256: String)
    /// The release the central API describes for this version (signed metadata, then the download).
    case api(version: SemanticVersion)

    /// The source `options` name; nil when the central API has no version to offer yet.
    init?(_ options: Pipeline.UpgradeOptions, version: SemanticVersion?) {
        if let archive = options.archive, let sha256 = options.sha256 {
            self = archive.hasPrefix("https://") || archive.hasPrefix("http://")
                ? .url(archive, sha256: sha256) : .file(path: archive, sha256: sha256)
        } else if let version {
            self = .api(version: version)
        } else {
            return nil
        }
    }
}
