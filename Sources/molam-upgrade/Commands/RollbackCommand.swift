import Foundation
import UpgradeKit

enum RollbackCommand {
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
