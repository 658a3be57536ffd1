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

    /// The API may send a string or an integer (the seeds' `"id": 1`); kept as text either way, so
    /// that it reads the same in reasons, the journal and reports.
    public var id: String
    /// The id as the API sent it when it was a JSON integer, so machine output gives it back with
    /// its type (`check --json`'s `rollout_id`); nil for a string id.
    public var numericID: Int64?
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
        targetTiers: [String] = [], status: Status = .active, errorThreshold: Double? = nil,
        numericID: Int64? = nil
    ) {
        self.id = id
        self.numericID = numericID
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

    /// Decodes the answer of `GET /api/plugins/rollouts/{plugin}`: the seeds' `{"rollout": {...}}`
    /// (any other top-level member, such as `ok`, ignored), `{"rollout": null}` for no active rollout
    /// (nil), or a bare rollout object. An object is taken as bare when it has no `rollout` member.
    public static func decodeAnswer(
        _ data: Data, source: String, expectedPlugin: String
    ) throws(CentralAPIError) -> Rollout? {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .badAnswer("rollout from \(source) is not a JSON object")
        }
        guard let wrapped = object["rollout"] else {
            return try decode(object: object, source: source, expectedPlugin: expectedPlugin)
        }
        switch wrapped {
        case is NSNull:
            return nil
        case let inner as [String: Any]:
            return try decode(object: inner, source: source, expectedPlugin: expectedPlugin)
        default:
            throw .badAnswer("rollout from \(source): field 'rollout' is neither an object nor null")
        }
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
        return try decode(object: object, source: source, expectedPlugin: expectedPlugin)
    }

    /// The rollout object itself. Fields the seeds' examples leave out default: `rollout_strategy`
    /// to random (the seeds' table default), target lists to empty, `error_threshold` to none.
    /// Unknown fields (`merchants_upgraded`, `error_rate`, `sira_monitoring`...) are ignored.
    static func decode(
        object: [String: Any], source: String, expectedPlugin: String
    ) throws(CentralAPIError) -> Rollout {
        let fields = Fields(object: object, source: source)

        let id: String
        var numericID: Int64?
        switch object["id"] {
        case let text as String where !text.isEmpty && !text.contains(where: { $0.isNewline || $0 == "\0" }):
            id = text
        case let value where JSONNumbers.integer(value) != nil:
            numericID = JSONNumbers.integer(value)
            id = String(numericID ?? 0)
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
        let strategy = object["rollout_strategy"] == nil || object["rollout_strategy"] is NSNull
            ? Strategy.random : try fields.enumeration("rollout_strategy", Strategy.self)
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
            status: status, errorThreshold: errorThreshold, numericID: numericID)
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
