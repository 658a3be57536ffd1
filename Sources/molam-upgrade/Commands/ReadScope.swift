import Foundation
import UpgradeKit

/// What `history`, `stats` and `status` read: the journal of one state directory, and the installs
/// to describe. They need no site: `--state-dir DIR` alone reads that directory's journal, and a
/// configuration with several installs needs no `--plugin` (every install is shown; `--plugin`
/// narrows to one). The commands that change something keep their requirements (`Commands.context`).
struct ReadScope {
    let stateDirectory: String
    /// Configured installs (or the one `--plugin-dir`/`--db`/`--wp-config` named), else those the journal knows.
    let installs: [Install]
    /// `--plugin NAME|DIR`, as given.
    let selector: String?

    struct Install {
        let context: UpgradeContext
        /// False for an install known only from the journal: its database is not configured.
        let configured: Bool
    }

    var journalPath: String { StatePaths(root: stateDirectory).journal }

    static func resolve(_ arguments: ParsedArguments, output: Output) throws -> ReadScope {
        let selector = arguments.value("--plugin")
        // A site named on the command line is used as before.
        if arguments.value("--plugin-dir") != nil || arguments.value("--db") != nil
            || arguments.value("--wp-config") != nil {
            let contexts = try Commands.contexts(arguments, output: output)
            return ReadScope(
                stateDirectory: contexts.first?.site.stateDirectory
                    ?? AgentConfiguration.defaultStateDirectory,
                installs: contexts.map { Install(context: $0, configured: true) }, selector: selector)
        }
        let explicit = arguments.value("--config")
        let path = explicit ?? AgentConfiguration.defaultPath
        let stateOption = arguments.value("--state-dir").map(absolute)
        // With only --state-dir, the default configuration is not needed and not read: the journal
        // of that directory is the whole story.
        if explicit != nil || (stateOption == nil && FileManager.default.fileExists(atPath: path)) {
            let file = try AgentConfiguration.load(path: path)
            let state = stateOption ?? absolute(file.stateDirectory)
            var installs = file.installs
            if let selector {
                let wanted = selector.hasPrefix("/") ? absolute(selector) : selector
                installs = installs.filter { $0.name == wanted || $0.pluginDirectory == wanted }
                guard !installs.isEmpty else {
                    throw ConfigurationError("--plugin: no configured plugin install is named or located at '\(selector)'")
                }
            }
            let contexts = installs.map { install -> Install in
                var context = UpgradeContext(
                    site: SiteConfiguration(pluginDirectory: install.pluginDirectory, database: install.database,
                                            stateDirectory: state),
                    progress: output.progress())
                context.agent = file.settings
                return Install(context: context, configured: true)
            }
            return ReadScope(stateDirectory: state, installs: contexts, selector: selector)
        }
        let state = stateOption ?? AgentConfiguration.defaultStateDirectory
        return ReadScope(stateDirectory: state, installs: try journalInstalls(state: state, selector: selector,
                                                                              output: output),
                         selector: selector)
    }

    /// The installs the journal has runs for, newest first, when no configuration names them.
    private static func journalInstalls(state: String, selector: String?, output: Output) throws -> [Install] {
        let journalPath = StatePaths(root: state).journal
        guard FileManager.default.fileExists(atPath: journalPath) else { return [] }
        let journal: Journal
        do {
            journal = try Journal(path: journalPath)
        } catch {
            throw UpgradeError.configuration("\(error)")
        }
        var seen = Set<String>()
        var installs: [Install] = []
        for run in try journal.recentRuns(limit: 100_000) where !seen.contains(run.pluginDirectory) {
            seen.insert(run.pluginDirectory)
            guard matches(selector, plugin: run.plugin, directory: run.pluginDirectory) else { continue }
            // The database is not known here; status does not open it.
            let site = SiteConfiguration(
                pluginDirectory: run.pluginDirectory, database: .notKnown, stateDirectory: state)
            installs.append(Install(context: UpgradeContext(site: site, progress: output.progress()),
                                    configured: false))
        }
        return installs
    }

    /// Whether a run of `plugin` in `directory` is one `--plugin NAME|DIR` asks for.
    static func matches(_ selector: String?, plugin: String, directory: String) -> Bool {
        guard let selector else { return true }
        return selector.hasPrefix("/") ? absolute(selector) == directory : selector == plugin
    }

    /// Opens the journal for reading; nil when there is none yet.
    func openJournal() throws -> Journal? {
        guard FileManager.default.fileExists(atPath: journalPath) else { return nil }
        do {
            return try Journal(path: journalPath)
        } catch {
            throw UpgradeError.configuration("\(error)")
        }
    }

    /// Runs `--plugin` asks for, newest first (all of them without `--plugin`).
    func runs(_ journal: Journal, limit: Int) throws -> [RunRecord] {
        guard let selector else { return try journal.recentRuns(limit: limit) }
        if selector.hasPrefix("/") {
            return try journal.recentRuns(limit: limit, pluginDirectory: Self.absolute(selector))
        }
        return try journal.recentRuns(limit: limit, plugin: selector)
    }

    /// Lexical absolute path (no symlink resolution), as the configuration does it.
    static func absolute(_ path: String) -> String { SiteConfiguration.absolute(path) }
}
