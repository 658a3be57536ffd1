/// The command-line surface: every command, its options and their help, in one place so that
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
}

enum CommandLineSpec {
    static let tool = "molam-upgrade"

    static let globalOptions: [OptionSpec] = [
        OptionSpec(names: ["--config"], value: "PATH",
                   help: "Read the agent configuration from PATH (default: /etc/molam-upgrade/agent.json)."),
        OptionSpec(names: ["--plugin"], value: "NAME|DIR",
                   help: "Act on the configured plugin install with this name or directory only."),
        OptionSpec(names: ["--plugin-dir"], value: "DIR", help: "The live plugin directory."),
        OptionSpec(names: ["--db"], value: "DSN", help: "The plugin database, as sqlite:///absolute/path.db."),
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

    /// status, history and stats read the journal only.
    static let readDiscussion = """
        Needs only the state directory: --state-dir DIR alone reads its journal (status then lists every
        install the journal knows). With several installs configured, every install is shown; --plugin
        NAME|DIR narrows to one.
        """

    static let commands: [CommandSpec] = [
        CommandSpec(
            name: "upgrade", abstract: "Upgrade the plugin to a new release.",
            arguments: "[--archive PATH|URL --sha256 HEX] [options]",
            options: archiveOptions + [
                OptionSpec(names: ["--force"], value: nil,
                           help: "Skip rollout eligibility; allow a downgrade or a reinstall. Never skips checksums or signatures."),
                OptionSpec(names: ["--dry-run"], value: nil,
                           help: "Stage the release and check its migrations on a scratch copy; change nothing."),
                OptionSpec(names: ["--no-report"], value: nil, help: "Do not report to the central API."),
                OptionSpec(names: ["--splay"], value: "SECONDS", help: "First sleep a random time up to SECONDS (cron)."),
            ],
            discussion: """
                Without --archive, asks the central API for the rollout of each configured plugin, decides
                eligibility locally, and fetches the signed release. Steps: lock, recover, resolve,
                eligibility, download, stage, backup, swap, migrate, verify, commit. Any failure after the
                backup rolls the site back to the old version (exit 1). A release's download_url must be
                https:// (plain http:// only to loopback); any other URL is refused before anything is fetched
                (exit 4). A local --archive must be a regular file (exit 2 otherwise). Reports are queued in
                the journal and delivered after the run has released its lock, for at most 20 s; the rest
                waits for the next run or `flush`.
                """),
        CommandSpec(
            name: "check", abstract: "Show what an upgrade would do and why, changing nothing.",
            arguments: "[--archive PATH|URL --sha256 HEX] [options]", options: archiveOptions + [
                OptionSpec(names: ["--force"], value: nil, help: "Judge the release as `upgrade --force` would."),
            ], discussion: """
                With --json, the decision carries the central API's fields should_upgrade, reason, rollout_id,
                rollout_percentage, rollout_strategy and version, besides plugin, installed_version,
                release_version, decision and exit_code.
                """),
        CommandSpec(
            name: "rollback", abstract: "Put a previous version back from the kept tree or a backup.",
            arguments: "[--to VERSION] [--reason TEXT]",
            options: [
                OptionSpec(names: ["--to"], value: "VERSION",
                           help: "The version to put back (default: the newest backup of another version)."),
                OptionSpec(names: ["--reason"], value: "TEXT", help: "Why, for the journal and reports."),
                OptionSpec(names: ["--force"], value: nil, help: "Restore even the version that is installed."),
                OptionSpec(names: ["--no-report"], value: nil, help: "Do not report to the central API."),
            ],
            discussion: """
                The current version is backed up first. The owned tables are restored from the backup, so
                rows written since that backup are not kept.
                """),
        CommandSpec(name: "backup", abstract: "Back up the plugin's files and owned tables now.",
                    arguments: "[options]", options: [], discussion: nil),
        CommandSpec(name: "verify", abstract: "Run the installed version's smoke checks.",
                    arguments: "[options]", options: [], discussion: nil),
        CommandSpec(name: "recover", abstract: "Finish an interrupted upgrade or rollback.",
                    arguments: "[options]", options: [],
                    discussion: "Every command that changes something runs this first."),
        CommandSpec(name: "status", abstract: "Show the installed version, the last run, kept trees and backups.",
                    arguments: "[options]", options: [], discussion: readDiscussion),
        CommandSpec(name: "history", abstract: "List past runs with their steps.", arguments: "[--limit N]",
                    options: [OptionSpec(names: ["--limit"], value: "N", help: "Show the N newest runs (default: 20).")],
                    discussion: readDiscussion),
        CommandSpec(name: "stats", abstract: "Show success rates and rollback figures.",
                    arguments: "[options]", options: [], discussion: readDiscussion),
        CommandSpec(name: "flush", abstract: "Deliver queued reports to the central API.",
                    arguments: "[options]", options: [],
                    discussion: """
                        Takes only the outbox lock, never the run lock, so it can run beside an upgrade. Exits 75
                        if reports are still pending (the API could not take them all within 120 s), or if
                        another molam-upgrade process is delivering them already.
                        """),
        CommandSpec(name: "cleanup", abstract: "Remove expired backups and old kept trees.",
                    arguments: "[options]", options: [],
                    discussion: """
                        Backups older than 30 days are removed, except the newest backup of each of the two most
                        recent versions, which is always kept.
                        """),
        CommandSpec(
            name: "release",
            abstract: "Create a release-signing key pair, or sign a release archive's metadata (for plugin CI).",
            arguments: "keygen --out PREFIX | sign --key FILE --archive PATH [--url URL]",
            options: [
                OptionSpec(names: ["--out"], value: "PREFIX",
                           help: "keygen: write PREFIX.key (private, mode 0600) and PREFIX.pub; never overwrite."),
                OptionSpec(names: ["--key"], value: "FILE",
                           help: "sign: the private key from keygen; refused if group or others can read it."),
                OptionSpec(names: ["--archive"], value: "PATH",
                           help: "sign: the release archive (.zip, .tar.gz, .tar.zst)."),
                OptionSpec(names: ["--url"], value: "URL",
                           help: "sign: the https:// download URL to publish (default: the archive's file:// URL, "
                               + "which agents refuse to download: give --url for a release they will fetch)."),
                OptionSpec(names: ["--plugin"], value: "NAME",
                           help: "sign: fail unless the archive's manifest names plugin NAME."),
                OptionSpec(names: ["--version"], value: "V",
                           help: "sign: fail unless the archive's manifest has version V."),
            ],
            discussion: """
                sign prints the release metadata JSON the central API serves. The Ed25519 signature covers the
                plugin name, version, SHA-256 and size, not the URL. Sites trust the key through the line in
                PREFIX.pub, listed in agent.json's release_public_keys.
                """),
        CommandSpec(name: "help", abstract: "Show help for a command.", arguments: "[COMMAND]", options: [],
                    discussion: nil),
    ]

    static func command(named name: String) -> CommandSpec? { commands.first { $0.name == name } }

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

            EXIT STATUS: 0 done or nothing to do; 1 failed and rolled back; 2 usage or configuration error;
              3 rollback failed, the site needs a human; 4 release refused; 75 temporarily unavailable.

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
