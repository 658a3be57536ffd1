import Foundation
import UpgradeKit

/// Dispatches a command line to its command and turns the result into an exit code.
enum MolamUpgradeCommand {
    static func main(_ arguments: [String]) -> Int32 {
        guard let first = arguments.first else {
            StandardStreams.err(CommandLineSpec.overview(version: UpgradeKitVersion.string))
            return ExitCode.usage.rawValue
        }
        switch first {
        case "-h", "--help":
            StandardStreams.out(CommandLineSpec.overview(version: UpgradeKitVersion.string))
            return 0
        case "--version", "version":
            StandardStreams.out("\(CommandLineSpec.tool) \(UpgradeKitVersion.string)\n")
            return 0
        default:
            break
        }
        guard let command = Commands.named(first) else {
            let usage = UsageError(description: "unknown command '\(first)'", command: nil)
            StandardStreams.err("\(CommandLineSpec.tool): error: \(usage) (\(usage.hint))\n")
            return ExitCode.usage.rawValue
        }
        let spec = command.spec
        let parsed: ParsedArguments
        do {
            parsed = try ArgumentParser.parse(Array(arguments.dropFirst()), for: spec)
        } catch {
            StandardStreams.err("\(CommandLineSpec.tool): error: \(error) (\(error.hint))\n")
            return ExitCode.usage.rawValue
        }
        if parsed.flag("--help") {
            StandardStreams.out(CommandLineSpec.help(for: spec))
            return 0
        }
        let output = Output(json: parsed.flag("--json"), quiet: parsed.flag("--quiet"))
        // Help reads nothing but the specs, so it answers before the fault-injection variable is read:
        // a mistyped testing aid must not hide the help.
        if command is HelpCommand.Type {
            return HelpCommand.run(parsed, output: output).rawValue
        }
        if !command.readsPositionals, let extra = parsed.positionals.first {
            output.error("error: unexpected argument '\(extra)' for '\(spec.name)' "
                         + "(see '\(CommandLineSpec.tool) \(spec.name) --help')")
            return ExitCode.usage.rawValue
        }
        do {
            // A testing aid (molam-upgrade(1), FAULT INJECTION); a typo in it must not pass silently.
            try FaultInjection.configure(environment: ProcessInfo.processInfo.environment)
            if command.changesSite { Signals.install() }
            let code = try command.run(parsed, output: output)
            if let signal = Signals.received, !output.wroteError {
                // The command finished what it was doing (a recovery, a cleanup) and says why it
                // stopped so soon after; a run's own outcome line names the signal otherwise.
                output.error("\(Signals.name(signal)) received during \(spec.name): it was finished first")
            }
            return code.rawValue
        } catch let error as UsageError {
            output.error("error: \(error) (\(error.hint))")
            return ExitCode.usage.rawValue
        } catch let error as UpgradeError {
            output.error("error: \(error)")
            return error.exitCode.rawValue
        } catch let error as ConfigurationError {
            output.error("error: \(error)")
            return ExitCode.usage.rawValue
        } catch {
            output.error("error: \(error)")
            return ExitCode.rolledBack.rawValue
        }
    }
}
