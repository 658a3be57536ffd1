import Foundation
import MolamCrypto
import Testing
import UpgradeKit

/// Cohort selection and the eligibility rules of DESIGN.md "Rollout eligibility", plus decoding of
/// the rollout object the API serves.
@Suite("rollout decision")
struct RolloutDecisionTests {
    private static let source = "https://api.molam.example/api/plugins/rollouts/molam-form"

    // MARK: Cohorts

    @Test("10 % of 10,000 merchants are selected, within one percentage point")
    func tenPercentOfTenThousand() throws {
        let ids = try merchantIDs(10_000)
        var selected = 0
        for id in ids {
            let bucket = try RolloutPolicy.bucket(plugin: "molam-form", version: "4.0.0", merchantID: id)
            if RolloutPolicy.isSelected(bucket: bucket, percentage: 10) { selected += 1 }
        }
        print("rollout: 10 % of 10,000 merchant ids selected \(selected)")
        #expect((900...1100).contains(selected))
    }

    @Test("Every merchant selected at 5 % is still selected at 25 % of the same version")
    func cohortsGrow() throws {
        let installed = try version("3.9.0")
        let atFive = try rollout(percentage: 5)
        let atTwentyFive = try rollout(percentage: 25)
        var five = 0
        var twentyFive = 0
        for id in try merchantIDs(10_000) {
            let merchant = MerchantProfile(merchantID: id)
            let small = RolloutPolicy.decide(atFive, installed: installed, merchant: merchant)
            let large = RolloutPolicy.decide(atTwentyFive, installed: installed, merchant: merchant)
            if case .eligible = small {
                five += 1
                guard case .eligible = large else {
                    Issue.record("\(id) was selected at 5 % but not at 25 %: \(large.reason)")
                    continue
                }
            }
            if case .eligible = large { twentyFive += 1 }
        }
        #expect(five > 0 && twentyFive > five)
    }

    @Test("Different versions pick different cohorts, as do versions differing only in build metadata")
    func versionsPickDifferentCohorts() throws {
        let ids = try merchantIDs(10_000)
        func cohort(_ versionText: String) throws -> Set<String> {
            var chosen = Set<String>()
            for id in ids {
                let bucket = try RolloutPolicy.bucket(
                    plugin: "molam-form", version: versionText, merchantID: id)
                if RolloutPolicy.isSelected(bucket: bucket, percentage: 10) { chosen.insert(id) }
            }
            return chosen
        }
        let first = try cohort("4.0.0")
        for other in ["4.1.0", "4.0.0+build.7"] {
            let second = try cohort(other)
            let overlap = first.intersection(second).count
            // Independent 10 % samples share about 10 % of their members.
            #expect(overlap < min(first.count, second.count) / 3, "\(other): overlap \(overlap)")
        }
    }

    @Test("The bucket matches an independent computation by sha256sum, and ignores the id's case")
    func bucketMatchesSha256sum() throws {
        let merchantID = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
        let input = "molam-form:4.0.0+build.7:3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        let hex = try sha256sum(Data(input.utf8))
        let prefix = try #require(UInt32(hex.prefix(8), radix: 16))
        let expected = Int(prefix % 10_000)

        let bucket = try RolloutPolicy.bucket(
            plugin: "molam-form", version: "4.0.0+build.7", merchantID: merchantID)
        #expect(bucket == expected)
        let lowercase = try RolloutPolicy.bucket(
            plugin: "molam-form", version: "4.0.0+build.7", merchantID: merchantID.lowercased())
        #expect(lowercase == expected)
        // decide hashes the version as the rollout wrote it, build metadata included.
        let written = try rollout(percentage: 100, versionText: "4.0.0+build.7")
        let decision = RolloutPolicy.decide(
            written, installed: try version("3.9.0"), merchant: MerchantProfile(merchantID: merchantID))
        let padded = String(repeating: "0", count: 4 - String(expected).count) + String(expected)
        #expect(decision.reason.hasPrefix("bucket \(padded) < 10000: "))
    }

    @Test("Selection is bucket < percentage × 100, exact at the edges")
    func selectionEdges() {
        #expect(RolloutPolicy.isSelected(bucket: 499, percentage: 5))
        #expect(!RolloutPolicy.isSelected(bucket: 500, percentage: 5))
        #expect(!RolloutPolicy.isSelected(bucket: 0, percentage: 0))
        #expect(RolloutPolicy.isSelected(bucket: 0, percentage: 0.01))
        #expect(RolloutPolicy.isSelected(bucket: 9999, percentage: 100))
        #expect(RolloutPolicy.isSelected(bucket: 1234, percentage: 12.345))
        #expect(!RolloutPolicy.isSelected(bucket: 1235, percentage: 12.345))
        // 0.07 * 100 is 7.000000000000001 in binary floating point.
        #expect(RolloutPolicy.isSelected(bucket: 6, percentage: 0.07))
        #expect(!RolloutPolicy.isSelected(bucket: 7, percentage: 0.07))
    }

    @Test("The reason names the bucket, the threshold, the percentage, the release and the rollout")
    func selectionReason() throws {
        let id = "merchant-0042"
        let bucket = try RolloutPolicy.bucket(plugin: "molam-form", version: "4.0.0", merchantID: id)
        let padded = String(repeating: "0", count: 4 - String(bucket).count) + String(bucket)
        let installed = try version("3.9.0")
        let everyone = RolloutPolicy.decide(
            try rollout(percentage: 100), installed: installed, merchant: MerchantProfile(merchantID: id))
        #expect(everyone == .eligible(
            "bucket \(padded) < 10000: selected by the 100 % rollout of molam-form 4.0.0 (rollout r-17)"))
        let nobody = RolloutPolicy.decide(
            try rollout(percentage: 0), installed: installed, merchant: MerchantProfile(merchantID: id))
        #expect(nobody == .skip(
            "bucket \(padded) >= 0: not selected by the 0 % rollout of molam-form 4.0.0 (rollout r-17)"))
        let half = RolloutPolicy.decide(
            try rollout(percentage: 12.5), installed: installed, merchant: MerchantProfile(merchantID: id))
        #expect(half.reason.contains("1250: "))
        #expect(half.reason.contains("the 12.5 % rollout"))
    }

    // MARK: Rules

    @Test("No rollout, or a paused one, is a skip")
    func noRolloutOrPaused() throws {
        let merchant = MerchantProfile(merchantID: "m-1")
        let installed = try version("3.9.0")
        guard case .skip = RolloutPolicy.decide(nil, installed: installed, merchant: merchant) else {
            Issue.record("no rollout must skip")
            return
        }
        let paused = try rollout(percentage: 100, status: .paused)
        #expect(RolloutPolicy.decide(paused, installed: installed, merchant: merchant)
            == .skip("rollout r-17 of molam-form 4.0.0 is paused"))
    }

    @Test("A completed rollout is eligible even at 0 % and outside the geo cohort")
    func completed() throws {
        let installed = try version("3.9.0")
        let done = try rollout(percentage: 0, status: .completed)
        let merchant = MerchantProfile(merchantID: "m-1")
        let decision = RolloutPolicy.decide(done, installed: installed, merchant: merchant)
        guard case .eligible(let reason) = decision else {
            Issue.record("expected eligible, got \(decision)")
            return
        }
        #expect(reason.contains("completed"))
        let geo = try rollout(percentage: 0, strategy: .geo, countries: ["CI"], status: .completed)
        let elsewhere = MerchantProfile(merchantID: "m-1", country: "SN")
        guard case .eligible = RolloutPolicy.decide(geo, installed: installed, merchant: elsewhere) else {
            Issue.record("a completed rollout ignores its cohort")
            return
        }
    }

    @Test("A rolled-back rollout rolls back the host that runs its version and skips the others")
    func rolledBack() throws {
        let merchant = MerchantProfile(merchantID: "m-1")
        let withdrawn = try rollout(percentage: 5, status: .rolledBack)
        let onIt = RolloutPolicy.decide(withdrawn, installed: try version("4.0.0"), merchant: merchant)
        #expect(onIt == .rollBack(
            "rollout r-17 of molam-form 4.0.0 was rolled back and this host runs 4.0.0"))
        let before = RolloutPolicy.decide(withdrawn, installed: try version("3.9.0"), merchant: merchant)
        guard case .skip(let reason) = before else {
            Issue.record("expected skip, got \(before)")
            return
        }
        #expect(reason.contains("3.9.0"))
    }

    @Test("A rollout of the installed version or an older one is a skip")
    func notNewer() throws {
        let merchant = MerchantProfile(merchantID: "m-1")
        let current = try rollout(percentage: 100)
        let same = RolloutPolicy.decide(current, installed: try version("4.0.0"), merchant: merchant)
        #expect(same == .skip("already on molam-form 4.0.0, the version of rollout r-17"))
        let older = RolloutPolicy.decide(current, installed: try version("4.0.10"), merchant: merchant)
        #expect(older == .skip(
            "rollout r-17 targets molam-form 4.0.0, older than the installed 4.0.10"))
    }

    @Test("Geo: the country matches case-insensitively and trimmed; others and hosts without one skip")
    func geo() throws {
        let installed = try version("3.9.0")
        let targeted = try rollout(percentage: 100, strategy: .geo, countries: ["CI", " sn ", "ML"])
        for country in ["SN", "sn", " Sn "] {
            let merchant = MerchantProfile(merchantID: "m-1", country: country)
            let decision = RolloutPolicy.decide(targeted, installed: installed, merchant: merchant)
            guard case .eligible(let reason) = decision else {
                Issue.record("\(country): expected eligible, got \(decision)")
                continue
            }
            #expect(reason.contains("country \(country.trimmingCharacters(in: .whitespaces))"))
        }
        let outside = RolloutPolicy.decide(
            targeted, installed: installed, merchant: MerchantProfile(merchantID: "m-1", country: "BF"))
        #expect(outside == .skip("country BF is not among the rollout's target countries (CI, sn, ML)"))
        for country in [nil, "", "   "] as [String?] {
            let merchant = MerchantProfile(merchantID: "m-1", country: country)
            let unknown = RolloutPolicy.decide(targeted, installed: installed, merchant: merchant)
            guard case .skip(let reason) = unknown else {
                Issue.record("a host without a country must skip, got \(unknown)")
                continue
            }
            #expect(reason.contains("no country configured"))
        }
        // Inside the cohort, the percentage still applies.
        let none = try rollout(percentage: 0, strategy: .geo, countries: ["SN"])
        let decision = RolloutPolicy.decide(
            none, installed: installed, merchant: MerchantProfile(merchantID: "m-1", country: "SN"))
        guard case .skip(let reason) = decision else {
            Issue.record("expected skip at 0 %, got \(decision)")
            return
        }
        #expect(reason.contains("not selected"))
    }

    @Test("Merchant tier: the tier matches case-insensitively; other tiers and hosts without one skip")
    func tiers() throws {
        let installed = try version("3.9.0")
        let targeted = try rollout(percentage: 100, strategy: .merchantTier, tiers: ["gold", "Platinum"])
        let gold = RolloutPolicy.decide(
            targeted, installed: installed, merchant: MerchantProfile(merchantID: "m-1", tier: "GOLD"))
        guard case .eligible = gold else {
            Issue.record("expected eligible, got \(gold)")
            return
        }
        let bronze = RolloutPolicy.decide(
            targeted, installed: installed, merchant: MerchantProfile(merchantID: "m-1", tier: "bronze"))
        #expect(bronze == .skip(
            "merchant tier bronze is not among the rollout's target tiers (gold, Platinum)"))
        let unknown = RolloutPolicy.decide(
            targeted, installed: installed, merchant: MerchantProfile(merchantID: "m-1", country: "SN"))
        guard case .skip(let reason) = unknown else {
            Issue.record("a host without a tier must skip, got \(unknown)")
            return
        }
        #expect(reason.contains("no merchant tier configured"))
    }

    @Test("A host without a merchant id is never placed in a percentage cohort")
    func missingMerchantID() throws {
        let unnamed = MerchantProfile(merchantID: " ")
        let decision = RolloutPolicy.decide(
            try rollout(percentage: 100), installed: try version("3.9.0"), merchant: unnamed)
        guard case .skip(let reason) = decision else {
            Issue.record("expected skip, got \(decision)")
            return
        }
        #expect(reason.contains("no merchant id"))
    }

    // MARK: Decoding

    @Test("The API's rollout object decodes; an integer id becomes text and null lists are empty")
    func decodes() throws {
        let json = #"""
            {"id": 17, "plugin_name": "molam-form", "version": "4.0.0+build.7", "rollout_percentage": 12.5,
             "rollout_strategy": "merchant_tier", "target_countries": null, "target_tiers": ["gold"],
             "status": "rolled_back", "error_threshold": null}
            """#
        let rollout = try Rollout.decode(Data(json.utf8), source: Self.source, expectedPlugin: "molam-form")
        #expect(rollout.id == "17")
        #expect(rollout.version == SemanticVersion("4.0.0"))
        #expect(rollout.versionText == "4.0.0+build.7")
        #expect(rollout.percentage == 12.5)
        #expect(rollout.strategy == .merchantTier)
        #expect(rollout.targetCountries.isEmpty)
        #expect(rollout.targetTiers == ["gold"])
        #expect(rollout.status == .rolledBack)
        #expect(rollout.errorThreshold == nil)
        let minimal = #"""
            {"id": "r-1", "plugin_name": "molam-form", "version": "4.1.0", "rollout_percentage": 0,
             "rollout_strategy": "geo", "status": "active", "error_threshold": 0.02}
            """#
        let geo = try Rollout.decode(Data(minimal.utf8), source: Self.source, expectedPlugin: "molam-form")
        #expect(geo.targetCountries.isEmpty && geo.targetTiers.isEmpty)
        #expect(geo.errorThreshold == 0.02)
    }

    @Test("A decode error is .badAnswer naming the source and the field", arguments: [
        ("id", "<absent>"), ("id", "1.5"), ("id", #""""#), ("plugin_name", #""molam-pay""#),
        ("plugin_name", "<absent>"), ("version", #""4.0""#), ("version", "4"),
        ("rollout_percentage", "100.5"), ("rollout_percentage", "-1"), ("rollout_percentage", #""5""#),
        ("rollout_percentage", "true"), ("rollout_percentage", "<absent>"),
        ("rollout_strategy", #""canary""#), ("rollout_strategy", #""Random""#), ("status", #""done""#),
        ("status", "<absent>"), ("target_countries", #""SN""#), ("target_tiers", "[1]"),
        ("error_threshold", #""high""#), ("error_threshold", "-0.1"),
    ])
    func decodeErrors(field: String, value: String) throws {
        var object: [String: Any] = [
            "id": "r-17", "plugin_name": "molam-form", "version": "4.0.0", "rollout_percentage": 5,
            "rollout_strategy": "random", "target_countries": ["SN"], "target_tiers": [String](),
            "status": "active", "error_threshold": 0.05,
        ]
        if value == "<absent>" {
            object[field] = nil
        } else {
            object[field] = try JSONSerialization.jsonObject(
                with: Data(value.utf8), options: .fragmentsAllowed)
        }
        let data = try JSONSerialization.data(withJSONObject: object)
        do {
            let rollout = try Rollout.decode(data, source: Self.source, expectedPlugin: "molam-form")
            Issue.record("decoded \(rollout)")
        } catch {
            guard case .badAnswer(let message) = error else {
                Issue.record("expected .badAnswer, got \(error)")
                return
            }
            #expect(message.contains("'\(field)'"), "\(message)")
            #expect(message.contains(Self.source))
        }
    }

    @Test("A body that is not a JSON object is .badAnswer naming the source",
          arguments: ["", "null", "[]", "<html>", #""rollout""#])
    func notAnObject(body: String) {
        do {
            _ = try Rollout.decode(Data(body.utf8), source: Self.source, expectedPlugin: "molam-form")
            Issue.record("decoded \(body)")
        } catch {
            guard case .badAnswer(let message) = error else {
                Issue.record("expected .badAnswer, got \(error)")
                return
            }
            #expect(message.contains(Self.source))
        }
    }

    // MARK: Helpers

    private func version(_ text: String) throws -> SemanticVersion {
        try #require(SemanticVersion(text))
    }

    private func rollout(
        percentage: Double, versionText: String = "4.0.0", strategy: Rollout.Strategy = .random,
        countries: [String] = [], tiers: [String] = [], status: Rollout.Status = .active
    ) throws -> Rollout {
        Rollout(
            id: "r-17", pluginName: "molam-form", version: try version(versionText), versionText: versionText,
            percentage: percentage, strategy: strategy, targetCountries: countries, targetTiers: tiers,
            status: status)
    }

    /// Version-4-shaped UUIDs derived from SHA-256 of a counter: random-looking, uppercase (so the
    /// lowercasing matters), and the same on every run.
    private func merchantIDs(_ count: Int) throws -> [String] {
        try (0..<count).map { index in
            var bytes = try SHA256.digest(of: Array("merchant-\(index)".utf8))
            bytes[6] = (bytes[6] & 0x0f) | 0x40
            bytes[8] = (bytes[8] & 0x3f) | 0x80
            let uuid = UUID(uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
            return uuid.uuidString
        }
    }

    /// SHA-256 by coreutils' sha256sum, a computation independent of libcrypto and of our code.
    private func sha256sum(_ data: Data) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(data)
        try input.fileHandleForWriting.close()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
        let hex = String(decoding: printed, as: UTF8.self).prefix(64)
        try #require(hex.count == 64)
        return String(hex)
    }
}
