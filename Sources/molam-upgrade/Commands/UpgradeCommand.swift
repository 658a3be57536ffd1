import Foundation
import UpgradeKit

enum UpgradeCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let options = try upgradeOptions(arguments)
        if let splay = arguments.value("--splay") {
            guard let seconds = Double(splay), seconds >= 0, seconds <= 86_400 else {
                throw UsageError(description: "--splay: '\(splay)' is not a number of seconds (0–86400)",
                                 command: "upgrade")
            }
            // Spreads a fleet's cron runs so they do not all hit the API at once.
            Thread.sleep(forTimeInterval: Double.random(in: 0...seconds))
        }
        // A local archive names one install; the central API serves every configured one, in turn.
        let contexts = options.archive == nil
            ? try Commands.contexts(arguments, output: output) : [try Commands.context(arguments, output: output)]
        if contexts.count == 1, let only = contexts.first {
            return Commands.report(try Pipeline.upgrade(options, context: only), context: only, output: output)
        }
        var outcomes: [(RunOutcome, UpgradeContext)] = []
        var errors: [ExitCode] = []
        for context in contexts {
            // One shop's problem (its API answer, a bad plugin directory) must not keep the others
            // from upgrading.
            switch Result(catching: { () throws(UpgradeError) -> RunOutcome in
                try Pipeline.upgrade(options, context: context)
            }) {
            case .success(let outcome):
                outcomes.append((outcome, context))
            case .failure(let error):
                output.error("error: \(context.site.pluginDirectory): \(error)")
                errors.append(error.exitCode)
            }
        }
        return Commands.worst(errors + [Commands.report(outcomes, output: output)])
    }

    /// `[--archive PATH|URL --sha256 HEX] [--to VERSION] [--force] [--dry-run]`, shared with `check`.
    static func upgradeOptions(_ arguments: ParsedArguments) throws -> Pipeline.UpgradeOptions {
        let command = arguments.command.name
        var archive = arguments.value("--archive")
        let sha256 = arguments.value("--sha256")
        if archive != nil, sha256 == nil {
            throw UsageError(description: "--archive needs --sha256 HEX, the archive's expected checksum",
                             command: command)
        }
        if archive == nil, sha256 != nil {
            throw UsageError(description: "--sha256 goes with --archive PATH|URL", command: command)
        }
        if let path = archive, !path.hasPrefix("/"), !path.contains("://") {
            archive = FileManager.default.currentDirectoryPath + "/" + path
        }
        return Pipeline.UpgradeOptions(
            archive: archive, sha256: sha256, expectedVersion: try Commands.version(arguments, "--to"),
            force: arguments.flag("--force"), dryRun: arguments.flag("--dry-run"),
            trigger: archive == nil && !arguments.flag("--force") && arguments.value("--to") == nil ? "scheduled" : "manual")
    }
}

enum CheckCommand {
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

enum BackupCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let context = try Commands.context(arguments, output: output)
        return Commands.report(try Maintenance.backup(context: context), context: context, output: output)
    }
}

enum RecoverCommand {
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
                if outcome.exitCode == .rollbackFailed { output.error(text) } else { output.line(text) }
            }
        }
        return outcomes.contains { $0.exitCode == .rollbackFailed } ? .rollbackFailed : .ok
    }
}

enum VerifyCommand {
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
