import Foundation
import MolamSQLite

/// The fixed step names of DESIGN.md; they appear in the journal, `history`, JSON and reports.
public enum StepName: String, Sendable, CaseIterable, Codable {
    case lock, recover, resolve, eligibility, download, backup, stage, swap, migrate, verify, commit, rollback
}

public enum StepStatus: String, Sendable, Codable { case started, done, failed, skipped }

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

public struct JournalError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ context: String, _ error: any Error) { description = "journal \(context): \(error)" }
    init(_ description: String) { self.description = description }
}

/// The local journal: `<state-dir>/journal.db`, SQLite in WAL mode with `synchronous=FULL`, so a
/// step recorded as done is on disk before the next step starts (sqlite.org/wal.html: in WAL mode
/// FULL syncs the WAL on every commit). Intent is written before each step, outcome after.
///
/// Not Sendable: one connection, used from the thread that opened it.
public final class Journal {
    public static let schemaVersion = 2
    public let path: String
    let db: SQLiteConnection

    public init(path: String) throws(JournalError) {
        self.path = path
        do {
            db = try SQLiteConnection(path: path, mode: .readWriteCreate)
            try db.execute("PRAGMA journal_mode=WAL")
            try db.execute("PRAGMA synchronous=FULL")
            try db.execute("PRAGMA foreign_keys=ON")
            try migrate()
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError("\(path)", error)
        }
    }

    /// Forward-only schema migrations keyed by `PRAGMA user_version`.
    private func migrate() throws {
        let version = Int(try db.scalar("PRAGMA user_version")?.intValue ?? 0)
        if version > Self.schemaVersion {
            throw JournalError(
                "\(path) has schema version \(version), newer than this molam-upgrade understands "
                    + "(\(Self.schemaVersion)); upgrade molam-upgrade itself")
        }
        if version < 1 {
            try db.transaction(.exclusive) {
                try db.execute(Self.schemaV1)
                try db.execute("PRAGMA user_version = 1")
            }
        }
        if version < 2 {
            try db.transaction(.exclusive) {
                try db.executeScript(Self.schemaV2)
                try db.execute("PRAGMA user_version = 2")
            }
        }
    }

    /// Version 2: reports that wait for another report's id (a step needs its upgrade's id, a
    /// rollback's `complete` its `initiate`'s), reports the API refused for good, the highest version
    /// each install has accepted (rollback-attack protection), and backups tied to their install.
    private static let schemaV2 = """
        ALTER TABLE outbox ADD COLUMN run_id TEXT;
        ALTER TABLE outbox ADD COLUMN depends_on INTEGER REFERENCES outbox(seq);
        ALTER TABLE outbox ADD COLUMN ref_field TEXT;
        ALTER TABLE outbox ADD COLUMN expects_id INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE outbox ADD COLUMN response_id TEXT;
        ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
        UPDATE outbox SET status = 'delivered' WHERE delivered_at IS NOT NULL;
        CREATE INDEX outbox_pending ON outbox(status, seq);
        CREATE TABLE accepted_versions (
            plugin_dir TEXT PRIMARY KEY,
            plugin TEXT NOT NULL,
            version TEXT NOT NULL,
            accepted_at TEXT NOT NULL
        );
        ALTER TABLE backups ADD COLUMN plugin_dir TEXT;
        UPDATE backups SET plugin_dir = (SELECT plugin_dir FROM runs WHERE runs.id = backups.run_id);
        """

    private static let schemaV1 = """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            command TEXT NOT NULL,
            trigger TEXT NOT NULL,
            plugin TEXT NOT NULL,
            plugin_dir TEXT NOT NULL,
            from_version TEXT,
            to_version TEXT,
            status TEXT NOT NULL,
            rollback_status TEXT,
            error TEXT,
            exit_code INTEGER,
            dry_run INTEGER NOT NULL DEFAULT 0,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            state TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX runs_status ON runs(status);
        CREATE TABLE steps (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            duration_ms INTEGER,
            detail TEXT,
            error TEXT
        );
        CREATE INDEX steps_run ON steps(run_id, id);
        CREATE TABLE backups (
            id TEXT PRIMARY KEY,
            plugin TEXT NOT NULL,
            version TEXT NOT NULL,
            path TEXT NOT NULL,
            created_at TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            run_id TEXT,
            file_count INTEGER NOT NULL,
            tables TEXT NOT NULL,
            deleted_at TEXT
        );
        CREATE TABLE rollbacks (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            trigger TEXT NOT NULL,
            reason TEXT NOT NULL,
            from_version TEXT,
            to_version TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            duration_ms INTEGER,
            status TEXT NOT NULL,
            files_restored INTEGER NOT NULL DEFAULT 0,
            db_restored INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            payload TEXT NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            delivered_at TEXT,
            last_error TEXT
        );
        """

    // MARK: Time

    /// UTC with milliseconds, fixed width, so text order is time order.
    public static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    public static func date(_ timestamp: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: timestamp)
    }

    // MARK: Runs

    public func beginRun(
        command: String, trigger: String, plugin: String, pluginDirectory: String,
        fromVersion: String?, toVersion: String?, dryRun: Bool, now: Date
    ) throws(JournalError) -> String {
        let id = UUID().uuidString.lowercased()
        try write("begin run") {
            try db.run(
                """
                INSERT INTO runs (id, command, trigger, plugin, plugin_dir, from_version, to_version, status,
                                  dry_run, started_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)
                """,
                [.text(id), .text(command), .text(trigger), .text(plugin), .text(pluginDirectory),
                 Self.optionalText(fromVersion), Self.optionalText(toVersion), .integer(dryRun ? 1 : 0),
                 .text(Self.timestamp(now))])
        }
        return id
    }

    public func describeRun(run: String, plugin: String?, from: String?, to: String?) throws(JournalError) {
        try write("update run") {
            try db.run(
                """
                UPDATE runs SET plugin = coalesce(?, plugin), from_version = coalesce(?, from_version),
                                to_version = coalesce(?, to_version)
                WHERE id = ?
                """,
                [Self.optionalText(plugin), Self.optionalText(from), Self.optionalText(to), .text(run)])
        }
    }

    public func saveState(run: String, _ state: RunState) throws(JournalError) {
        let json: String
        do {
            json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        } catch {
            throw JournalError("encode run state", error)
        }
        try write("save run state") {
            try db.run("UPDATE runs SET state = ? WHERE id = ?", [.text(json), .text(run)])
        }
    }

    public func setStatus(run: String, _ status: RunStatus) throws(JournalError) {
        try write("update run status") {
            try db.run("UPDATE runs SET status = ? WHERE id = ?", [.text(status.rawValue), .text(run)])
        }
    }

    public func finishRun(
        run: String, status: RunStatus, rollbackStatus: String?, error: String?, exitCode: Int, now: Date
    ) throws(JournalError) {
        try write("finish run") {
            try db.run(
                """
                UPDATE runs SET status = ?, rollback_status = ?, error = ?, exit_code = ?, finished_at = ?
                WHERE id = ?
                """,
                [.text(status.rawValue), Self.optionalText(rollbackStatus), Self.optionalText(error),
                 .integer(Int64(exitCode)), .text(Self.timestamp(now)), .text(run)])
        }
    }

    public func unfinishedRuns() throws(JournalError) -> [RunRecord] {
        try runs(where: "status IN ('running', 'rolling_back')", limit: 100, ascending: true)
    }

    public func run(id: String) throws(JournalError) -> RunRecord? {
        try runs(where: "id = ?", bindings: [.text(id)], limit: 1).first
    }

    /// Newest first.
    public func recentRuns(limit: Int, plugin: String? = nil, pluginDirectory: String? = nil) throws(JournalError) -> [RunRecord] {
        try runs(
            where: "(?1 IS NULL OR plugin = ?1) AND (?2 IS NULL OR plugin_dir = ?2)",
            bindings: [Self.optionalText(plugin), Self.optionalText(pluginDirectory)], limit: limit)
    }

    private func runs(
        where condition: String, bindings: [SQLiteValue] = [], limit: Int, ascending: Bool = false
    ) throws(JournalError) -> [RunRecord] {
        try read("read runs") {
            try db.query(
                // The journal's own sequence, never the wall clock: one run under a clock set years
                // ahead must not make later runs look older than it.
                "SELECT * FROM runs WHERE \(condition) ORDER BY rowid \(ascending ? "ASC" : "DESC") "
                    + "LIMIT \(max(0, limit))",
                bindings
            ).map { row in
                let stateJSON = row["state"].stringValue ?? "{}"
                let state = (try? JSONDecoder().decode(RunState.self, from: Data(stateJSON.utf8))) ?? RunState()
                return RunRecord(
                    id: row["id"].stringValue ?? "",
                    command: row["command"].stringValue ?? "",
                    trigger: row["trigger"].stringValue ?? "",
                    plugin: row["plugin"].stringValue ?? "",
                    pluginDirectory: row["plugin_dir"].stringValue ?? "",
                    fromVersion: row["from_version"].stringValue,
                    toVersion: row["to_version"].stringValue,
                    status: RunStatus(rawValue: row["status"].stringValue ?? "") ?? .failed,
                    rollbackStatus: row["rollback_status"].stringValue,
                    error: row["error"].stringValue,
                    exitCode: row["exit_code"].intValue.map { Int($0) },
                    dryRun: row["dry_run"].intValue == 1,
                    startedAt: row["started_at"].stringValue ?? "",
                    finishedAt: row["finished_at"].stringValue,
                    state: state)
            }
        }
    }

    // MARK: Steps

    /// Journals the intent to run a step; returns its id for `finishStep`.
    public func startStep(run: String, _ name: StepName, detail: String? = nil, now: Date) throws(JournalError) -> Int64 {
        try write("start step \(name.rawValue)") {
            try db.run(
                "INSERT INTO steps (run_id, name, status, started_at, detail) VALUES (?, ?, 'started', ?, ?)",
                [.text(run), .text(name.rawValue), .text(Self.timestamp(now)), Self.optionalText(detail)])
            return db.lastInsertRowID
        }
    }

    public func finishStep(
        _ id: Int64, status: StepStatus, detail: String? = nil, error: String? = nil, now: Date
    ) throws(JournalError) {
        try write("finish step") {
            try db.run(
                """
                UPDATE steps SET status = ?, finished_at = ?, detail = coalesce(?, detail), error = ?,
                    duration_ms = CAST(round((julianday(?) - julianday(started_at)) * 86400000) AS INTEGER)
                WHERE id = ?
                """,
                [.text(status.rawValue), .text(Self.timestamp(now)), Self.optionalText(detail),
                 Self.optionalText(error), .text(Self.timestamp(now)), .integer(id)])
        }
    }

    /// A step that did not run (skipped) or finished at once, in one write.
    public func recordStep(
        run: String, _ name: StepName, status: StepStatus, detail: String? = nil, now: Date
    ) throws(JournalError) {
        let id = try startStep(run: run, name, detail: detail, now: now)
        try finishStep(id, status: status, now: now)
    }

    public func steps(run: String) throws(JournalError) -> [StepRecord] {
        try read("read steps") {
            try db.query("SELECT * FROM steps WHERE run_id = ? ORDER BY id", [.text(run)]).map { row in
                StepRecord(
                    id: row["id"].intValue ?? 0,
                    runID: row["run_id"].stringValue ?? "",
                    name: row["name"].stringValue ?? "",
                    status: StepStatus(rawValue: row["status"].stringValue ?? "") ?? .failed,
                    startedAt: row["started_at"].stringValue ?? "",
                    finishedAt: row["finished_at"].stringValue,
                    durationMilliseconds: row["duration_ms"].intValue.map { Int($0) },
                    detail: row["detail"].stringValue,
                    error: row["error"].stringValue)
            }
        }
    }

    // MARK: Rollbacks

    public func startRollback(
        run: String, trigger: String, reason: String, from: String?, to: String?, now: Date
    ) throws(JournalError) -> Int64 {
        try write("start rollback") {
            try db.run(
                """
                INSERT INTO rollbacks (run_id, trigger, reason, from_version, to_version, started_at, status)
                VALUES (?, ?, ?, ?, ?, ?, 'running')
                """,
                [.text(run), .text(trigger), .text(reason), Self.optionalText(from), Self.optionalText(to),
                 .text(Self.timestamp(now))])
            return db.lastInsertRowID
        }
    }

    public func finishRollback(
        _ id: Int64, success: Bool, durationMilliseconds: Int, filesRestored: Bool, databaseRestored: Bool, now: Date
    ) throws(JournalError) {
        try write("finish rollback") {
            try db.run(
                """
                UPDATE rollbacks SET status = ?, finished_at = ?, duration_ms = ?, files_restored = ?, db_restored = ?
                WHERE id = ?
                """,
                [.text(success ? "success" : "failed"), .text(Self.timestamp(now)),
                 .integer(Int64(durationMilliseconds)), .integer(filesRestored ? 1 : 0),
                 .integer(databaseRestored ? 1 : 0), .integer(id)])
        }
    }

    public func rollbacks(run: String) throws(JournalError) -> [RollbackRecord] {
        try read("read rollbacks") {
            try db.query("SELECT * FROM rollbacks WHERE run_id = ? ORDER BY id", [.text(run)]).map(Self.rollback)
        }
    }

    private static func rollback(_ row: SQLiteRow) -> RollbackRecord {
        RollbackRecord(
            id: row["id"].intValue ?? 0,
            runID: row["run_id"].stringValue ?? "",
            trigger: row["trigger"].stringValue ?? "",
            reason: row["reason"].stringValue ?? "",
            fromVersion: row["from_version"].stringValue,
            toVersion: row["to_version"].stringValue,
            startedAt: row["started_at"].stringValue ?? "",
            finishedAt: row["finished_at"].stringValue,
            durationMilliseconds: row["duration_ms"].intValue.map { Int($0) },
            status: row["status"].stringValue ?? "",
            filesRestored: row["files_restored"].intValue == 1,
            databaseRestored: row["db_restored"].intValue == 1)
    }

    // MARK: Backups

    public func addBackup(_ backup: BackupRecord) throws(JournalError) {
        try write("record backup") {
            try db.run(
                """
                INSERT INTO backups (id, plugin, version, path, created_at, size_bytes, run_id, file_count, tables,
                                     plugin_dir)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [.text(backup.id), .text(backup.plugin), .text(backup.version), .text(backup.path),
                 .text(backup.createdAt), .integer(backup.sizeBytes), Self.optionalText(backup.runID),
                 .integer(Int64(backup.fileCount)), .text(backup.tables.joined(separator: "\n")),
                 Self.optionalText(backup.pluginDirectory)])
        }
    }

    /// Backups still on disk, newest first; of one plugin, and of one install when `pluginDirectory`
    /// is given (two shops on one host may run the same plugin).
    public func backups(plugin: String? = nil, pluginDirectory: String? = nil) throws(JournalError) -> [BackupRecord] {
        try read("read backups") {
            try db.query(
                """
                SELECT * FROM backups WHERE deleted_at IS NULL AND (?1 IS NULL OR plugin = ?1)
                    AND (?2 IS NULL OR plugin_dir IS NULL OR plugin_dir = ?2)
                ORDER BY rowid DESC
                """,
                [Self.optionalText(plugin), Self.optionalText(pluginDirectory)]
            ).map { row in
                BackupRecord(
                    id: row["id"].stringValue ?? "",
                    plugin: row["plugin"].stringValue ?? "",
                    version: row["version"].stringValue ?? "",
                    path: row["path"].stringValue ?? "",
                    createdAt: row["created_at"].stringValue ?? "",
                    sizeBytes: row["size_bytes"].intValue ?? 0,
                    runID: row["run_id"].stringValue,
                    fileCount: Int(row["file_count"].intValue ?? 0),
                    tables: (row["tables"].stringValue ?? "").split(separator: "\n").map(String.init),
                    pluginDirectory: row["plugin_dir"].stringValue)
            }
        }
    }

    public func markBackupDeleted(id: String, now: Date) throws(JournalError) {
        try write("mark backup deleted") {
            try db.run("UPDATE backups SET deleted_at = ? WHERE id = ?", [.text(Self.timestamp(now)), .text(id)])
        }
    }

    // MARK: Stats

    public struct PluginStats: Sendable, Equatable {
        public var plugin: String
        public var upgrades: Int
        public var succeeded: Int
        public var rolledBack: Int
        public var rollbackFailed: Int
        public var successRate: Double?
    }

    public struct Stats: Sendable, Equatable {
        public var plugins: [PluginStats]
        public var averageRollbackMilliseconds: Double?
        public var rollbacksLast24Hours: Int
        public var failedRollbacksLast7Days: Int
    }

    public func stats(now: Date) throws(JournalError) -> Stats {
        try read("compute stats") {
            let perPlugin = try db.query(
                """
                SELECT plugin,
                       count(*) AS total,
                       sum(status = 'succeeded') AS ok,
                       sum(status = 'rolled_back') AS rolled_back,
                       sum(status = 'rollback_failed') AS rollback_failed
                FROM runs
                WHERE command = 'upgrade' AND dry_run = 0
                  AND status IN ('succeeded', 'rolled_back', 'rollback_failed', 'failed')
                GROUP BY plugin ORDER BY plugin
                """
            ).map { row -> PluginStats in
                let total = Int(row["total"].intValue ?? 0)
                let ok = Int(row["ok"].intValue ?? 0)
                return PluginStats(
                    plugin: row["plugin"].stringValue ?? "", upgrades: total, succeeded: ok,
                    rolledBack: Int(row["rolled_back"].intValue ?? 0),
                    rollbackFailed: Int(row["rollback_failed"].intValue ?? 0),
                    successRate: total > 0 ? Double(ok) / Double(total) : nil)
            }
            let average = try db.scalar(
                "SELECT avg(duration_ms) FROM rollbacks WHERE status = 'success' AND duration_ms IS NOT NULL")
            let dayAgo = Self.timestamp(now.addingTimeInterval(-86_400))
            let weekAgo = Self.timestamp(now.addingTimeInterval(-7 * 86_400))
            let recent = try db.scalar("SELECT count(*) FROM rollbacks WHERE started_at >= ?", [.text(dayAgo)])
            let failed = try db.scalar(
                "SELECT count(*) FROM rollbacks WHERE status = 'failed' AND started_at >= ?", [.text(weekAgo)])
            var averageValue: Double?
            switch average {
            case .real(let value)?: averageValue = value
            case .integer(let value)?: averageValue = Double(value)
            default: averageValue = nil
            }
            return Stats(
                plugins: perPlugin, averageRollbackMilliseconds: averageValue,
                rollbacksLast24Hours: Int(recent?.intValue ?? 0),
                failedRollbacksLast7Days: Int(failed?.intValue ?? 0))
        }
    }

    // MARK: Plumbing

    static func optionalText(_ value: String?) -> SQLiteValue {
        value.map { .text($0) } ?? .null
    }

    func write<T>(_ context: String, _ body: () throws -> T) throws(JournalError) -> T {
        do {
            return try body()
        } catch {
            throw JournalError(context, error)
        }
    }

    func read<T>(_ context: String, _ body: () throws -> T) throws(JournalError) -> T {
        try write(context, body)
    }
}
