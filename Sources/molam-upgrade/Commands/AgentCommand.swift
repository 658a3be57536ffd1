import UpgradeKit

/// One command of the agent: its spec (what `--help` and parsing read) sits beside the function that
/// runs it, so adding a command is one new file and one line in `Commands.all`. Sendable because that
/// registry is a global list of these types.
protocol AgentCommand: Sendable {
    static var spec: CommandSpec { get }

    /// True for a command that reads positional arguments itself (release's action, help's topic);
    /// every other command is refused any before it runs.
    static var readsPositionals: Bool { get }

    /// True for a command that changes the site or the state directory (upgrade, rollback, backup,
    /// recover, cleanup): SIGINT, SIGTERM and SIGHUP then let it stop safely or finish (`Signals`)
    /// instead of killing it. The others keep the default: they die at once, having changed nothing.
    static var changesSite: Bool { get }

    /// Runs the parsed command line; a thrown `UsageError` or `UpgradeError` becomes its exit code.
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode
}

extension AgentCommand {
    static var readsPositionals: Bool { false }
    static var changesSite: Bool { false }
}
