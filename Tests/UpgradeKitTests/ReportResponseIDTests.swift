import Foundation
import Testing
@testable import UpgradeKit

/// The id a report's answer carries, which the reports that depend on it need: top level as DESIGN.md
/// has it, or wrapped one level down as the seeds' answers are.
@Suite("report answer ids")
struct ReportResponseIDTests {
    @Test("Top-level and seeds-wrapped ids, strings or integers", arguments: [
        (#"{"id": "upg-1"}"#, "upg-1"),
        (#"{"id": 42}"#, "42"),
        (#"{"ok": true, "rollback_id": "rollback-xyz-789"}"#, "rollback-xyz-789"),
        (#"{"ok": true, "upgrade_log": {"id": "abc-123", "rollback_status": "success"}}"#, "abc-123"),
        (#"{"ok": true, "rollout": {"id": 1, "plugin_name": "woocommerce"}}"#, "1"),
    ])
    func found(body: String, id: String) {
        #expect(ReportDelivery.responseID(Data(body.utf8)) == id)
    }

    @Test("No id, an empty one, a fraction or a boolean is no id", arguments: [
        #"{"ok": true}"#, #"{"id": ""}"#, #"{"id": 1.5}"#, #"{"id": true}"#, #"[{"id": 1}]"#, "not json",
    ])
    func missing(body: String) {
        #expect(ReportDelivery.responseID(Data(body.utf8)) == nil)
    }
}
