/// The command-line surface: how a command's spec reads and how help is laid out. Each command declares
/// its own spec beside its run function (`Commands/`); the options several share are here, so that
/// `--help`, parsing and the man page cannot drift apart.
struct OptionSpec {
    let names: [String]          // e.g. ["-q", "--quiet"]
    let value: String?           // e.g. "PATH"; nil for a flag
    let help: String
}

struct CommandSpec {
    let name: String
    let abstract: String
    let arguments: String
    let options: [OptionSpec]
    let discussion: String?

    var allOptions: [OptionSpec] { options + CommandLineSpec.globalOptions }

    func option(named name: String) -> OptionSpec? {
        allOptions.first { $0.names.contains(name) }
    }

    /// status, history and stats: commands that only read the journal, whose help says so in the same
    /// words (`CommandLineSpec.readDiscussion`).
    static func journalReader(
        name: String, abstract: String, arguments: String = "[options]", options: [OptionSpec] = []
    ) -> CommandSpec {
        CommandSpec(
            name: name, abstract: abstract, arguments: arguments, options: options,
            discussion: CommandLineSpec.readDiscussion)
    }
}

enum CommandLineSpec {
    static let tool = "molam-upgrade"

    static let globalOptions: [OptionSpec] = [
        OptionSpec(names: ["--config"], value: "PATH",
                   help: "Read the agent configuration from PATH (default: /etc/molam-upgrade/agent.json)."),
        OptionSpec(names: ["--plugin"], value: "NAME|DIR",
                   help: "Act on the configured plugin install with this name or directory only."),
        OptionSpec(names: ["--plugin-dir"], value: "DIR", help: "The live plugin directory."),
        OptionSpec(names: ["--db"], value: "DSN",
                   help: "The plugin database: sqlite:///PATH or mysql://USER@HOST[:PORT]/DB[?socket=PATH]."),
        OptionSpec(names: ["--db-password-file"], value: "PATH",
                   help: "Read the mysql:// database's password from PATH (root's, mode 0600, not a link)."),
        OptionSpec(names: ["--wp-config"], value: "PATH",
                   help: "Take the MySQL database, password and table prefix from this wp-config.php (for --db)."),
        OptionSpec(names: ["--allow-wide-grants"], value: nil,
                   help: "Let migrations run with a MySQL account that can write outside the plugin's tables."),
        OptionSpec(names: ["--table-prefix"], value: "PREFIX",
                   help: "The site's database table prefix (default: wp_; may be empty)."),
        OptionSpec(names: ["--version-url"], value: "URL",
                   help: "A site URL whose body reports the plugin version it runs; wait for it after every swap."),
        OptionSpec(names: ["--state-dir"], value: "DIR",
                   help: "Where the journal, backups and work files live (default: /var/lib/molam-upgrade)."),
        OptionSpec(names: ["--json"], value: nil, help: "Print the result as JSON on stdout."),
        OptionSpec(names: ["-q", "--quiet"], value: nil, help: "Print nothing but errors."),
        OptionSpec(names: ["-h", "--help"], value: nil, help: "Show help for this command."),
    ]

    static let archiveOptions: [OptionSpec] = [
        OptionSpec(names: ["--archive"], value: "PATH|URL",
                   help: "Use this release archive (.zip, .tar.gz, .tar.zst) instead of asking the central API."),
        OptionSpec(names: ["--sha256"], value: "HEX", help: "The archive's expected SHA-256 (required with --archive)."),
        OptionSpec(names: ["--to"], value: "VERSION", help: "The version to install (it must be the rollout's unless --force)."),
    ]

    /// status, history and stats read the journal only (`CommandSpec.journalReader`).
    static let readDiscussion = """
        Needs only the state directory: --state-dir DIR alone reads its journal (status then lists every
        install the journal knows). With several installs configured, every install is shown; --plugin
        NAME|DIR narrows to one.
        """

    /// Every command's spec, from the registry: what the overview lists.
    static var commands: [CommandSpec] { Commands.all.map { $0.spec } }

    static func overview(version: String) -> String {
        let width = (commands.map(\.name.count).max() ?? 8) + 2
        var text = """
            OVERVIEW: Upgrade the Molam payment plugin safely: back up, verify, swap atomically, migrate,
            smoke-test, and roll back by itself when anything fails.

            USAGE: \(tool) <command> [options]

            COMMANDS:

            """
        for command in commands {
            text += "  " + command.name.padding(toLength: width, withPad: " ", startingAt: 0) + command.abstract + "\n"
        }
        text += "\nOPTIONS:\n"
        text += optionLines(globalOptions + [OptionSpec(names: ["--version"], value: nil, help: "Show the version.")])
        text += """

            EXIT STATUS: 0 done or nothing to do; 1 failed and rolled back, or stopped by SIGINT, SIGTERM
              or SIGHUP with the site on the old version; 2 usage or configuration error; 3 rollback
              failed, the site needs a human; 4 release refused; 75 temporarily unavailable. A signal
              during a commit, rollback or recovery lets it finish first (SIGNALS in man molam-upgrade).

            See '\(tool) help <command>' for a command's options, and man \(tool) for the rest.
            """
        return text + "\n"
    }

    static func help(for command: CommandSpec) -> String {
        var text = "OVERVIEW: \(command.abstract)\n\nUSAGE: \(tool) \(command.name) \(command.arguments)\n"
        if let discussion = command.discussion { text += "\n" + discussion + "\n" }
        if !command.options.isEmpty {
            text += "\nOPTIONS:\n" + optionLines(command.options)
        }
        text += "\nGLOBAL OPTIONS:\n" + optionLines(globalOptions)
        return text
    }

    static func optionLines(_ options: [OptionSpec]) -> String {
        let labels = options.map { option in
            option.names.joined(separator: ", ") + (option.value.map { " " + $0 } ?? "")
        }
        let width = (labels.map(\.count).max() ?? 10) + 2
        return zip(labels, options).map { label, option in
            "  " + label.padding(toLength: width, withPad: " ", startingAt: 0) + option.help + "\n"
        }.joined()
    }
}
