import Foundation
import UpgradeKit

enum FlushCommand {
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
