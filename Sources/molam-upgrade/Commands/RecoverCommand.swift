import Foundation
import UpgradeKit

/// `recover`: finishes what interrupted runs left, on every configured install.
enum RecoverCommand: AgentCommand {
    static let changesSite = true

    static let spec = CommandSpec(
        name: "recover", abstract: "Finish an interrupted upgrade or rollback.",
        arguments: "[options]", options: [],
        discussion: "Every command that changes something runs this first.")

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        var outcomes: [RunOutcome] = []
        for context in try Commands.contexts(arguments, output: output) {
            outcomes += try Recovery.run(context: context)
        }
        if output.json {
            output.emitJSON(["recovered": outcomes.map { $0.jsonObject(steps: []) }])
        } else if outcomes.isEmpty {
            output.line("nothing to recover")
        } else {
            for outcome in outcomes {
                let text = "run \(outcome.runID ?? "?") (\(outcome.command) \(outcome.fromVersion ?? "?") → "
                    + "\(outcome.toVersion ?? "?")): \(outcome.message)"
                if outcome.exitCode == .rollbackFailed {
                    output.error(text + (outcome.signalNote.map { " (\($0))" } ?? ""))
                } else {
                    output.line(text)
                    if let signalNote = outcome.signalNote { output.error(signalNote) }
                }
            }
        }
        return outcomes.contains { $0.exitCode == .rollbackFailed } ? .rollbackFailed : .ok
    }
}
