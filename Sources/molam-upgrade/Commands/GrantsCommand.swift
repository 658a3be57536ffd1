import Foundation
import UpgradeKit

/// `grants`: the GRANT statements that confine a MySQL account to what the plugin owns, for an
/// administrator to run once. Prints them; changes nothing.
enum GrantsCommand: AgentCommand {
    static let spec = CommandSpec(
        name: "grants", abstract: "Print the MySQL GRANT statements that confine the agent's account to the plugin.",
        arguments: "[--account \"'USER'@'HOST'\"] [--tables NAME,...] [options]",
        options: [
            OptionSpec(names: ["--account"], value: "'USER'@'HOST'",
                       help: "The account to grant to (default: the configured user at the configured host)."),
            OptionSpec(names: ["--tables"], value: "NAME,...",
                       help: "Also the tables a coming release adds, comma-separated ({prefix} allowed)."),
        ],
        discussion: """
            Migrations on a mysql:// database run only under an account whose grants reach the plugin's
            tables and nothing else (unless --allow-wide-grants): the server then refuses any statement
            outside them. These statements give such an account read access to the database (backups, smoke
            checks), full rights on the tables the installed manifest owns, the migration ledger and the
            agent's tables beside each (_molam_shadow_, _molam_changes_, _molam_retired_, _molam_restore_,
            _molam_quarantine_), and the molam_scratch_* databases of dry runs. Run them as an administrator
            (after CREATE USER), e.g. molam-upgrade grants | mariadb. A release adding a table needs it
            granted first (--tables).
            """)

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let context = try Commands.context(arguments, output: output)
        let statements = try Maintenance.grantStatements(
            context: context, account: arguments.value("--account"),
            extraTables: (arguments.value("--tables") ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            }.filter { !$0.isEmpty })
        if output.json {
            output.emitJSON(["statements": statements])
        } else {
            statements.forEach(output.line)
        }
        return .ok
    }
}
