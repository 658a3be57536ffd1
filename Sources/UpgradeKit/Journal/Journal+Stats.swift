import Foundation
import MolamSQLite

/// Stats: per-plugin upgrade outcomes and rollback figures for `stats`.
extension Journal {
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
}
