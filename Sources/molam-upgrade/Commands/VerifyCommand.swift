import Foundation
import UpgradeKit

/// `verify`: the installed version's smoke checks, on demand; a failed check exits 1.
enum VerifyCommand: AgentCommand {
    static let spec = CommandSpec(
        name: "verify", abstract: "Run the installed version's smoke checks.",
        arguments: "[options]", options: [],
        discussion: """
            With version_url set (agent.json or --version-url), first asks the site whether it serves the
            installed version: the files on disk are one thing, what the site serves is what takes payments.
            """)

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let context = try Commands.context(arguments, output: output)
        let (manifest, results) = try Maintenance.verify(context: context)
        let failure = results.first { !$0.passed }
        if output.json {
            output.emitJSON([
                "plugin": manifest.name, "version": manifest.version.description, "passed": failure == nil,
                "checks": results.map {
                    ["index": $0.index, "type": $0.kind, "check": $0.summary, "passed": $0.passed, "detail": $0.detail]
                        as [String: Any]
                },
            ] as [String: Any])
        } else {
            output.table(["#", "TYPE", "CHECK", "RESULT"], results.map {
                ["\($0.index)", $0.kind, $0.summary, ($0.passed ? "ok" : "FAILED") + ": " + $0.detail]
            })
            if let failure {
                output.error("\(manifest.name) \(manifest.version): smoke check \(failure.index) failed: \(failure.detail)")
            } else {
                output.line("\(manifest.name) \(manifest.version): \(results.count) smoke checks passed")
            }
        }
        return failure == nil ? .ok : .rolledBack
    }
}
