import Foundation
import MolamSQLite

/// One report waiting in (or delivered from) the journal's outbox.
public struct OutboxEntry: Sendable, Equatable {
    public enum Status: String, Sendable { case pending, delivered, rejected }

    public var seq: Int64
    public var kind: String
    public var method: String
    /// May hold `{id}`: the id the API gave the report this one depends on.
    public var path: String
    /// The JSON body; `refField`, when set, is filled with the dependency's id at delivery.
    public var payload: String
    public var idempotencyKey: String
    public var createdAt: String
    public var attempts: Int
    public var nextAttemptAt: String?
    public var deliveredAt: String?
    public var lastError: String?
    public var runID: String?
    public var dependsOn: Int64?
    public var refField: String?
    /// Whether the API must answer with an id (`id` or `rollback_id`) that later reports need.
    public var expectsID: Bool
    public var responseID: String?
    public var status: Status
}

/// The outbox: every report is written here first, in the same journal as the step it describes,
/// and delivered later in `seq` order. A report is never lost because the API was down, and never
/// sent twice with different keys: its Idempotency-Key is fixed when it is queued.
extension Journal {
    public struct ReportCounts: Sendable, Equatable {
        public var pending: Int
        public var rejected: Int
        public var delivered: Int
        /// `created_at` of the oldest pending report.
        public var oldestPending: String?
    }

    @discardableResult
    public func enqueueReport(
        kind: String, path: String, payload: [String: Any], runID: String?, dependsOn: Int64? = nil,
        refField: String? = nil, expectsID: Bool = false, now: Date
    ) throws(JournalError) -> Int64 {
        let json: String
        do {
            json = String(decoding: try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]),
                          as: UTF8.self)
        } catch {
            throw JournalError("encode report \(kind)", error)
        }
        return try write("queue report \(kind)") {
            try db.run(
                """
                INSERT INTO outbox (kind, method, path, payload, idempotency_key, created_at, run_id, depends_on,
                                    ref_field, expects_id, status)
                VALUES (?, 'POST', ?, ?, ?, ?, ?, ?, ?, ?, 'pending')
                """,
                [.text(kind), .text(path), .text(json), .text(UUID().uuidString.lowercased()),
                 .text(Self.timestamp(now)), Self.optionalText(runID), dependsOn.map { .integer($0) } ?? .null,
                 Self.optionalText(refField), .integer(expectsID ? 1 : 0)])
            return db.lastInsertRowID
        }
    }

    /// Pending reports in delivery order.
    public func pendingOutbox(limit: Int = 10_000) throws(JournalError) -> [OutboxEntry] {
        try outbox(where: "status = 'pending'", limit: limit)
    }

    public func outboxEntry(seq: Int64) throws(JournalError) -> OutboxEntry? {
        try outbox(where: "seq = \(seq)", limit: 1).first
    }

    public func markDelivered(seq: Int64, responseID: String?, now: Date) throws(JournalError) {
        try write("mark report delivered") {
            try db.run(
                """
                UPDATE outbox SET status = 'delivered', delivered_at = ?, response_id = ?, attempts = attempts + 1,
                                  last_error = NULL
                WHERE seq = ?
                """,
                [.text(Self.timestamp(now)), Self.optionalText(responseID), .integer(seq)])
        }
    }

    public func markAttemptFailed(seq: Int64, error: String, nextAttempt: Date?, now: Date) throws(JournalError) {
        try write("record report attempt") {
            try db.run(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE seq = ?",
                [.text(error), nextAttempt.map { .text(Self.timestamp($0)) } ?? .null, .integer(seq)])
        }
    }

    /// The API refused the report for good (a 4xx other than 401/403/408/429): it is kept, with the
    /// reason, but no longer holds up the reports queued after it.
    public func markRejected(seq: Int64, error: String, countAttempt: Bool, now: Date) throws(JournalError) {
        try write("mark report rejected") {
            try db.run(
                """
                UPDATE outbox SET status = 'rejected', last_error = ?, attempts = attempts + ?, next_attempt_at = NULL
                WHERE seq = ?
                """,
                [.text(error), .integer(countAttempt ? 1 : 0), .integer(seq)])
        }
    }

    public func reportCounts() throws(JournalError) -> ReportCounts {
        try read("read outbox") {
            let row = try db.query(
                """
                SELECT sum(status = 'pending') AS pending, sum(status = 'rejected') AS rejected,
                       sum(status = 'delivered') AS delivered,
                       min(CASE WHEN status = 'pending' THEN created_at END) AS oldest
                FROM outbox
                """
            ).first
            return ReportCounts(
                pending: Int(row?["pending"].intValue ?? 0), rejected: Int(row?["rejected"].intValue ?? 0),
                delivered: Int(row?["delivered"].intValue ?? 0), oldestPending: row?["oldest"].stringValue)
        }
    }

    private func outbox(where condition: String, limit: Int) throws(JournalError) -> [OutboxEntry] {
        try read("read outbox") {
            try db.query("SELECT * FROM outbox WHERE \(condition) ORDER BY seq LIMIT \(max(0, limit))").map { row in
                OutboxEntry(
                    seq: row["seq"].intValue ?? 0,
                    kind: row["kind"].stringValue ?? "",
                    method: row["method"].stringValue ?? "POST",
                    path: row["path"].stringValue ?? "",
                    payload: row["payload"].stringValue ?? "{}",
                    idempotencyKey: row["idempotency_key"].stringValue ?? "",
                    createdAt: row["created_at"].stringValue ?? "",
                    attempts: Int(row["attempts"].intValue ?? 0),
                    nextAttemptAt: row["next_attempt_at"].stringValue,
                    deliveredAt: row["delivered_at"].stringValue,
                    lastError: row["last_error"].stringValue,
                    runID: row["run_id"].stringValue,
                    dependsOn: row["depends_on"].intValue,
                    refField: row["ref_field"].stringValue,
                    expectsID: row["expects_id"].intValue == 1,
                    responseID: row["response_id"].stringValue,
                    status: OutboxEntry.Status(rawValue: row["status"].stringValue ?? "") ?? .pending)
            }
        }
    }

    // MARK: Accepted versions (rollback-attack protection)

    /// The highest version this install has ever run or accepted.
    public func highestAcceptedVersion(pluginDirectory: String) throws(JournalError) -> String? {
        try read("read accepted version") {
            try db.scalar("SELECT version FROM accepted_versions WHERE plugin_dir = ?", [.text(pluginDirectory)])?
                .stringValue
        }
    }

    /// Raises the remembered version to `version` if it is higher (never lowers it).
    public func acceptVersion(
        _ version: SemanticVersion, plugin: String, pluginDirectory: String, now: Date
    ) throws(JournalError) {
        let current = try highestAcceptedVersion(pluginDirectory: pluginDirectory).flatMap(SemanticVersion.init)
        if let current, current >= version { return }
        try write("record accepted version") {
            try db.run(
                """
                INSERT INTO accepted_versions (plugin_dir, plugin, version, accepted_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(plugin_dir) DO UPDATE SET plugin = excluded.plugin, version = excluded.version,
                                                      accepted_at = excluded.accepted_at
                """,
                [.text(pluginDirectory), .text(plugin), .text(version.description), .text(Self.timestamp(now))])
        }
    }
}
