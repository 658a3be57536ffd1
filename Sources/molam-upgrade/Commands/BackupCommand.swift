import Foundation
import UpgradeKit

enum BackupCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let context = try Commands.context(arguments, output: output)
        return Commands.report(try Maintenance.backup(context: context), context: context, output: output)
    }
}
