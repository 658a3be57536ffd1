import Testing
import UpgradeKit

@Suite("semantic versions")
struct SemanticVersionTests {
    @Test("Numeric fields compare as numbers and pre-releases sort below releases")
    func ordering() throws {
        let ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                       "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "4.0.9", "4.0.10", "4.1.0", "10.0.0"]
        let versions = try ordered.map { try #require(SemanticVersion($0)) }
        for (lower, higher) in zip(versions, versions.dropFirst()) {
            #expect(lower < higher, "\(lower) < \(higher)")
            #expect(!(higher < lower))
        }
        #expect(SemanticVersion("4.0.0+build.7") == SemanticVersion("4.0.0"))
    }

    @Test("Malformed versions are rejected", arguments: [
        "", "4", "4.0", "4.0.0.0", "04.0.0", "4.0.x", "4.0.0-", "4.0.0-a..b", "4.0.0+", " 4.0.0", "v4.0.0",
        "4.0.0-é",
    ])
    func rejects(text: String) {
        #expect(SemanticVersion(text) == nil)
    }
}
