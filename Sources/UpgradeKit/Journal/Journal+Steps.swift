import Foundation
import MolamSQLite

/// Steps: intent journaled before each step, outcome after.
extension Journal {
    /// Journals the intent to run a step; returns its id for `finishStep`.
    public func startStep(
        run: String, _ name: StepName, detail: String? = nil, now: Date
    ) throws(JournalError) -> Int64 {
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
}
