/// The fixed step names of DESIGN.md; they appear in the journal, `history`, JSON and reports.
public enum StepName: String, Sendable, CaseIterable, Codable {
    case lock, recover, resolve, eligibility, download, backup, stage, swap, migrate, verify, commit, rollback
}

public enum StepStatus: String, Sendable, Codable { case started, done, failed, skipped }

/// How a run's rollback puts the owned tables back, decided when the backup is taken.
public enum TableRestore: String, Codable, Sendable {
    /// The release changes no schema: live rows stay as they are.
    case none
    /// Shadow tables were made before the window: merge the changed rows, rename.
    case shadow
    /// From the backup file (a manual rollback's own safety net).
    case file
}

/// A run's `rollback_status` (DESIGN.md): whether anything had to be put back, and how that went.
public enum RollbackStatus: String, Sendable, Codable {
    case notRequired = "not_required"
    case success
    case failed
}

/// What started a run.
public enum RunTrigger: String, Sendable, Codable {
    /// An operator's command.
    case manual
    /// The daily cron asking the central API.
    case scheduled
    /// The agent itself: a failed run's rollback, or a rollout rolled back upstream.
    case automatic
    /// `recover` finishing a run a crash interrupted.
    case recovery
}

/// The commands that open a journaled run.
public enum RunCommand: String, Sendable, Codable {
    case upgrade, rollback, backup
}

/// How a run ended. `running` and `rollingBack` are the only unfinished states; `recover` looks for them.
public enum RunStatus: String, Sendable, Codable {
    case running
    case rollingBack = "rolling_back"
    case succeeded
    case rolledBack = "rolled_back"
    case rollbackFailed = "rollback_failed"
    case failed           // stopped before changing the site (e.g. the backup failed)
    case refused          // release refused before any change
    case skipped          // nothing to do
    case dryRun = "dry_run"
    case aborted          // interrupted before any change; recovery only tidied up
    case unavailable      // the central API could not be reached for the release check; nothing changed
}

/// What recovery needs to know about a run beyond its steps: where things were put on disk and the
/// identities of the trees, saved before each risky step.
public struct RunState: Codable, Sendable, Equatable {
    public var workDirectory: String?
    /// Where the new tree was staged; after the swap, the old tree lives here.
    public var stagedTree: String?
    public var liveIdentityBefore: FileIdentity?
    public var stagedIdentity: FileIdentity?
    public var backupDirectory: String?
    public var backupID: String?
    /// Tables the new version owns that the old one did not: dropped on rollback.
    public var newTables: [String]?
    public var exchangeMethod: String?
    /// How a rollback puts the owned tables back (`TableRestore`); nil in runs journaled before it existed.
    public var tableRestore: TableRestore?
    public var targetManifestVersion: String?
    /// Outbox seq of the run's upgrade report and of its rollback initiate; the reports that need
    /// their ids wait for them.
    public var reportUpgradeSeq: Int64?
    public var reportRollbackSeq: Int64?
    public var reportOutcomeSent: Bool?
    public var reportPlugin: String?
    public var reportFromVersion: String?
    public var reportToVersion: String?
    public init() {}
}

public struct RunRecord: Sendable, Equatable {
    public var id: String
    public var command: String
    public var trigger: String
    public var plugin: String
    public var pluginDirectory: String
    public var fromVersion: String?
    public var toVersion: String?
    public var status: RunStatus
    public var rollbackStatus: String?
    public var error: String?
    public var exitCode: Int?
    public var dryRun: Bool
    public var startedAt: String
    public var finishedAt: String?
    public var state: RunState
}

public struct StepRecord: Sendable, Equatable {
    public var id: Int64
    public var runID: String
    public var name: String
    public var status: StepStatus
    public var startedAt: String
    public var finishedAt: String?
    public var durationMilliseconds: Int?
    public var detail: String?
    public var error: String?
}

public struct BackupRecord: Sendable, Equatable {
    public var id: String
    public var plugin: String
    public var version: String
    public var path: String
    public var createdAt: String
    public var sizeBytes: Int64
    public var runID: String?
    public var fileCount: Int
    public var tables: [String]
    /// The install the backup was taken from (nil for backups journaled before version 2).
    public var pluginDirectory: String? = nil
}

public struct RollbackRecord: Sendable, Equatable {
    public var id: Int64
    public var runID: String
    public var trigger: String
    public var reason: String
    public var fromVersion: String?
    public var toVersion: String?
    public var startedAt: String
    public var finishedAt: String?
    public var durationMilliseconds: Int?
    public var status: String
    public var filesRestored: Bool
    public var databaseRestored: Bool
}
