import Foundation
import UpgradeKit

/// `rollback`: puts a previous version back on the one install named.
enum RollbackCommand: AgentCommand {
    static let changesSite = true

    static let spec = CommandSpec(
        name: "rollback", abstract: "Put a previous version back from the kept tree or a backup.",
        arguments: "[--to VERSION] [--reason TEXT]",
        options: [
            OptionSpec(names: ["--to"], value: "VERSION",
                       help: "The version to put back (default: the newest backup of another version)."),
            OptionSpec(names: ["--reason"], value: "TEXT", help: "Why, for the journal and reports."),
            OptionSpec(names: ["--force"], value: nil, help: "Restore even the version that is installed."),
            OptionSpec(names: ["--no-report"], value: nil, help: "Do not report to the central API."),
        ],
        discussion: """
            The current version is backed up first. The owned tables are restored from the backup, so
            rows written since that backup are not kept.
            """)

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let options = Pipeline.RollbackOptions(
            targetVersion: try Commands.version(arguments, "--to"), reason: arguments.value("--reason"),
            force: arguments.flag("--force"))
        var context = try Commands.context(arguments, output: output)
        if arguments.flag("--no-report") { context.reportsEnabled = false }
        let outcome = try Pipeline.rollback(options, context: context)
        return Commands.report(outcome, context: context, output: output)
    }
}
