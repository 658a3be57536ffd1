import Foundation
import MolamMySQL

/// The rollback's table restore on MySQL: the rows live traffic changed merged into the shadows by
/// key, then gh-ost's cut-over. One connection holds `LOCK TABLES … WRITE` on the live tables, the
/// shadows, the change logs and an empty sentry table under each name the live tables are to be
/// set aside as, and merges the last changes; a second connection issues the one `RENAME TABLE`,
/// which waits behind that lock ahead of every queued write; the first drops the sentries and
/// unlocks, and the rename runs before any shop write. Should the first connection die, the sentries
/// stay and the rename fails: the tables are never half switched, never missing.
extension MySQLPluginDatabase {
    private struct Shadowed {
        var table: String
        var shadow: String
        var key: [String]
        var triggers: [String]
    }

    private func registry() throws(MySQLError) -> [Shadowed] {
        try connection.query("SELECT name, shadow, key_columns, triggers FROM \(Self.quote(Self.registryTable))").map {
            Shadowed(
                table: $0[0].stringValue ?? "", shadow: $0[1].stringValue ?? "",
                key: Self.jsonStrings($0[2].stringValue ?? "[]"), triggers: Self.jsonStrings($0[3].stringValue ?? "[]"))
        }
    }

    public func prepareShadowRestore(mayTouch: (String) -> Bool) throws(PluginDatabaseError) -> ShadowRestoreSummary {
        let context = "merging live rows into the shadow tables of \(mysqlLocation)"
        do {
            try strictMerges()
            var summary = ShadowRestoreSummary()
            // A shadow already renamed into place (a crash after the rename) has nothing left to merge.
            for entry in try registry() where try mayTouch(entry.table) && tableExists(entry.shadow) {
                let merged = try merge(entry, collectFailures: false)
                summary.merged += merged.rows
                if merged.quarantined > 0 { summary.quarantined[entry.table, default: 0] += merged.quarantined }
                try keepAutoIncrement(entry)
            }
            return summary
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    public func restoreShadows(
        alsoDrop: [String], mayTouch: (String) -> Bool
    ) throws(PluginDatabaseError) -> ShadowRestoreSummary {
        let extraDrops = try Self.validatedTableNames(alsoDrop).filter(mayTouch)
        let context = "restoring the shadow tables of \(mysqlLocation)"
        do {
            try strictMerges()
            let entries = try registry().filter { mayTouch($0.table) }
            var summary = ShadowRestoreSummary()
            // Shadows a crash after the rename already put in place are only tidied below.
            var pending: [Shadowed] = []
            for entry in entries where try tableExists(entry.shadow) { pending.append(entry) }
            var live: [String: Bool] = [:]
            for entry in pending {
                live[entry.table] = try tableExists(entry.table)
                let retired = Self.quote(Self.retiredName(entry.table))
                try connection.execute("DROP TABLE IF EXISTS \(retired)")
                if live[entry.table] == true { try connection.execute("CREATE TABLE \(retired)(molam_sentry INT)") }
            }
            var failed = try cutOver(pending, live: live, summary: &summary)
            // After the window: what could not be merged is kept, the capture and the table's own
            // triggers are put right, and the release's new tables go.
            for entry in entries {
                let late = try mergeLateWrites(entry)
                summary.merged += late.rows
                if !late.failed.isEmpty { failed[entry.table, default: []] += late.failed }
            }
            for entry in entries {
                if let keys = failed[entry.table], !keys.isEmpty,
                   let info = try MySQLTableInfo.read(connection, table: Self.retiredName(entry.table)) {
                    let named = MySQLTableInfo(name: entry.table, columns: info.columns, key: entry.key)
                    for key in keys {
                        try quarantine(named, from: Self.retiredName(entry.table), where: named.keyMatchAliased,
                                       key, reason: "the old schema cannot take this row")
                    }
                    summary.quarantined[entry.table, default: 0] += keys.count
                }
                try replaceTriggers(of: entry.table, with: entry.triggers)
                summary.restored.append(entry.table)
            }
            for table in extraDrops where !entries.contains(where: { $0.table == table }) {
                guard try tableExists(table) else { continue }
                let kept = try quarantineChanged(table, reason: "written to a table of the release rolled back")
                if kept > 0 { summary.quarantined[table, default: 0] += kept }
                try connection.execute("DROP TABLE \(Self.quote(table))")
                summary.dropped.append(table)
            }
            // The capture triggers (on the tables set aside), the change logs and the registry go after
            // the window, with those tables (`dropRetiredTables`): every DDL statement costs a flush.
            return summary
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    /// The window itself: lock, last merge, rename by the second connection, unlock. Returns the keys
    /// of rows the shadows could not take, by table, to be quarantined from the tables set aside.
    private func cutOver(
        _ entries: [Shadowed], live: [String: Bool], summary: inout ShadowRestoreSummary
    ) throws -> [String: [[MySQLValue]]] {
        guard !entries.isEmpty else { return [:] }
        var locks: [String] = []
        var renames: [String] = []
        for entry in entries {
            locks.append("\(Self.quote(entry.shadow)) WRITE")
            if try tableExists(Self.changesName(entry.table)) {
                locks.append("\(Self.quote(Self.changesName(entry.table))) WRITE")
            }
            if live[entry.table] == true {
                locks += ["\(Self.quote(entry.table)) WRITE", "\(Self.quote(Self.retiredName(entry.table))) WRITE"]
                renames.append("\(Self.quote(entry.table)) TO \(Self.quote(Self.retiredName(entry.table)))")
            }
            renames.append("\(Self.quote(entry.shadow)) TO \(Self.quote(entry.table))")
        }
        let plans = try entries.map { entry in try mergePlan(entry) }
        let renamer = Renamer(endpoint: endpoint, lockWaitSeconds: lockWaitSeconds)
        try connection.execute("LOCK TABLES " + locks.joined(separator: ", "))
        var failed: [String: [[MySQLValue]]] = [:]
        do {
            for (entry, plan) in zip(entries, plans) {
                let merged = try merge(plan)
                summary.merged += merged.rows
                if !merged.failed.isEmpty { failed[entry.table] = merged.failed }
            }
            try FaultInjection.hit("mid-restore")
            try renamer.start("RENAME TABLE " + renames.joined(separator: ", "))
            try renamer.waitUntilBlocked(observer: connection, seconds: Double(lockWaitSeconds) + 5)
            for entry in entries where live[entry.table] == true {
                try connection.execute("DROP TABLE \(Self.quote(Self.retiredName(entry.table)))")
            }
        } catch {
            // The sentries stay: a rename still waiting fails once the lock is gone.
            _ = try? connection.execute("UNLOCK TABLES")
            renamer.abandon()
            throw error
        }
        try connection.execute("UNLOCK TABLES")
        try renamer.finish(seconds: Double(lockWaitSeconds) + 30)
        return failed
    }

    /// What a merge reads and writes, found in information_schema before the window (under LOCK
    /// TABLES no other table can be read): rows of `source` whose keys `changes` logged go to `target`.
    struct MergePlan {
        var source: String
        var target: String
        var changes: String
        var key: [String]
        var common: [String]
        var sourceExists: Bool
    }

    /// The live table's changed rows into its shadow.
    private func mergePlan(_ entry: Shadowed) throws -> MergePlan {
        guard let shadow = try MySQLTableInfo.read(connection, table: entry.shadow) else {
            throw PluginDatabaseError.shadowUnsupported(table: entry.table, reason: "its shadow table is gone")
        }
        let live = try MySQLTableInfo.read(connection, table: entry.table)
        let liveColumns = Set(live?.columnNames ?? [])
        return MergePlan(
            source: entry.table, target: entry.shadow, changes: Self.changesName(entry.table), key: entry.key,
            common: shadow.columnNames.filter(liveColumns.contains), sourceExists: live != nil)
    }

    private func merge(_ entry: Shadowed, collectFailures: Bool) throws -> (rows: Int, quarantined: Int) {
        let result = try merge(try mergePlan(entry))
        var quarantined = 0
        if !result.failed.isEmpty, let info = try MySQLTableInfo.read(connection, table: entry.table) {
            let named = MySQLTableInfo(name: entry.table, columns: info.columns, key: entry.key)
            for key in result.failed {
                try quarantine(named, from: entry.table, where: named.keyMatchAliased, key,
                               reason: "the old schema cannot take this row")
                quarantined += 1
            }
        }
        return (result.rows, quarantined)
    }

    /// Writes a shop session made between the unlock and the rename (MariaDB may grant a write that
    /// waited on the lock before the waiting rename): they went to the table now set aside, whose
    /// capture triggers logged their keys. The same merge, from that table into the restored one.
    private func mergeLateWrites(_ entry: Shadowed) throws -> (rows: Int, failed: [[MySQLValue]]) {
        guard let retired = try MySQLTableInfo.read(connection, table: Self.retiredName(entry.table)),
              let restored = try MySQLTableInfo.read(connection, table: entry.table) else { return (0, []) }
        return try merge(MergePlan(
            source: Self.retiredName(entry.table), target: entry.table, changes: Self.changesName(entry.table),
            key: entry.key, common: restored.columnNames.filter(retired.columnNames.contains), sourceExists: true))
    }

    /// Brings the shadow up to date with the rows whose keys the change log holds, then deletes
    /// exactly the log rows it read (a writer that committed meanwhile keeps its record for the next
    /// merge): rows gone from the live table are deleted, the others inserted or updated, columns
    /// matched by name, so a column the new schema dropped keeps its old value. A row the shadow
    /// cannot take is left out and its key returned (quarantined by the caller, never dropped). No
    /// alias names a base table: LOCK TABLES knows tables by the names it locked.
    private func merge(_ plan: MergePlan) throws -> (rows: Int, failed: [[MySQLValue]]) {
        guard try changeLogReadable(plan.changes) else { return (0, []) }
        let changes = Self.quote(plan.changes)
        let key = plan.key
        let keyList = key.map(Self.quote).joined(separator: ", ")
        let logged = try connection.query("SELECT molam_seq, \(keyList) FROM \(changes) ORDER BY molam_seq")
        guard !logged.isEmpty else { return (0, []) }
        var seen = Set<String>()
        var keys: [[MySQLValue]] = []
        for row in logged {
            let key = Array(row.values.dropFirst())
            if seen.insert(key.map(\.description).joined(separator: "\u{1}")).inserted { keys.append(key) }
        }
        let shadow = Self.quote(plan.target), table = Self.quote(plan.source)
        let list = plan.common.map(Self.quote).joined(separator: ", ")
        let updates = plan.common.filter { !key.contains($0) }
            .map { "\(Self.quote($0)) = VALUES(\(Self.quote($0)))" }
        let upsert = "INSERT INTO \(shadow)(\(list)) SELECT \(list) FROM \(table) WHERE "
        let onDuplicate = " ON DUPLICATE KEY UPDATE "
            + (updates.isEmpty ? "\(Self.quote(key[0])) = \(Self.quote(key[0]))" : updates.joined(separator: ", "))
        var failed: [[MySQLValue]] = []
        for start in stride(from: 0, to: keys.count, by: 500) {
            let batch = Array(keys[start..<min(start + 500, keys.count)])
            var present: [[MySQLValue]] = []
            if plan.sourceExists {
                let found = Set(try connection.query(
                    "SELECT \(keyList) FROM \(table) WHERE " + Self.keyIn(key, count: batch.count), batch.flatMap { $0 }
                ).map { $0.values.map(\.description).joined(separator: "\u{1}") })
                present = batch.filter { found.contains($0.map(\.description).joined(separator: "\u{1}")) }
            }
            let gone = batch.filter { key in !present.contains(key) }
            if !gone.isEmpty {
                try connection.execute(
                    "DELETE FROM \(shadow) WHERE " + Self.keyIn(key, count: gone.count), gone.flatMap { $0 })
            }
            guard !present.isEmpty else { continue }
            do {
                try connection.execute(
                    upsert + Self.keyIn(key, count: present.count) + onDuplicate, present.flatMap { $0 })
            } catch {
                // One row at a time: each the shadow refuses is returned.
                for values in present {
                    do {
                        try connection.execute(upsert + Self.keyIn(key, count: 1) + onDuplicate, values)
                    } catch {
                        failed.append(values)
                    }
                }
            }
        }
        let sequences = logged.map { $0[0] }
        for start in stride(from: 0, to: sequences.count, by: 1000) {
            let batch = Array(sequences[start..<min(start + 1000, sequences.count)])
            try connection.execute(
                "DELETE FROM \(changes) WHERE molam_seq IN (" + batch.map { _ in "?" }.joined(separator: ", ") + ")", batch)
        }
        return (keys.count, failed)
    }

    /// `k IN (?, …)`, or `(k1, k2) IN ((?, ?), …)`, for `count` keys.
    static func keyIn(_ key: [String], count: Int) -> String {
        let one = key.count == 1 ? "?" : "(" + key.map { _ in "?" }.joined(separator: ", ") + ")"
        let column = key.count == 1 ? quote(key[0]) : "(" + key.map(quote).joined(separator: ", ") + ")"
        return column + " IN (" + Array(repeating: one, count: count).joined(separator: ", ") + ")"
    }

    /// Strict mode for the rest of the session: a row the old schema cannot take must fail its insert
    /// (and go to the quarantine), not be cut or defaulted silently.
    private func strictMerges() throws {
        try connection.execute("SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')")
    }

    /// Whether the change log is there to merge from (a table created after the shadows has none;
    /// under LOCK TABLES, one not locked is not there either).
    private func changeLogReadable(_ changes: String) throws -> Bool {
        do {
            _ = try connection.query("SELECT 1 FROM \(Self.quote(changes)) LIMIT 1")
            return true
        } catch {
            if error.number == 1146 || error.number == 1100 { return false }
            throw error
        }
    }

    /// Ids left free between the live table's counter and the restored one's: a write merged late
    /// (`mergeLateWrites`) keeps the id the set-aside table gave it.
    static let lateWriteIDs: Int64 = 10_000

    /// The shadow's AUTO_INCREMENT raised past the live table's, so no id the shop handed out is
    /// handed out again after the rollback.
    private func keepAutoIncrement(_ entry: Shadowed) throws {
        let counter = """
            SELECT auto_increment FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?
            """
        guard let live = try connection.query(counter, [.text(entry.table)]).first?[0].intValue,
              let shadow = try connection.query(counter, [.text(entry.shadow)]).first?[0].intValue,
              live + Self.lateWriteIDs > shadow else { return }
        try connection.execute("ALTER TABLE \(Self.quote(entry.shadow)) AUTO_INCREMENT = \(live + Self.lateWriteIDs)")
    }

    /// The rows live traffic wrote into a table about to go, kept in its quarantine; how many.
    func quarantineChanged(_ table: String, reason: String) throws -> Int {
        guard try tableExists(Self.changesName(table)), let info = try MySQLTableInfo.read(connection, table: table),
              !info.key.isEmpty else { return 0 }
        let join = info.key.map { "c.\(Self.quote($0)) = t.\(Self.quote($0))" }.joined(separator: " AND ")
        let condition = "EXISTS (SELECT 1 FROM \(Self.quote(Self.changesName(table))) c WHERE \(join))"
        let count = Int(try connection.query(
            "SELECT count(*) FROM \(Self.quote(table)) t WHERE \(condition)").first?[0].intValue ?? 0)
        if count > 0 { try quarantine(info, from: table, where: condition, reason: reason) }
        return count
    }

    /// Drops the tables a restore set aside (and any sentry left behind): after the window.
    public func dropRetiredTables() throws(PluginDatabaseError) {
        try sql("dropping the tables a restore set aside in \(mysqlLocation)") { () throws(MySQLError) in
            // A restore that put every shadow in place leaves its capture, change logs and registry.
            if try tableExists(Self.registryTable), try !baseTables().contains(where: {
                $0.hasPrefix("_molam_shadow_") && $0 != Self.registryTable
            }) {
                try dropCaptureTriggers(on: nil)
                for table in try baseTables() where table.hasPrefix("_molam_changes_") {
                    try connection.execute("DROP TABLE IF EXISTS \(Self.quote(table))")
                }
                try connection.execute("DROP TABLE IF EXISTS \(Self.quote(Self.registryTable))")
            }
            for table in try baseTables() where table.hasPrefix("_molam_retired_") {
                try connection.execute("DROP TABLE IF EXISTS \(Self.quote(table))")
            }
        }
    }
}

extension MySQLTableInfo {
    /// `t`.`k` = ? AND … over the key, for `quarantine`'s `t` alias.
    var keyMatchAliased: String {
        key.map { "t.\(MySQLPluginDatabase.quote($0)) = ?" }.joined(separator: " AND ")
    }
}
