import Foundation
import UpgradeKit

/// `backup`: a backup of the one install named, taken now rather than as an upgrade's step.
enum BackupCommand: AgentCommand {
    static let changesSite = true

    static let spec = CommandSpec(
        name: "backup", abstract: "Back up the plugin's files and owned tables now.",
        arguments: "[options]", options: [], discussion: nil)

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let context = try Commands.context(arguments, output: output)
        return Commands.report(try Maintenance.backup(context: context), context: context, output: output)
    }
}
