import UpgradeKit

/// `help [COMMAND]`: the overview, or one command's help, read from the specs in `Commands.all`.
enum HelpCommand: AgentCommand {
    static let spec = CommandSpec(
        name: "help", abstract: "Show help for a command.", arguments: "[COMMAND]", options: [],
        discussion: nil)

    /// The topic (a command's name) is a positional argument.
    static let readsPositionals = true

    /// Prints to stdout whatever `--json` or `--quiet` say: help is asked for, and is always shown.
    static func run(_ arguments: ParsedArguments, output: Output) -> ExitCode {
        guard let topic = arguments.positionals.first else {
            StandardStreams.out(CommandLineSpec.overview(version: UpgradeKitVersion.string))
            return .ok
        }
        guard let command = Commands.named(topic) else {
            let tool = CommandLineSpec.tool
            StandardStreams.err("\(tool): error: unknown command '\(topic)' (see '\(tool) --help')\n")
            return .usage
        }
        StandardStreams.out(CommandLineSpec.help(for: command.spec))
        return .ok
    }
}
