import Foundation
import UpgradeKit

/// `upgrade`: the pipeline over each configured install (or the one a local archive names); one
/// shop's failure does not keep the others from upgrading.
enum UpgradeCommand: AgentCommand {
    static let changesSite = true

    static let spec = CommandSpec(
        name: "upgrade", abstract: "Upgrade the plugin to a new release.",
        arguments: "[--archive PATH|URL --sha256 HEX] [options]",
        options: CommandLineSpec.archiveOptions + [
            OptionSpec(names: ["--force"], value: nil,
                       help: "Skip rollout eligibility; allow a downgrade or a reinstall. "
                           + "Never skips checksums or signatures."),
            OptionSpec(names: ["--dry-run"], value: nil,
                       help: "Stage the release and check its migrations on a scratch copy; change nothing."),
            OptionSpec(names: ["--no-report"], value: nil, help: "Do not report to the central API."),
            OptionSpec(names: ["--splay"], value: "SECONDS",
                       help: "First sleep a random time up to SECONDS (cron)."),
        ],
        discussion: """
            Without --archive, asks the central API for the rollout of each configured plugin, decides
            eligibility locally, and fetches the signed release. Steps: lock, recover, resolve,
            eligibility, download, stage, backup, swap, migrate, verify, commit. Before anything changes,
            stage compiles every PHP file of the release, runs its before_swap checks, and (as root, with
            version_url or http checks) asks a private copy of the site running it: a release that would
            not load is refused (exit 4). After the swap, verify waits until version_url reports the new
            version; a 5xx or a PHP fatal fails at once. Any failure after the backup rolls the site back
            to the old version (exit 1). A release's download_url must be https:// (plain http:// only to
            loopback); any other URL is refused before anything is fetched (exit 4). A local --archive must be a regular file (exit 2 otherwise). Reports are queued in
            the journal and delivered after the run has released its lock, for at most 20 s; the rest
            waits for the next run or `flush`.
            """)

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
        // After a signal, the installs not yet started are left for the next run.
        for context in contexts where Signals.received == nil {
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
            trigger: archive == nil && !arguments.flag("--force") && arguments.value("--to") == nil ? .scheduled : .manual)
    }
}
