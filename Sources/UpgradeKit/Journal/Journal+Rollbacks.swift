import Foundation
import MolamSQLite

/// Rollbacks: one row per attempt to put a run's changes back.
extension Journal {
    public func startRollback(
        run: String, trigger: RunTrigger, reason: String, from: String?, to: String?, now: Date
    ) throws(JournalError) -> Int64 {
        try write("start rollback") {
            try db.run(
                """
                INSERT INTO rollbacks (run_id, trigger, reason, from_version, to_version, started_at, status)
                VALUES (?, ?, ?, ?, ?, ?, 'running')
                """,
                [.text(run), .text(trigger.rawValue), .text(reason), Self.optionalText(from), Self.optionalText(to),
                 .text(Self.timestamp(now))])
            return db.lastInsertRowID
        }
    }

    public func finishRollback(
        _ id: Int64, success: Bool, durationMilliseconds: Int, filesRestored: Bool, databaseRestored: Bool,
        now: Date
    ) throws(JournalError) {
        try write("finish rollback") {
            try db.run(
                """
                UPDATE rollbacks SET status = ?, finished_at = ?, duration_ms = ?, files_restored = ?,
                                     db_restored = ?
                WHERE id = ?
                """,
                [.text(success ? "success" : "failed"), .text(Self.timestamp(now)),
                 .integer(Int64(durationMilliseconds)), .integer(filesRestored ? 1 : 0),
                 .integer(databaseRestored ? 1 : 0), .integer(id)])
        }
    }

    public func rollbacks(run: String) throws(JournalError) -> [RollbackRecord] {
        try read("read rollbacks") {
            try db.query("SELECT * FROM rollbacks WHERE run_id = ? ORDER BY id", [.text(run)])
                .map(Self.rollback)
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
}
