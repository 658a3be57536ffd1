import Foundation
import UpgradeKit

/// `check`: the decision `upgrade` would take with the same options, changing nothing.
enum CheckCommand: AgentCommand {
    static let spec = CommandSpec(
        name: "check", abstract: "Show what an upgrade would do and why, changing nothing.",
        arguments: "[--archive PATH|URL --sha256 HEX] [options]",
        options: CommandLineSpec.archiveOptions + [
            OptionSpec(names: ["--force"], value: nil, help: "Judge the release as `upgrade --force` would."),
        ],
        discussion: """
            With --json, the decision carries the central API's fields should_upgrade, reason, rollout_id,
            rollout_percentage, rollout_strategy and version, besides plugin, installed_version,
            release_version, decision and exit_code.
            """)

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let options = try UpgradeCommand.upgradeOptions(arguments)
        let contexts = options.archive == nil
            ? try Commands.contexts(arguments, output: output) : [try Commands.context(arguments, output: output)]
        var results: [Check.Result] = []
        var codes: [ExitCode] = []
        for context in contexts {
            let result = try Check.run(options, context: context)
            results.append(result)
            codes.append(result.exitCode)
        }
        if output.json {
            let objects = results.map { result in
                // The seeds' decision fields (should_upgrade, reason, rollout_id, rollout_percentage,
                // rollout_strategy, version) first, then ours.
                result.seedsDecision.merging([
                    "plugin": result.plugin, "installed_version": result.installedVersion,
                    "release_version": result.releaseVersion ?? NSNull(), "decision": result.decision.rawValue,
                    "reason": result.reason, "exit_code": Int(result.exitCode.rawValue),
                ] as [String: Any]) { _, ours in ours }
            }
            if let only = objects.first, objects.count == 1 {
                output.emitJSON(only)
            } else {
                output.emitJSON(["installs": objects])
            }
        } else {
            for (result, context) in zip(results, contexts) {
                let prefix = contexts.count > 1 ? "\(context.site.pluginDirectory): " : ""
                output.line("\(prefix)\(result.decision.rawValue): \(result.reason)")
            }
        }
        return Commands.worst(codes)
    }
}
