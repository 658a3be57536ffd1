import Foundation
import UpgradeKit

/// Dispatches a command line to its command and turns the result into an exit code.
enum MolamUpgradeCommand {
    static func main(_ arguments: [String]) -> Int32 {
        guard let first = arguments.first else {
            FileHandle.standardError.write(Data(CommandLineSpec.overview(version: UpgradeKitVersion.string).utf8))
            return ExitCode.usage.rawValue
        }
        switch first {
        case "-h", "--help":
            print(CommandLineSpec.overview(version: UpgradeKitVersion.string), terminator: "")
            return 0
        case "--version", "version":
            print("\(CommandLineSpec.tool) \(UpgradeKitVersion.string)")
            return 0
        default:
            break
        }
        guard let spec = CommandLineSpec.command(named: first) else {
            let usage = UsageError(description: "unknown command '\(first)'", command: nil)
            FileHandle.standardError.write(Data("\(CommandLineSpec.tool): error: \(usage) (\(usage.hint))\n".utf8))
            return ExitCode.usage.rawValue
        }
        let parsed: ParsedArguments
        do {
            parsed = try ArgumentParser.parse(Array(arguments.dropFirst()), for: spec)
        } catch {
            FileHandle.standardError.write(Data("\(CommandLineSpec.tool): error: \(error) (\(error.hint))\n".utf8))
            return ExitCode.usage.rawValue
        }
        if parsed.flag("--help") {
            print(CommandLineSpec.help(for: spec), terminator: "")
            return 0
        }
        if spec.name == "help" {
            guard let topic = parsed.positionals.first else {
                print(CommandLineSpec.overview(version: UpgradeKitVersion.string), terminator: "")
                return 0
            }
            guard let command = CommandLineSpec.command(named: topic) else {
                FileHandle.standardError.write(Data(
                    "\(CommandLineSpec.tool): error: unknown command '\(topic)' (see '\(CommandLineSpec.tool) --help')\n".utf8))
                return ExitCode.usage.rawValue
            }
            print(CommandLineSpec.help(for: command), terminator: "")
            return 0
        }
        let output = Output(json: parsed.flag("--json"), quiet: parsed.flag("--quiet"))
        // `release` takes its action (keygen, sign) as a positional argument and checks it itself.
        if spec.name != "release", let extra = parsed.positionals.first {
            output.error("error: unexpected argument '\(extra)' for '\(spec.name)' (see '\(CommandLineSpec.tool) \(spec.name) --help')")
            return ExitCode.usage.rawValue
        }
        do {
            // A testing aid (molam-upgrade(1), FAULT INJECTION); a typo in it must not pass silently.
            try FaultInjection.configure(environment: ProcessInfo.processInfo.environment)
            return try Commands.run(spec.name, parsed, output: output).rawValue
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
