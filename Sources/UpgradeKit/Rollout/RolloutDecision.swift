import Foundation
import MolamCrypto

/// What this host knows about its merchant, from its configuration.
public struct MerchantProfile: Sendable, Equatable {
    public var merchantID: String
    /// ISO 3166 code, for `geo` rollouts; nil when not configured.
    public var country: String?
    /// For `merchant_tier` rollouts; nil when not configured.
    public var tier: String?

    public init(merchantID: String, country: String? = nil, tier: String? = nil) {
        self.merchantID = merchantID
        self.country = country
        self.tier = tier
    }
}

/// The `eligibility` step's outcome, with a one-line reason that goes to the journal and the report.
public enum RolloutDecision: Sendable, Equatable {
    case eligible(String)
    case skip(String)
    /// The rollout was rolled back and this host runs the version it rolled out.
    case rollBack(String)

    public var reason: String {
        switch self {
        case .eligible(let reason), .skip(let reason), .rollBack(let reason): reason
        }
    }
}

/// The progressive-rollout rules of DESIGN.md "Rollout eligibility", computed locally so that the
/// API never needs to know which hosts exist.
public enum RolloutPolicy {
    /// Buckets per rollout; a percentage point is 100 buckets.
    public static let bucketCount = 10_000

    /// The first 4 bytes, big-endian, of SHA-256("{plugin}:{version}:{merchant id lowercased}"),
    /// mod 10,000. The version is part of the input so that each release samples a fresh cohort:
    /// the same merchants are not always the first to take the risk.
    ///
    /// Throws only if libcrypto cannot set up a digest (out of memory); `decide` then skips.
    public static func bucket(
        plugin: String, version: String, merchantID: String
    ) throws(CryptoError) -> Int {
        let input = "\(plugin):\(version):\(merchantID.lowercased())"
        let digest = try SHA256.digest(of: Array(input.utf8))
        let prefix = digest.prefix(4).reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        return Int(prefix % UInt32(bucketCount))
    }

    /// `bucket < percentage * 100`. The threshold is rounded to a millionth first, because
    /// 0.07 * 100 is 7.000000000000001 in binary floating point and would select bucket 7 too.
    public static func isSelected(bucket: Int, percentage: Double) -> Bool {
        Double(bucket) < threshold(percentage)
    }

    /// The decision for one host, in DESIGN.md's order: no rollout or paused, rolled back,
    /// version already installed or older, completed, the geo or tier cohort, the percentage.
    public static func decide(
        _ rollout: Rollout?, installed: SemanticVersion, merchant: MerchantProfile
    ) -> RolloutDecision {
        guard let rollout else { return .skip("no rollout is published for this plugin") }
        let name = "rollout \(rollout.id) of \(rollout.pluginName) \(rollout.versionText)"
        switch rollout.status {
        case .paused:
            return .skip("\(name) is paused")
        case .rolledBack where rollout.version == installed:
            return .rollBack("\(name) was rolled back and this host runs \(installed)")
        case .rolledBack:
            return .skip("\(name) was rolled back; this host runs \(installed), not that version")
        case .active, .completed:
            break
        }
        if rollout.version == installed {
            return .skip(
                "already on \(rollout.pluginName) \(installed), the version of rollout \(rollout.id)")
        }
        if rollout.version < installed {
            return .skip("rollout \(rollout.id) targets \(rollout.pluginName) \(rollout.versionText), older "
                + "than the installed \(installed)")
        }
        if rollout.status == .completed {
            return .eligible("\(name) is completed: every host takes \(rollout.versionText)")
        }

        var cohort = ""
        switch rollout.strategy {
        case .random:
            break
        case .geo:
            let targets = list(rollout.targetCountries)
            guard let country = trimmed(merchant.country) else {
                return .skip("this host has no country configured, so it is in no geo cohort of \(name)")
            }
            guard matches(country, rollout.targetCountries) else {
                return .skip("country \(country) is not among the rollout's target countries (\(targets))")
            }
            cohort = ", country \(country)"
        case .merchantTier:
            let targets = list(rollout.targetTiers)
            guard let tier = trimmed(merchant.tier) else {
                return .skip(
                    "this host has no merchant tier configured, so it is in no tier cohort of \(name)")
            }
            guard matches(tier, rollout.targetTiers) else {
                return .skip("merchant tier \(tier) is not among the rollout's target tiers (\(targets))")
            }
            cohort = ", tier \(tier)"
        }

        let rolloutName = "the \(number(rollout.percentage)) % rollout of \(rollout.pluginName) "
            + "\(rollout.versionText) (rollout \(rollout.id)\(cohort))"
        // An empty id would put every unconfigured host in the same bucket: all in or all out.
        guard !merchant.merchantID.trimmingCharacters(in: .whitespaces).isEmpty else {
            return .skip("this host has no merchant id configured, so it cannot be placed in \(rolloutName)")
        }
        let bucket: Int
        do {
            bucket = try Self.bucket(plugin: rollout.pluginName, version: rollout.versionText,
                                     merchantID: merchant.merchantID)
        } catch {
            return .skip(
                "cannot compute the rollout bucket (\(error)), so this host stays out of \(rolloutName)")
        }
        let bucketText = String(repeating: "0", count: max(0, 4 - String(bucket).count)) + String(bucket)
        let limit = number(threshold(rollout.percentage))
        if isSelected(bucket: bucket, percentage: rollout.percentage) {
            return .eligible("bucket \(bucketText) < \(limit): selected by \(rolloutName)")
        }
        return .skip("bucket \(bucketText) >= \(limit): not selected by \(rolloutName)")
    }

    private static func threshold(_ percentage: Double) -> Double {
        (percentage * 100 * 1_000_000).rounded() / 1_000_000
    }

    private static func trimmed(_ text: String?) -> String? {
        guard let text = text?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        return text
    }

    private static func matches(_ value: String, _ targets: [String]) -> Bool {
        let wanted = value.lowercased()
        return targets.contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == wanted }
    }

    private static func list(_ values: [String]) -> String {
        let trimmed = values.map { $0.trimmingCharacters(in: .whitespaces) }
        return trimmed.isEmpty ? "none" : trimmed.joined(separator: ", ")
    }

    /// 5 → "5", 12.5 → "12.5": reasons read like the operator's own numbers.
    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
