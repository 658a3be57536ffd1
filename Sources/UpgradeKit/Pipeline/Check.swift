import Foundation
import MolamCrypto
#if canImport(Glibc)
import Glibc
#endif

/// `check`: what `upgrade` would decide about a release, and why, without taking the lock or
/// writing anything.
public enum Check {
    public enum Decision: String, Sendable { case upgrade, skip, refuse, rollback }

    public struct Result: Sendable {
        public var plugin: String
        public var installedVersion: String
        public var releaseVersion: String?
        public var decision: Decision
        public var reason: String
        public var exitCode: ExitCode
        /// The rollout the decision was made from, when the central API was asked and served one.
        public var rollout: Rollout?

        /// The seeds' rollout decision (115ter, "Rollout Decision Response"): `should_upgrade`,
        /// `reason`, `rollout_id`, `rollout_percentage`, `rollout_strategy`, `version`. The id keeps
        /// the API's type (the seeds' ids are integers); absent values are null.
        public var seedsDecision: [String: Any] {
            var rolloutID: Any = NSNull()
            if let rollout { rolloutID = rollout.numericID.map { $0 as Any } ?? rollout.id }
            return [
                "should_upgrade": decision == .upgrade,
                "reason": reason,
                "rollout_id": rolloutID,
                "rollout_percentage": rollout.map { percentageValue($0.percentage) } ?? NSNull(),
                "rollout_strategy": rollout?.strategy.rawValue ?? NSNull(),
                "version": releaseVersion ?? rollout?.versionText ?? NSNull(),
            ]
        }

        /// 25 stays the integer 25 in JSON; 12.5 stays a fraction.
        private func percentageValue(_ value: Double) -> Any {
            value == value.rounded() && abs(value) < 1e15 ? Int64(value) as Any : value as Any
        }

        init(_ installed: PluginManifest, _ decision: Decision, _ release: String?, _ reason: String, _ code: ExitCode) {
            plugin = installed.name
            installedVersion = installed.version.description
            releaseVersion = release
            self.decision = decision
            self.reason = reason
            exitCode = code
        }
    }

    public static func run(_ options: Pipeline.UpgradeOptions, context: UpgradeContext) throws(UpgradeError) -> Result {
        let installed: PluginManifest
        do {
            installed = try ResolveStep.openSite(context).0
        } catch let error as UpgradeError {
            throw error
        } catch {
            throw .configuration("\(error)")
        }
        guard let archive = options.archive, let sha256 = options.sha256 else {
            return try fromAPI(options, context: context, installed: installed)
        }
        try Pipeline.validate(sha256: sha256)
        if archive.contains("://") {
            throw .configuration("check --archive takes a local path; download \(archive) first, or run check without "
                                 + "--archive to ask the central API")
        }
        func result(_ decision: Decision, _ release: String?, _ reason: String, _ code: ExitCode) -> Result {
            Result(installed, decision, release, reason, code)
        }
        let actual: String
        let input = try ReleaseDownload.openRegularFile(archive)
        do {
            actual = try hashFile(input, path: archive)
            close(input)
        } catch {
            close(input)
            throw .configuration("release archive \(archive): \(error.message)")
        }
        guard actual == sha256.lowercased() else {
            return result(.refuse, nil, "SHA-256 of \(archive) is \(actual), expected \(sha256.lowercased())",
                          .refused)
        }
        let target: PluginManifest
        do {
            guard let data = try SafeExtractor.readMember(named: PluginManifest.fileName, fromArchive: archive) else {
                return result(.refuse, nil, "release archive \(archive) has no \(PluginManifest.fileName)", .refused)
            }
            target = try PluginManifest.parse(data, source: "\(archive): \(PluginManifest.fileName)")
        } catch {
            return result(.refuse, nil, "\(error)", .refused)
        }
        do {
            let policy = ReleasePolicy(installed: installed, requested: options.expectedVersion, force: options.force)
            try policy.check(plugin: target.name, version: target.version, source: options.source)
            _ = try Pipeline.ownedRelease(target, installed: installed, site: context.site)
        } catch let error as ReleasePolicy.AlreadyInstalled {
            return result(.skip, target.version.description, "\(error)", .ok)
        } catch {
            return result(.refuse, target.version.description, "\(error)", .refused)
        }
        return result(.upgrade, target.version.description,
                      "would upgrade \(installed.name) \(installed.version) → \(target.version)", .ok)
    }

    /// The central API's answer for this host: the rollout decision with its reason and, when the
    /// host is eligible, the release metadata checked as `upgrade` would (signature, version floor).
    /// Reads the journal only to learn the version floor; takes no lock and writes nothing.
    static func fromAPI(
        _ options: Pipeline.UpgradeOptions, context: UpgradeContext, installed: PluginManifest
    ) throws(UpgradeError) -> Result {
        var served: Rollout?
        func result(_ decision: Decision, _ release: String?, _ reason: String, _ code: ExitCode) -> Result {
            var result = Result(installed, decision, release, reason, code)
            result.rollout = served
            return result
        }
        let api = try CentralRelease.client(context)
        var version = options.expectedVersion
        var reason: String
        if options.force, version != nil {
            reason = "--force --to \(version?.description ?? ""): rollout not consulted"
        } else {
            let rollout = try CentralRelease.rollout(api, plugin: installed.name)
            served = rollout
            var decision = RolloutPolicy.decide(
                rollout, installed: installed.version, merchant: CentralRelease.merchant(context))
            if options.force, let rollout, rollout.version != installed.version {
                decision = .eligible("--force: eligibility not checked (\(decision.reason))")
            }
            if case .eligible = decision, let wanted = version, let rollout, rollout.version != wanted, !options.force {
                decision = .skip("the rollout targets \(rollout.versionText), not the requested \(wanted)")
            }
            switch decision {
            case .skip(let why):
                return result(.skip, rollout?.versionText, why, .ok)
            case .rollBack(let why):
                return result(.rollback, rollout?.versionText, why, .ok)
            case .eligible(let why):
                version = version ?? rollout?.version
                reason = why
            }
        }
        guard let version else { return result(.skip, nil, "no release to consider", .ok) }
        var highest: SemanticVersion?
        if FileSystem.exists(context.paths.journal), let journal = try? Journal(path: context.paths.journal) {
            highest = (try? journal.highestAcceptedVersion(pluginDirectory: context.site.pluginDirectory))?
                .flatMap(SemanticVersion.init)
        }
        let policy = ReleasePolicy(
            installed: installed, requested: version, force: options.force, highestAccepted: highest)
        do {
            let (_, signature) = try CentralRelease.release(
                api, plugin: installed.name, version: version, context: context, policy: policy)
            try policy.check(plugin: installed.name, version: version, source: "the central API")
            return result(.upgrade, version.description,
                          "would upgrade \(installed.name) \(installed.version) → \(version): \(reason); \(signature)", .ok)
        } catch let error as ReleasePolicy.AlreadyInstalled {
            return result(.skip, version.description, "\(error)", .ok)
        } catch let error as UpgradeError where error.exitCode == .refused {
            return result(.refuse, version.description, error.description, .refused)
        } catch let error as UpgradeError {
            throw error
        } catch {
            throw .failed("\(error)")
        }
    }

    static func hashFile(_ fd: Int32, path: String) throws(SystemError) -> String {
        guard let hasher = try? SHA256() else { throw SystemError(call: "EVP_MD_CTX_new", path: path, errno: ENOMEM) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try systemCall("read", path: path) { read(fd, &buffer, buffer.count) }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return hasher.finalizeHex()
    }
}
