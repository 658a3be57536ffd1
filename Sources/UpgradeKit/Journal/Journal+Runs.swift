import Foundation
import MolamSQLite

/// Runs: begun, described, saved, finished, and read back.
extension Journal {
    public func beginRun(
        command: RunCommand, trigger: RunTrigger, plugin: String, pluginDirectory: String,
        fromVersion: String?, toVersion: String?, dryRun: Bool, now: Date
    ) throws(JournalError) -> String {
        let id = UUID().uuidString.lowercased()
        try insertRun(
            id: id, command: command, trigger: trigger, plugin: plugin, pluginDirectory: pluginDirectory,
            versions: (fromVersion, toVersion), dryRun: dryRun, now: now)
        return id
    }

    /// Takes back a run this journal lost (a crash took its WAL) from the run's own file, unfinished,
    /// so that `recover` finishes it.
    public func adoptRun(
        id: String, command: RunCommand, trigger: RunTrigger, plugin: String, pluginDirectory: String,
        fromVersion: String?, toVersion: String?, state: RunState, now: Date
    ) throws(JournalError) {
        try insertRun(
            id: id, command: command, trigger: trigger, plugin: plugin, pluginDirectory: pluginDirectory,
            versions: (fromVersion, toVersion), dryRun: false, now: now)
        try saveState(run: id, state)
    }

    private func insertRun(
        id: String, command: RunCommand, trigger: RunTrigger, plugin: String, pluginDirectory: String,
        versions: (from: String?, to: String?), dryRun: Bool, now: Date
    ) throws(JournalError) {
        try write("begin run") {
            try db.run(
                """
                INSERT INTO runs (id, command, trigger, plugin, plugin_dir, from_version, to_version, status,
                                  dry_run, started_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)
                """,
                [.text(id), .text(command.rawValue), .text(trigger.rawValue), .text(plugin), .text(pluginDirectory),
                 Self.optionalText(versions.from), Self.optionalText(versions.to), .integer(dryRun ? 1 : 0),
                 .text(Self.timestamp(now))])
        }
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
        run: String, status: RunStatus, rollbackStatus: RollbackStatus?, error: String?, exitCode: Int, now: Date
    ) throws(JournalError) {
        try write("finish run") {
            try db.run(
                """
                UPDATE runs SET status = ?, rollback_status = ?, error = ?, exit_code = ?, finished_at = ?
                WHERE id = ?
                """,
                [.text(status.rawValue), Self.optionalText(rollbackStatus?.rawValue), Self.optionalText(error),
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
    public func recentRuns(
        limit: Int, plugin: String? = nil, pluginDirectory: String? = nil
    ) throws(JournalError) -> [RunRecord] {
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
                let state = (try? JSONDecoder().decode(RunState.self, from: Data(stateJSON.utf8)))
                    ?? RunState()
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
}
