import Foundation
import UpgradeKit

/// `flush`: delivers the report outbox under its own lock, so it can run beside an upgrade.
enum FlushCommand: AgentCommand {
    static let spec = CommandSpec(
        name: "flush", abstract: "Deliver queued reports to the central API.",
        arguments: "[options]", options: [],
        discussion: """
            Takes only the outbox lock, never the run lock, so it can run beside an upgrade. Exits 75
            if reports are still pending (the API could not take them all within 120 s), or if
            another molam-upgrade process is delivering them already.
            """)

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        // One journal for every install: the first context names the state directory and the API.
        guard let context = try Commands.contexts(arguments, output: output).first else { return .ok }
        let result = try Maintenance.flush(context: context)
        if output.json {
            output.emitJSON([
                "delivered": result.delivered, "rejected": result.rejected, "pending": result.pending,
                "requests": result.requests, "stopped_by": result.stoppedBy ?? NSNull(),
            ] as [String: Any])
        } else {
            var text = "delivered \(result.delivered) report\(result.delivered == 1 ? "" : "s")"
            if result.rejected > 0 { text += ", \(result.rejected) refused by the API" }
            text += "; \(result.pending) pending"
            output.line(text)
            if let reason = result.stoppedBy, result.pending > 0 { output.error("reports still pending: \(reason)") }
        }
        return result.pending > 0 ? .unavailable : .ok
    }
}
