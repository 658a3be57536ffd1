import Foundation
import UpgradeKit

/// `rollback`: puts a previous version back on the one install named.
enum RollbackCommand: AgentCommand {
    static let changesSite = true

    static let spec = CommandSpec(
        name: "rollback", abstract: "Put a previous version back from the kept tree or a backup.",
        arguments: "[--to VERSION] [--reason TEXT] [--restore-tables]",
        options: [
            OptionSpec(names: ["--to"], value: "VERSION",
                       help: "The version to put back (default: the newest backup of another version)."),
            OptionSpec(names: ["--reason"], value: "TEXT", help: "Why, for the journal and reports."),
            OptionSpec(names: ["--force"], value: nil, help: "Restore even the version that is installed."),
            OptionSpec(names: ["--restore-tables"], value: nil,
                       help: "When down migrations are missing, restore the backup's tables; rows written since are quarantined."),
            OptionSpec(names: ["--no-report"], value: nil, help: "Do not report to the central API."),
        ],
        discussion: """
            The current version is backed up first. The schema goes back through the down migrations
            (NNNN_name.down.sql) of the installed release, newest first, and every row is kept. When one
            is missing, the rollback is refused (exit 4) and says how many rows written since the
            backup a table restore would drop; --restore-tables restores the backup's tables anyway,
            keeping those rows in _molam_quarantine_<table>.
            """)

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        var options = Pipeline.RollbackOptions(
            targetVersion: try Commands.version(arguments, "--to"), reason: arguments.value("--reason"),
            force: arguments.flag("--force"))
        options.restoreTables = arguments.flag("--restore-tables")
        var context = try Commands.context(arguments, output: output)
        if arguments.flag("--no-report") { context.reportsEnabled = false }
        let outcome = try Pipeline.rollback(options, context: context)
        return Commands.report(outcome, context: context, output: output)
    }
}
