import Foundation
import UpgradeKit

/// `history`: the journal's newest runs with their steps (`ReadScope`: the state directory is enough).
enum HistoryCommand: AgentCommand {
    static let spec = CommandSpec.journalReader(
        name: "history", abstract: "List past runs with their steps.", arguments: "[--limit N]",
        options: [OptionSpec(names: ["--limit"], value: "N", help: "Show the N newest runs (default: 20).")])

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        var limit = 20
        if let text = arguments.value("--limit") {
            guard let value = Int(text), value > 0 else {
                throw UsageError(description: "--limit: '\(text)' is not a positive number", command: "history")
            }
            limit = value
        }
        let scope = try ReadScope.resolve(arguments, output: output)
        guard let journal = try scope.openJournal() else {
            if output.json { output.emitJSON(["runs": [Any]()]) } else { output.line("no runs yet") }
            return .ok
        }
        let runs = try scope.runs(journal, limit: limit)
        if output.json {
            var objects: [[String: Any]] = []
            for run in runs {
                var object = run.jsonObject
                object["steps"] = try journal.steps(run: run.id).map(\.jsonObject)
                objects.append(object)
            }
            output.emitJSON(["runs": objects])
            return .ok
        }
        if runs.isEmpty { output.line("no runs yet") }
        for (index, run) in runs.enumerated() {
            if index > 0 { output.line("") }
            output.line("\(run.startedAt)  \(run.command) \(run.plugin) \(run.fromVersion ?? "?") → "
                        + "\(run.toVersion ?? "?")  \(run.status.rawValue)"
                        + (run.rollbackStatus.map { "  rollback: \($0)" } ?? "") + "  [\(run.id)]")
            if let error = run.error { output.line("  \(error)") }
            output.table(["  STEP", "STATUS", "MS", "DETAIL"], try journal.steps(run: run.id).map {
                ["  " + $0.name, $0.status.rawValue, $0.durationMilliseconds.map(String.init) ?? "",
                 $0.error ?? $0.detail ?? ""]
            })
        }
        return .ok
    }
}
