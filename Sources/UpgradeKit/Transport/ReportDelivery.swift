import Foundation
import MolamHTTP

/// Delivers the outbox to the central API: in `seq` order, each report with the Idempotency-Key it
/// was given when queued, so a retry after a lost answer is recognised by the API and not counted
/// twice. A report that needs another's id (a step, its upgrade's; a rollback `complete`, its
/// `initiate`'s) is sent only once that id is known.
///
/// Delivery stops at the first report that cannot be delivered now (API down, slow, garbage, or
/// refusing our token): the order is kept, and the rest waits for the next run or `flush`. A report
/// the API refuses for good (another 4xx) is marked rejected, kept in the journal, and skipped.
public enum ReportDelivery {
    public struct Result: Sendable, Equatable {
        public var delivered: Int = 0
        public var rejected: Int = 0
        /// Still queued after this delivery.
        public var pending: Int = 0
        /// Why delivery stopped early, if it did.
        public var stoppedBy: String?
        public var requests: Int = 0
        /// Nothing was sent because another process holds the outbox lock and is delivering.
        public var otherDeliverer = false
    }

    /// Delivers what is pending, in order. With a `deadline`, no request outlives it (the API's
    /// timeouts and retry waits are cut to it) and no report is started after it: the rest stays
    /// queued. Reports queued meanwhile by another run (which found the outbox lock taken and left
    /// them to this delivery) are picked up by a further pass.
    public static func deliver(
        journal: Journal, api: CentralAPI, now: () -> Date, deadline: Deadline? = nil
    ) -> Result {
        var result = Result()
        let startRequests = api.requestCount
        let previousDeadline = api.deadline
        api.deadline = deadline
        defer {
            api.deadline = previousDeadline
            result.requests = api.requestCount - startRequests
        }
        var done = Set<Int64>()
        while result.stoppedBy == nil {
            let entries: [OutboxEntry]
            do {
                entries = try journal.pendingOutbox().filter { !done.contains($0.seq) }
            } catch {
                result.stoppedBy = "\(error)"
                break
            }
            guard !entries.isEmpty else { break }
            let before = result.delivered + result.rejected
            pass(entries, journal: journal, api: api, now: now, deadline: deadline, done: &done,
                 result: &result)
            // A pass that settled nothing would only repeat itself.
            if result.delivered + result.rejected == before { break }
        }
        result.pending = (try? journal.reportCounts().pending) ?? 0
        return result
    }

    /// One pass over `entries` (pending, in `seq` order); stops at the first that cannot be sent now.
    private static func pass(
        _ entries: [OutboxEntry], journal: Journal, api: CentralAPI, now: () -> Date, deadline: Deadline?,
        done: inout Set<Int64>, result: inout Result
    ) {
        var index = 0
        delivery: while index < entries.count {
            let entry = entries[index]
            index += 1
            if let deadline, deadline.hasPassed {
                result.stoppedBy = "the delivery deadline of \(Int(deadline.seconds)) s passed; "
                    + "the rest stays queued for the next run or `molam-upgrade flush`"
                break delivery
            }
            done.insert(entry.seq)
            var path = entry.path
            var payload = entry.payload
            if let parentSeq = entry.dependsOn {
                guard let parent = try? journal.outboxEntry(seq: parentSeq) else {
                    result.stoppedBy = "report \(entry.seq) depends on report \(parentSeq), which cannot be read"
                    break delivery
                }
                switch parent.status {
                case .rejected:
                    let reason = "the \(parent.kind) report it belongs to was refused by the API"
                    try? journal.markRejected(seq: entry.seq, error: reason, countAttempt: false, now: now())
                    result.rejected += 1
                    continue
                case .pending:
                    // Cannot happen in seq order unless the parent was queued later; wait for it.
                    result.stoppedBy = "report \(entry.seq) waits for report \(parentSeq)"
                    break delivery
                case .delivered:
                    guard let id = parent.responseID else {
                        let reason = "the \(parent.kind) report it belongs to got no id from the API"
                        try? journal.markRejected(seq: entry.seq, error: reason, countAttempt: false, now: now())
                        result.rejected += 1
                        continue
                    }
                    path = path.replacingOccurrences(of: "{id}", with: URLText.pathSegment(id))
                    if let field = entry.refField { payload = Self.setting(field, to: id, in: payload) }
                }
            }
            do {
                let body = try api.post(path: path, json: Data(payload.utf8), idempotencyKey: entry.idempotencyKey)
                var responseID: String?
                if entry.expectsID {
                    guard let id = Self.responseID(body) else {
                        // Without the id, the reports that depend on this one cannot be sent. A correct
                        // API answers a retry with the same key with the same (this time whole) answer.
                        let problem = "the API accepted the \(entry.kind) report but its answer carries no id"
                        try? journal.markAttemptFailed(seq: entry.seq, error: problem, nextAttempt: nil, now: now())
                        result.stoppedBy = problem
                        break delivery
                    }
                    responseID = id
                }
                try journal.markDelivered(seq: entry.seq, responseID: responseID, now: now())
                result.delivered += 1
            } catch let error as CentralAPIError {
                if case .rejected(let status, _) = error, status != 401, status != 403 {
                    try? journal.markRejected(seq: entry.seq, error: "\(error)", countAttempt: true, now: now())
                    result.rejected += 1
                    continue
                }
                if case .notFound = error {
                    try? journal.markRejected(seq: entry.seq, error: "\(error)", countAttempt: true, now: now())
                    result.rejected += 1
                    continue
                }
                try? journal.markAttemptFailed(seq: entry.seq, error: "\(error)", nextAttempt: nil, now: now())
                result.stoppedBy = "\(error)"
                break delivery
            } catch {
                result.stoppedBy = "\(error)"
                break delivery
            }
        }
    }

    /// `rollback_id` or `id` of a JSON answer, as text (an API may use numbers, as the seeds' rollout
    /// ids are). When the top level has neither, the seeds' wrapped answers are looked into, one level
    /// down (`{"ok": true, "upgrade_log": {"id": "abc-123"}}`, `{"ok": true, "rollout": {"id": 1}}`),
    /// in the order of `wrappers`, then any other member object by name.
    static func responseID(_ body: Data) -> String? {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else { return nil }
        if let id = topLevelID(object) { return id }
        let wrappers = ["upgrade", "upgrade_log", "rollback", "backup", "data"]
        let others = object.keys.filter { !wrappers.contains($0) }.sorted()
        for key in wrappers + others {
            if let inner = object[key] as? [String: Any], let id = topLevelID(inner) { return id }
        }
        return nil
    }

    private static func topLevelID(_ object: [String: Any]) -> String? {
        for key in ["rollback_id", "id"] {
            if let text = object[key] as? String, !text.isEmpty { return text }
            if let number = JSONNumbers.integer(object[key]) { return String(number) }
        }
        return nil
    }

    static func setting(_ field: String, to value: String, in payload: String) -> String {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] else {
            return payload
        }
        object[field] = value
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return payload
        }
        return String(decoding: data, as: UTF8.self)
    }
}
