import Foundation

/// A progressive rollout as the central API serves it (`GET /api/plugins/rollouts/{plugin}`,
/// DESIGN.md "Rollout eligibility").
public struct Rollout: Sendable, Equatable {
    public enum Strategy: String, Sendable, CaseIterable {
        case random
        case geo
        case merchantTier = "merchant_tier"
    }

    public enum Status: String, Sendable, CaseIterable {
        case active
        case paused
        case completed
        case rolledBack = "rolled_back"
    }

    /// The API may send a string or an integer; kept as text either way.
    public var id: String
    public var pluginName: String
    public var version: SemanticVersion
    /// The version exactly as the JSON wrote it. The cohort hash uses this text, so `4.0.0` and
    /// `4.0.0+build.7` pick different cohorts although they compare equal as versions.
    public var versionText: String
    /// `rollout_percentage`, 0...100; fractions allowed (0.5 selects 50 of the 10,000 buckets).
    public var percentage: Double
    public var strategy: Strategy
    /// Country codes as the API wrote them; compared trimmed and case-insensitively.
    public var targetCountries: [String]
    /// Tier names as the API wrote them; compared trimmed and case-insensitively.
    public var targetTiers: [String]
    public var status: Status
    public var errorThreshold: Double?

    /// `versionText` defaults to the version's canonical spelling.
    public init(
        id: String, pluginName: String, version: SemanticVersion, versionText: String? = nil,
        percentage: Double, strategy: Strategy = .random, targetCountries: [String] = [],
        targetTiers: [String] = [], status: Status = .active, errorThreshold: Double? = nil
    ) {
        self.id = id
        self.pluginName = pluginName
        self.version = version
        self.versionText = versionText ?? version.description
        self.percentage = percentage
        self.strategy = strategy
        self.targetCountries = targetCountries
        self.targetTiers = targetTiers
        self.status = status
        self.errorThreshold = errorThreshold
    }

    /// Decodes DESIGN.md's rollout object. Anything that breaks the contract (an unknown strategy
    /// or status, a percentage outside 0...100, a version that is not semver, a rollout for
    /// another plugin) is a `.badAnswer` naming `source` (the URL) and the field.
    public static func decode(
        _ data: Data, source: String, expectedPlugin: String
    ) throws(CentralAPIError) -> Rollout {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .badAnswer("rollout from \(source) is not a JSON object")
        }
        let fields = Fields(object: object, source: source)

        let id: String
        switch object["id"] {
        case let text as String where !text.isEmpty && !text.contains(where: \.isNewline):
            id = text
        case let value where JSONNumbers.integer(value) != nil:
            id = String(JSONNumbers.integer(value) ?? 0)
        default:
            throw fields.problem("id", "is missing or not a string or an integer")
        }
        let pluginName = try fields.string("plugin_name")
        guard pluginName == expectedPlugin else {
            throw fields.problem("plugin_name", "is '\(pluginName)', expected '\(expectedPlugin)'")
        }
        let versionText = try fields.string("version")
        guard let version = SemanticVersion(versionText) else {
            throw fields.problem("version", "('\(versionText)') is not a semantic version")
        }
        guard let percentage = JSONNumbers.double(object["rollout_percentage"]),
              percentage.isFinite, (0...100).contains(percentage)
        else {
            throw fields.problem("rollout_percentage", "is missing or not a number from 0 to 100")
        }
        let strategy = try fields.enumeration("rollout_strategy", Strategy.self)
        let status = try fields.enumeration("status", Status.self)
        let countries = try fields.stringList("target_countries")
        let tiers = try fields.stringList("target_tiers")
        var errorThreshold: Double?
        switch object["error_threshold"] {
        case nil, is NSNull:
            errorThreshold = nil
        case let value:
            guard let number = JSONNumbers.double(value), number.isFinite, number >= 0 else {
                throw fields.problem("error_threshold", "is not a non-negative number")
            }
            errorThreshold = number
        }
        return Rollout(
            id: id, pluginName: pluginName, version: version, versionText: versionText,
            percentage: percentage, strategy: strategy, targetCountries: countries, targetTiers: tiers,
            status: status, errorThreshold: errorThreshold)
    }
}

/// Field readers for one decoded object, each failure naming the source and the field.
private struct Fields {
    let object: [String: Any]
    let source: String

    func problem(_ key: String, _ text: String) -> CentralAPIError {
        .badAnswer("rollout from \(source): field '\(key)' \(text)")
    }

    func string(_ key: String) throws(CentralAPIError) -> String {
        guard let value = object[key] as? String, !value.isEmpty else {
            throw problem(key, "is missing or not a string")
        }
        // Names and versions go into one-line reasons and the journal.
        guard !value.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw problem(key, "contains a line break")
        }
        return value
    }

    func enumeration<Value: RawRepresentable & CaseIterable>(
        _ key: String, _ type: Value.Type
    ) throws(CentralAPIError) -> Value where Value.RawValue == String {
        let text = try string(key)
        guard let value = Value(rawValue: text) else {
            let known = Value.allCases.map(\.rawValue).joined(separator: ", ")
            throw problem(key, "('\(text)') is not one of \(known)")
        }
        return value
    }

    /// null or absent is an empty list: a random rollout need not send target lists.
    func stringList(_ key: String) throws(CentralAPIError) -> [String] {
        switch object[key] {
        case nil, is NSNull:
            return []
        case let values as [Any]:
            var strings: [String] = []
            for value in values {
                guard let text = value as? String, !text.contains(where: { $0.isNewline || $0 == "\0" })
                else { throw problem(key, "must be a list of one-line strings") }
                strings.append(text)
            }
            return strings
        default:
            throw problem(key, "is not a list of strings")
        }
    }
}
