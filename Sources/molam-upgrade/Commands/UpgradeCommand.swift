import Foundation
import UpgradeKit

enum UpgradeCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let options = try archiveOptions(arguments)
        if let splay = arguments.value("--splay") {
            guard let seconds = Double(splay), seconds >= 0, seconds <= 86_400 else {
                throw UsageError(description: "--splay: '\(splay)' is not a number of seconds (0–86400)",
                                 command: "upgrade")
            }
            // Spreads a fleet's cron runs so they do not all hit the API at once.
            Thread.sleep(forTimeInterval: Double.random(in: 0...seconds))
        }
        let context = try Commands.context(arguments, output: output)
        let outcome = try Pipeline.upgrade(options, context: context)
        return Commands.report(outcome, context: context, output: output)
    }

    /// `--archive PATH --sha256 HEX [--to VERSION] [--force] [--dry-run]`, shared with `check`.
    static func archiveOptions(_ arguments: ParsedArguments) throws -> Pipeline.UpgradeOptions {
        let command = arguments.command.name
        guard let archive = arguments.value("--archive") else {
            throw UsageError(
                description: "\(command) needs --archive PATH --sha256 HEX (the central API client is not available yet)",
                command: command)
        }
        guard let sha256 = arguments.value("--sha256") else {
            throw UsageError(description: "--archive needs --sha256 HEX, the archive's expected checksum",
                             command: command)
        }
        return Pipeline.UpgradeOptions(
            archive: archive.hasPrefix("/") ? archive : FileManager.default.currentDirectoryPath + "/" + archive,
            sha256: sha256, expectedVersion: try Commands.version(arguments, "--to"),
            force: arguments.flag("--force"), dryRun: arguments.flag("--dry-run"), trigger: "manual")
    }
}

enum CheckCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let options = try UpgradeCommand.archiveOptions(arguments)
        let context = try Commands.context(arguments, output: output)
        let result = try Check.run(options, context: context)
        if output.json {
            output.emitJSON([
                "plugin": result.plugin, "installed_version": result.installedVersion,
                "release_version": result.releaseVersion ?? NSNull(), "decision": result.decision.rawValue,
                "reason": result.reason, "exit_code": Int(result.exitCode.rawValue),
            ] as [String: Any])
        } else {
            output.line("\(result.decision.rawValue): \(result.reason)")
        }
        return result.exitCode
    }
}

enum RollbackCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let options = Pipeline.RollbackOptions(
            targetVersion: try Commands.version(arguments, "--to"), reason: arguments.value("--reason"),
            force: arguments.flag("--force"))
        let context = try Commands.context(arguments, output: output)
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
        let context = try Commands.context(arguments, output: output)
        let outcomes = try Recovery.run(context: context)
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
