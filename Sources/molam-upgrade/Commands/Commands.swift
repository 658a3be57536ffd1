import Foundation
import UpgradeKit

/// The registry of commands, and what several of them share: the site contexts they act on,
/// version options, and printing a run's outcome.
enum Commands {
    /// Every command, in the order the overview lists them. The dispatcher, `help` and the overview's
    /// command list all read this list: a command not named here does not exist.
    static let all: [any AgentCommand.Type] = [
        UpgradeCommand.self, CheckCommand.self, RollbackCommand.self, BackupCommand.self,
        VerifyCommand.self, RecoverCommand.self, StatusCommand.self, HistoryCommand.self,
        StatsCommand.self, FlushCommand.self, CleanupCommand.self, GrantsCommand.self, ReleaseCommand.self,
        HelpCommand.self,
    ]

    static func named(_ name: String) -> (any AgentCommand.Type)? { all.first { $0.spec.name == name } }

    static func configuration(_ arguments: ParsedArguments) throws -> AgentConfiguration {
        try AgentConfiguration.resolve(
            configPath: arguments.value("--config"), pluginDirectory: arguments.value("--plugin-dir"),
            database: arguments.value("--db"), stateDirectory: arguments.value("--state-dir"),
            plugin: arguments.value("--plugin"), tablePrefix: arguments.value("--table-prefix"),
            versionURL: arguments.value("--version-url"), databasePasswordFile: arguments.value("--db-password-file"),
            wordPressConfig: arguments.value("--wp-config"), allowWideGrants: arguments.flag("--allow-wide-grants"))
    }

    /// One context per configured plugin install (`--plugin` narrows them to one).
    static func contexts(_ arguments: ParsedArguments, output: Output) throws -> [UpgradeContext] {
        let configuration = try configuration(arguments)
        return configuration.sites.map { site in
            var context = UpgradeContext(site: site, progress: output.progress())
            context.agent = configuration.settings
            context.reportsEnabled = configuration.settings.apiURL != nil && !arguments.flag("--no-report")
            return context
        }
    }

    /// The context of the one install a command acts on; several configured need `--plugin`.
    static func context(_ arguments: ParsedArguments, output: Output) throws -> UpgradeContext {
        let all = try contexts(arguments, output: output)
        guard all.count == 1, let only = all.first else {
            throw UsageError(
                description: "the configuration lists \(all.count) plugin installs; choose one with --plugin NAME|DIR",
                command: arguments.command.name)
        }
        return only
    }

    static func version(_ arguments: ParsedArguments, _ option: String) throws -> SemanticVersion? {
        guard let text = arguments.value(option) else { return nil }
        guard let version = SemanticVersion(text) else {
            throw UsageError(description: "\(option): '\(text)' is not a semantic version (e.g. 4.0.1)",
                             command: arguments.command.name)
        }
        return version
    }

    /// Prints a run's outcome: JSON with its steps, or one line (stdout on success, stderr otherwise).
    static func report(_ outcome: RunOutcome, context: UpgradeContext, output: Output) -> ExitCode {
        report([(outcome, context)], output: output)
    }

    /// Prints the outcomes of one command over one or several installs. JSON is the outcome's object
    /// for one install, `{"installs": [...]}` for several.
    static func report(_ outcomes: [(RunOutcome, UpgradeContext)], output: Output) -> ExitCode {
        let several = outcomes.count > 1
        if output.json {
            let objects = outcomes.map { outcome, context -> [String: Any] in
                var steps: [StepRecord] = []
                if let id = outcome.runID, let journal = try? Maintenance.openJournal(context: context) {
                    steps = (try? journal.steps(run: id)) ?? []
                }
                var object = outcome.jsonObject(steps: steps)
                object["plugin_dir"] = context.site.pluginDirectory
                return object
            }
            if several { output.emitJSON(["installs": objects]) } else if let only = objects.first { output.emitJSON(only) }
            return worst(outcomes.map(\.0.exitCode))
        }
        for (outcome, context) in outcomes {
            let prefix = several ? "\(context.site.pluginDirectory): " : ""
            for recovered in outcome.recovered {
                output.line("\(prefix)recovered run \(recovered.runID ?? "?"): \(recovered.message)")
            }
            let note = outcome.signalNote.map { " (\($0))" } ?? ""
            if outcome.exitCode == .ok {
                output.line(prefix + outcome.message)
                // One line on stderr: the command finished, but a signal asked it to stop.
                if let signalNote = outcome.signalNote { output.error(prefix + signalNote) }
            } else {
                output.error(prefix + outcome.message + note)
            }
            // Reports another process is delivering right now need nobody's attention.
            if let reports = outcome.reports, reports.pending > 0, !reports.otherDeliverer,
               let reason = reports.stoppedBy {
                output.note("\(prefix)\(reports.pending) report\(reports.pending == 1 ? "" : "s") queued for the "
                            + "central API (\(reason)); `molam-upgrade flush` delivers them")
            }
        }
        return worst(outcomes.map(\.0.exitCode))
    }

    /// The exit code of a command over several installs: the one that most needs a human.
    static func worst(_ codes: [ExitCode]) -> ExitCode {
        let order: [ExitCode] = [.rollbackFailed, .rolledBack, .refused, .unavailable, .usage, .ok]
        return order.first { codes.contains($0) } ?? .ok
    }
}
