import Foundation
import UpgradeKit

/// `stats`: success rates and rollback figures from the journal (`ReadScope`).
enum StatsCommand: AgentCommand {
    static let spec = CommandSpec.journalReader(
        name: "stats", abstract: "Show success rates and rollback figures.")

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let scope = try ReadScope.resolve(arguments, output: output)
        guard let journal = try scope.openJournal() else {
            if output.json { output.emitJSON(["plugins": [Any]()]) } else { output.line("no runs yet") }
            return .ok
        }
        var stats = try journal.stats(now: Date())
        if let selector = scope.selector {
            // --plugin narrows the per-plugin rows; a directory stands for the plugins run there.
            let names = selector.hasPrefix("/")
                ? Set(try scope.runs(journal, limit: 100_000).map(\.plugin)) : [selector]
            stats.plugins = stats.plugins.filter { names.contains($0.plugin) }
        }
        if output.json {
            output.emitJSON([
                "plugins": stats.plugins.map {
                    ["plugin": $0.plugin, "upgrades": $0.upgrades, "succeeded": $0.succeeded,
                     "rolled_back": $0.rolledBack, "rollback_failed": $0.rollbackFailed,
                     "success_rate": $0.successRate ?? NSNull()] as [String: Any]
                },
                "average_rollback_ms": stats.averageRollbackMilliseconds ?? NSNull(),
                "rollbacks_last_24h": stats.rollbacksLast24Hours,
                "failed_rollbacks_last_7d": stats.failedRollbacksLast7Days,
            ] as [String: Any])
            return .ok
        }
        output.table(["PLUGIN", "UPGRADES", "SUCCEEDED", "ROLLED BACK", "ROLLBACK FAILED", "SUCCESS RATE"],
                     stats.plugins.map {
                         [$0.plugin, "\($0.upgrades)", "\($0.succeeded)", "\($0.rolledBack)", "\($0.rollbackFailed)",
                          $0.successRate.map { String(format: "%.1f %%", $0 * 100) } ?? "-"]
                     })
        output.line("")
        output.table(["FIGURE", "VALUE"], [
            ["average rollback", stats.averageRollbackMilliseconds.map { String(format: "%.0f ms", $0) } ?? "-"],
            ["rollbacks, last 24 h", "\(stats.rollbacksLast24Hours)"],
            ["failed rollbacks, last 7 days", "\(stats.failedRollbacksLast7Days)"],
        ])
        return .ok
    }
}
