import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The commands that change a site: `upgrade` (UpgradeRun.swift, its dry run in DryRun.swift) and
/// `rollback` (RollbackRun.swift). Each takes the lock, recovers interrupted runs, and goes through the
/// steps of `Steps/`, one type per step with its undo beside it; `Rollback.automatic` walks the undos.
///
/// Step order: lock, recover, resolve, eligibility, download, stage, backup, swap, migrate, verify,
/// commit.
public enum Pipeline {
    public struct UpgradeOptions: Sendable {
        /// A local release archive (or http(s) URL); nil resolves the release through the central API.
        public var archive: String?
        public var sha256: String?
        public var expectedVersion: SemanticVersion?
        public var force: Bool
        public var dryRun: Bool
        public var trigger: RunTrigger

        public init(
            archive: String? = nil, sha256: String? = nil, expectedVersion: SemanticVersion? = nil, force: Bool = false,
            dryRun: Bool = false, trigger: RunTrigger = .manual
        ) {
            self.archive = archive
            self.sha256 = sha256
            self.expectedVersion = expectedVersion
            self.force = force
            self.dryRun = dryRun
            self.trigger = trigger
        }

        var source: String { archive ?? "the central API" }
    }

    public struct RollbackOptions: Sendable {
        public var targetVersion: SemanticVersion?
        public var reason: String?
        public var force: Bool
        /// Only versions below the installed one (a rollout rolled back upstream).
        public var olderOnly: Bool
        /// `--restore-tables`: when the schema cannot go back through down migrations, restore the
        /// backup's tables, keeping the rows written since in quarantine.
        public var restoreTables = false
        /// A rollout rolled back upstream: never restores tables.
        public var fleet = false
        public var trigger: RunTrigger
        public init(
            targetVersion: SemanticVersion? = nil, reason: String? = nil, force: Bool = false, olderOnly: Bool = false,
            trigger: RunTrigger = .manual
        ) {
            self.targetVersion = targetVersion
            self.reason = reason
            self.force = force
            self.olderOnly = olderOnly
            self.trigger = trigger
        }
    }

    // MARK: Entry points

    public static func upgrade(_ options: UpgradeOptions, context: UpgradeContext) throws(UpgradeError) -> RunOutcome {
        if options.archive != nil { try validate(sha256: options.sha256 ?? "") }
        let session = try ChangingSession(context: context, command: "upgrade")
        return try session.perform {
            let (run, recovered) = try session.beginRun(
                .upgrade, trigger: options.trigger, plugin: pluginNameGuess(context),
                toVersion: options.expectedVersion?.description, dryRun: options.dryRun)
            var outcome = try upgrade(run: run, options: options)
            if outcome.status == .skipped, let reason = outcome.rollBackReason {
                // The rollout of the version this host runs was rolled back upstream: put the
                // previous version back, as its own journaled run under the same lock.
                let (rollbackRun, _) = try session.beginRun(
                    .rollback, trigger: .automatic, plugin: outcome.plugin, fromVersion: outcome.fromVersion)
                outcome = try rollback(
                    run: rollbackRun, options: {
                        var fleet = RollbackOptions(reason: reason, olderOnly: true, trigger: .automatic)
                        fleet.fleet = true
                        return fleet
                    }())
            }
            outcome.recovered = recovered
            return outcome
        }
    }

    /// Puts a previous version back from its backup: a run of its own, journaled like an upgrade,
    /// that backs up the current version first and is itself rolled back if the old version fails.
    public static func rollback(_ options: RollbackOptions, context: UpgradeContext) throws(UpgradeError) -> RunOutcome {
        let session = try ChangingSession(context: context, command: "rollback")
        return try session.perform {
            let (run, recovered) = try session.beginRun(
                .rollback, trigger: options.trigger, plugin: pluginNameGuess(context),
                toVersion: options.targetVersion?.description)
            var outcome = try rollback(run: run, options: options)
            outcome.recovered = recovered
            return outcome
        }
    }

    // MARK: Helpers

    /// The release's migrations with `{prefix}` standing for the site's table prefix.
    static func loadMigrations(
        _ manifest: PluginManifest, root: String, tablePrefix: String, refusing: Bool
    ) throws -> [Migration] {
        guard let folder = manifest.migrations else { return [] }
        do {
            return try Migration.load(from: (root as NSString).appendingPathComponent(folder))
                .map { $0.resolvingPrefix(tablePrefix) }
        } catch {
            throw refusing ? UpgradeError.refused("release \(manifest.name) \(manifest.version): \(error)") : error
        }
    }

    /// The tables a run backs up: both versions' owned tables and the migration ledger.
    static func ownedTables(_ installed: PluginManifest, _ target: PluginManifest) -> [String] {
        var tables: [String] = []
        for table in installed.tables + target.tables + ["molam_schema_migrations"] where !tables.contains(table) {
            tables.append(table)
        }
        return tables
    }

    static func pluginNameGuess(_ context: UpgradeContext) -> String {
        (try? PluginManifest.load(pluginDirectory: context.site.pluginDirectory).name)
            ?? (context.site.pluginDirectory as NSString).lastPathComponent
    }

    static func validate(sha256: String) throws(UpgradeError) {
        guard sha256.count == 64, sha256.allSatisfy(\.isHexDigit) else {
            throw .configuration("--sha256: '\(sha256)' is not 64 hexadecimal characters")
        }
    }
}
