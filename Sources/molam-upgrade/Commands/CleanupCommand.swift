import Foundation
import UpgradeKit

/// `cleanup`: the backup retention policy, on every configured install.
enum CleanupCommand: AgentCommand {
    static let changesSite = true

    static let spec = CommandSpec(
        name: "cleanup", abstract: "Remove expired backups and old kept trees.",
        arguments: "[options]", options: [],
        discussion: """
            Backups older than 30 days are removed, except the newest backup of each of the two most
            recent versions, which is always kept.
            """)

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        var result = Maintenance.CleanupResult(removed: [], kept: [])
        for context in try Commands.contexts(arguments, output: output) {
            let one = try Maintenance.cleanup(context: context)
            result.removed += one.removed
            result.kept += one.kept
        }
        if output.json {
            output.emitJSON(["removed": result.removed.map(\.jsonObject), "kept": result.kept.map(\.jsonObject)])
        } else {
            output.line("removed \(result.removed.count) backups, kept \(result.kept.count)")
            for backup in result.removed { output.line("  removed \(backup.path)") }
        }
        return .ok
    }
}
