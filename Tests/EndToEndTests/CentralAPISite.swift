import Foundation
import MolamCrypto
import TestSupport
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// A fixture site configured the way a merchant host is: agent.json (0600) naming the merchant, the
/// central API (a fake on 127.0.0.1), a token file and the release-signing key; releases published
/// on the fake API, signed with a key made for the test.
final class CentralAPISite {
    static let token = "tok_live_5b1f0c9e-SECRET-never-logged-7d2a"

    let site: TestSite
    let api: FakeCentralAPI
    let signingKey: Ed25519PrivateKey
    let merchantID: String
    var configPath: String { site.root + "/agent.json" }
    var tokenPath: String { site.root + "/token" }

    init(
        merchantID: String = "6f1c2b2e-4c84-4d52-9c4a-2b7c0e6e9a11", country: String = "SN", tier: String = "gold",
        signed: Bool = true, apiURL: String? = nil, extraInstalls: [[String: String]] = []
    ) throws {
        site = try TestSite.molamForm()
        api = try FakeCentralAPI(token: Self.token)
        signingKey = try Ed25519PrivateKey.generate()
        self.merchantID = merchantID
        try (Self.token + "\n").write(toFile: tokenPath, atomically: true, encoding: .utf8)
        chmod(tokenPath, 0o600)
        try writeConfig(
            apiURL: apiURL ?? api.baseURL, country: country, tier: tier, signed: signed, extraInstalls: extraInstalls)
    }

    func writeConfig(
        apiURL: String, country: String = "SN", tier: String = "gold", signed: Bool = true,
        extraInstalls: [[String: String]] = []
    ) throws {
        var config: [String: Any] = [
            "merchant_id": merchantID, "country": country, "tier": tier, "api_url": apiURL, "token_file": tokenPath,
            "state_dir": site.stateDirectory,
            "plugins": [["name": "molam-form", "plugin_dir": site.pluginDirectory,
                         "db": "sqlite://" + site.databasePath]] + extraInstalls,
        ]
        if signed {
            config["release_public_keys"] = ["ed25519:" + (try signingKey.publicKey).rawRepresentation.base64EncodedString()]
        }
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        unlink(configPath)
        guard FileManager.default.createFile(atPath: configPath, contents: data, attributes: [.posixPermissions: 0o600])
        else { throw TestFailure("cannot write \(configPath)") }
    }

    /// Runs the binary with this site's config, as cron would.
    func run(_ arguments: [String]) throws -> ProcessResult {
        try runTool(arguments + ["--config", configPath])
    }

    /// Packs a fixture version and publishes it: the archive on /downloads, its metadata (signed
    /// with this site's key unless told otherwise) on /api/plugins/releases.
    @discardableResult
    func publish(
        _ tree: String, version: String, format: ReleaseFormat = .tarGz, sign: Bool = true,
        tamper: ((inout [String: Any]) -> Void)? = nil
    ) throws -> ReleaseMetadata {
        let archive = try site.release(from: tree, format: format)
        guard let data = FileManager.default.contents(atPath: archive.path) else { throw TestFailure("read archive") }
        let url = api.serveFile(name: "molam-form-\(version).\(format.rawValue)", data: data)
        guard let semantic = SemanticVersion(version) else { throw TestFailure("bad version \(version)") }
        var release = ReleaseMetadata(
            pluginName: "molam-form", version: semantic, downloadURL: url, sha256: archive.sha256,
            sizeBytes: Int64(data.count))
        if sign { release.signature = try ReleaseSignature.sign(release, with: signingKey) }
        var object = release.jsonObject
        object.removeValue(forKey: "plugin_name")   // DESIGN.md's answer has no plugin_name
        tamper?(&object)
        api.setRelease(plugin: "molam-form", version: version, object)
        return release
    }

    func setRollout(
        version: String, percentage: Double = 100, strategy: String = "random", status: String = "active",
        countries: [String] = [], tiers: [String] = [], id: String = "r-1"
    ) {
        api.setRollout(plugin: "molam-form", [
            "id": id, "plugin_name": "molam-form", "version": version, "rollout_percentage": percentage,
            "rollout_strategy": strategy, "target_countries": countries, "target_tiers": tiers, "status": status,
            "error_threshold": 5,
        ])
    }

    /// Every byte the agent left in its state directory (journal, WAL, backups' metadata), for leak checks.
    func stateBytes() throws -> Data {
        var all = Data()
        let enumerator = FileManager.default.enumerator(atPath: site.stateDirectory)
        while let relative = enumerator?.nextObject() as? String {
            let path = site.stateDirectory + "/" + relative
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, let data = FileManager.default.contents(atPath: path) {
                all.append(data)
            }
        }
        return all
    }

    /// Report kinds in the order the API accepted them, read from their paths.
    var reportKinds: [String] {
        api.reports.map { report in
            switch report.path {
            case "/api/plugins/upgrades": "upgrade"
            case "/api/plugins/backup": "backup"
            case "/api/plugins/rollback/initiate": "initiate"
            case "/api/plugins/rollback": "log"
            default:
                if report.path.hasSuffix("/steps") { "step:" + (report.body["step"] ?? "?") }
                else if report.path.hasSuffix("/complete") { "complete" } else { report.path }
            }
        }
    }
}
