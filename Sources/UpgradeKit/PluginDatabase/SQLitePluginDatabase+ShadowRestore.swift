import Foundation
import MolamSQLite

/// The rollback's table restore on SQLite: the rows live traffic changed merged into the shadows,
/// then the shadows renamed into place, all in one transaction.
extension SQLitePluginDatabase {
    public func restoreShadows(
        alsoDrop: [String], mayTouch: (String) -> Bool
    ) throws(PluginDatabaseError) -> ShadowRestoreSummary {
        let extraDrops = try Self.validatedTableNames(alsoDrop).filter(mayTouch)
        let context = "restoring the shadow tables of \(path)"
        do {
            try connection.execute("PRAGMA foreign_keys = OFF")
            try connection.setTriggersEnabled(false)
        } catch {
            try? connection.setTriggersEnabled(true)
            throw .sqlite(error, context: context)
        }
        defer { try? connection.setTriggersEnabled(true) }
        do {
            let summary = try connection.transaction(.immediate) { () throws -> ShadowRestoreSummary in
                var summary = ShadowRestoreSummary()
                let tables = try connection.query("SELECT name, shadow, create_sql, schema_rowid FROM main.\(Self.registryTable)")
                try dropCaptureTriggers()
                for row in tables {
                    let table = row[0].description, shadow = row[1].description
                    guard mayTouch(table) else { continue }
                    let merged = try merge(table, into: shadow)
                    summary.merged += merged.rows
                    if merged.quarantined > 0 { summary.quarantined[table, default: 0] += merged.quarantined }
                }
                for table in extraDrops where !tables.contains(where: { $0[0].description.lowercased() == table.lowercased() }) {
                    let kept = try quarantineChanged(table, reason: "written to a table of the release rolled back")
                    if kept > 0 { summary.quarantined[table, default: 0] += kept }
                    if try connection.scalar("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?",
                                             [.text(table)]) != nil {
                        try connection.execute("DROP TABLE main.\(SQLiteConnection.quoteIdentifier(table))")
                        summary.dropped.append(table)
                    }
                }
                for row in tables where mayTouch(row[0].description) {
                    try putInPlace(
                        row[0].description, shadow: row[1].description, createSQL: row[2].description,
                        schemaRowID: row[3].intValue ?? 0)
                    summary.restored.append(row[0].description)
                    try FaultInjection.hit("mid-restore")
                }
                try connection.execute("""
                    DROP TABLE main.\(Self.registryTable)_objects; DROP TABLE main.\(Self.registryTable);
                    DROP TABLE main.\(Self.changesTable);
                    """)
                return summary
            }
            // The schema was edited in place: this connection must not keep its old picture of it.
            try connection.execute("PRAGMA writable_schema = RESET")
            return summary
        } catch let error as PluginDatabaseError {
            throw error
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    /// The first half of the restore, before the window: the rows changed so far merged into the
    /// shadows a table per transaction, their change records cleared, so that the restore's own
    /// transaction only merges what changes after this.
    public func prepareShadowRestore(mayTouch: (String) -> Bool) throws(PluginDatabaseError) -> ShadowRestoreSummary {
        let context = "merging live rows into the shadow tables of \(path)"
        do {
            try connection.setTriggersEnabled(false)
        } catch {
            throw .sqlite(error, context: context)
        }
        defer { try? connection.setTriggersEnabled(true) }
        do {
            var summary = ShadowRestoreSummary()
            let tables = try connection.query("SELECT name, shadow FROM main.\(Self.registryTable)")
            for row in tables where mayTouch(row[0].description) {
                let table = row[0].description
                let merged = try connection.transaction(.immediate) { () throws -> (rows: Int, quarantined: Int) in
                    let merged = try merge(table, into: row[1].description)
                    try connection.run("DELETE FROM main.\(Self.changesTable) WHERE tbl = ?", [.text(table)])
                    return merged
                }
                summary.merged += merged.rows
                if merged.quarantined > 0 { summary.quarantined[table, default: 0] += merged.quarantined }
            }
            return summary
        } catch let error as PluginDatabaseError {
            throw error
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    /// Brings the shadow up to date with the rows changed since it was made: columns matched by
    /// name; a row the shadow's schema cannot take is kept in the quarantine table, never dropped.
    private func merge(_ table: String, into shadow: String) throws -> (rows: Int, quarantined: Int) {
        let keys = "SELECT DISTINCT key FROM main.\(Self.changesTable) WHERE tbl = \(Self.stringLiteral(table))"
        let changed = Int(try connection.scalar("SELECT count(*) FROM (\(keys))")?.intValue ?? 0)
        guard changed > 0 else { return (0, 0) }
        let live = try TableColumns.insertable(connection, schema: "main", table: table)
        let shadowColumns = try TableColumns.insertable(connection, schema: "main", table: shadow)
        let quotedTable = "main." + SQLiteConnection.quoteIdentifier(table)
        let quotedShadow = "main." + SQLiteConnection.quoteIdentifier(shadow)
        try connection.run("DELETE FROM \(quotedShadow) WHERE rowid IN (\(keys))")
        // The table may be gone (a migration dropped it): its changed rows cannot be read back.
        guard !live.isEmpty else { return (changed, 0) }
        let common = shadowColumns.filter { column in live.contains { $0.lowercased() == column.lowercased() } }
        guard let list = TableColumns.selectList(columns: common, hasRowID: true) else { return (0, 0) }
        let rowid = list.split(separator: ",").first.map(String.init) ?? "rowid"
        let insert = "INSERT INTO \(quotedShadow)(\(list)) SELECT \(list) FROM \(quotedTable) WHERE \(rowid) "
        do {
            try connection.savepoint("molam_merge") { try connection.run(insert + "IN (\(keys))") }
            return (changed, 0)
        } catch {
            // One row at a time: each that fails goes to the quarantine with the reason.
            var quarantined = 0
            for key in try connection.query("\(keys) AND key IN (SELECT rowid FROM \(quotedTable))") {
                do {
                    try connection.savepoint("molam_merge_row") { try connection.run(insert + "= ?", [key[0]]) }
                } catch {
                    try quarantine(table, where: "rowid = ?", [key[0]], reason: "\(error)")
                    quarantined += 1
                }
            }
            return (changed, quarantined)
        }
    }

    /// Keeps rows of `table` as JSON in `_molam_quarantine_<table>`, with why.
    func quarantine(_ table: String, where condition: String, _ bindings: [SQLiteValue], reason: String) throws {
        let columns = try TableColumns.insertable(connection, schema: "main", table: table)
        let object = columns.map { "\(Self.stringLiteral($0)), \(SQLiteConnection.quoteIdentifier($0))" }
            .joined(separator: ", ")
        let quarantine = "main." + SQLiteConnection.quoteIdentifier(Self.quarantineName(table))
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS \(quarantine)(
                id INTEGER PRIMARY KEY, source_rowid INTEGER, row TEXT NOT NULL, reason TEXT NOT NULL,
                quarantined_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')))
            """)
        try connection.run("""
            INSERT INTO \(quarantine)(source_rowid, row, reason)
            SELECT rowid, json_object(\(object)), ? FROM main.\(SQLiteConnection.quoteIdentifier(table))
            WHERE \(condition)
            """, [.text(reason)] + bindings)
    }

    /// The rows live traffic wrote into a table about to go, kept in its quarantine; how many. Rows
    /// the release's migrations wrote are the release's own and go with it.
    func quarantineChanged(_ table: String, reason: String) throws -> Int {
        let keys = "SELECT key FROM main.\(Self.changesTable) WHERE tbl = \(Self.stringLiteral(table))"
        guard try connection.scalar("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?",
                                    [.text(table)]) != nil,
              let rows = try connection.scalar(
                "SELECT count(*) FROM main.\(SQLiteConnection.quoteIdentifier(table)) WHERE rowid IN (\(keys))"
              )?.intValue, rows > 0
        else { return 0 }
        try quarantine(table, where: "rowid IN (\(keys))", [], reason: reason)
        return Int(rows)
    }

    /// The live table dropped and its shadow renamed into its place, with the original CREATE
    /// statement, index names and SQL, triggers, schema order and AUTOINCREMENT counter.
    private func putInPlace(_ table: String, shadow: String, createSQL: String, schemaRowID: Int64) throws {
        let quoted = SQLiteConnection.quoteIdentifier(table)
        let objects = try connection.query("""
            SELECT type, name, shadow_name, sql, schema_rowid FROM main.\(Self.registryTable)_objects
            WHERE table_name = ? ORDER BY schema_rowid
            """, [.text(table)])
        let hasSequence = try connection.scalar(
            "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'") != nil
        var sequence: (rowid: SQLiteValue, seq: Int64)?
        if hasSequence, let row = try connection.query(
            "SELECT rowid, seq FROM main.sqlite_sequence WHERE name = ?", [.text(table)]).first {
            sequence = (row[0], row[1].intValue ?? 0)
        }
        if try connection.scalar("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?",
                                 [.text(table)]) != nil {
            try retire(table)
        }
        try connection.execute("PRAGMA legacy_alter_table = ON")
        try connection.execute(
            "ALTER TABLE main.\(SQLiteConnection.quoteIdentifier(shadow)) RENAME TO \(quoted)")
        try connection.execute("PRAGMA legacy_alter_table = OFF")
        for object in objects where object[0].description == "trigger" {
            try connection.execute(object[3].description)
        }
        try connection.execute("PRAGMA writable_schema = ON")
        defer { try? connection.execute("PRAGMA writable_schema = OFF") }
        try connection.run(
            "UPDATE main.sqlite_schema SET sql = ?, rowid = ? WHERE type = 'table' AND name = ?",
            [.text(createSQL), .integer(schemaRowID), .text(table)])
        for object in objects {
            // Automatic indexes were renamed with the table; the others get their names back here.
            let automatic = object[3].description.isEmpty
            let current = object[0].description == "index" && !automatic ? object[2] : object[1]
            try connection.run(
                automatic
                    ? "UPDATE main.sqlite_schema SET rowid = ?3 WHERE type = ?4 AND name = ?5"
                    : "UPDATE main.sqlite_schema SET name = ?1, sql = ?2, rowid = ?3 WHERE type = ?4 AND name = ?5",
                [object[1], object[3], object[4], object[0], current])
        }
        if hasSequence {
            let renamed = try connection.query(
                "SELECT rowid, seq FROM main.sqlite_sequence WHERE name = ?", [.text(table)]).first
            let seq = max(sequence?.seq ?? 0, renamed?[1].intValue ?? 0)
            try connection.run(
                "DELETE FROM main.sqlite_sequence WHERE name IN (?, ?)", [.text(table), .text(Self.retiredName(table))])
            if sequence != nil || renamed != nil {
                try connection.run(
                    "INSERT INTO main.sqlite_sequence(rowid, name, seq) VALUES (?, ?, ?)",
                    [sequence?.rowid ?? .null, .text(table), .integer(seq)])
            }
        }
    }
}

extension SQLitePluginDatabase {
    static func retiredName(_ table: String) -> String { "_molam_retired_" + table }

    /// The live table moved out of the way inside the window, in constant time: its triggers dropped
    /// (they come back from the shadow's registry), the table renamed, and its indexes given names
    /// of the agent's (index names are database-wide). Dropping it would free every page, in time
    /// that grows with the table: its rows go after the window instead (`dropRetiredTables`).
    func retire(_ table: String) throws {
        let retired = Self.retiredName(table)
        let quotedRetired = SQLiteConnection.quoteIdentifier(retired)
        if try connection.scalar("SELECT 1 FROM main.sqlite_schema WHERE name = ?", [.text(retired)]) != nil {
            try connection.execute("DROP TABLE main.\(quotedRetired)")
        }
        let triggers = try connection.query(
            "SELECT name FROM main.sqlite_schema WHERE type = 'trigger' AND tbl_name = ?", [.text(table)])
        for trigger in triggers {
            try connection.execute("DROP TRIGGER main.\(SQLiteConnection.quoteIdentifier(trigger[0].description))")
        }
        try connection.execute("PRAGMA legacy_alter_table = ON")
        try connection.execute("ALTER TABLE main.\(SQLiteConnection.quoteIdentifier(table)) RENAME TO \(quotedRetired)")
        let indexes = try connection.query(
            "SELECT name, sql FROM main.sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            [.text(retired)])
        try connection.execute("PRAGMA writable_schema = ON")
        for (number, index) in indexes.enumerated() {
            let name = "_molam_retired_i\(number)_" + table
            guard let sql = Self.shadowIndexSQL(index[1].description, name: name, table: retired) else {
                throw PluginDatabaseError.invalidTableName("\(table) (index \(index[0]) cannot be set aside)")
            }
            try connection.run(
                "UPDATE main.sqlite_schema SET name = ?, sql = ? WHERE type = 'index' AND name = ?",
                [.text(name), .text(sql), index[0]])
        }
        // Its places in the schema go to the table put back in its stead.
        let places = try connection.query(
            "SELECT rowid FROM main.sqlite_schema WHERE tbl_name = ? ORDER BY rowid", [.text(retired)])
        for place in places {
            try connection.run(
                "UPDATE main.sqlite_schema SET rowid = (SELECT max(rowid) + 1 FROM main.sqlite_schema) WHERE rowid = ?",
                [place[0]])
        }
    }

    /// Empties the tables a restore set aside a chunk of rows per transaction, so that live writers
    /// wait for one chunk at most, then drops them.
    public func dropRetiredTables() throws(PluginDatabaseError) {
        do {
            let retired = try connection.query("""
                SELECT name FROM main.sqlite_schema
                WHERE type = 'table' AND name LIKE '\\_molam\\_retired\\_%' ESCAPE '\\'
                """).compactMap { $0[0].stringValue }
            for table in retired {
                try emptyInChunks(table)
                try connection.execute("DROP TABLE main.\(SQLiteConnection.quoteIdentifier(table))")
            }
        } catch {
            throw Self.unexpected(error, context: "dropping the tables a restore set aside in \(path)")
        }
    }
}

extension SQLitePluginDatabase {
    /// Deletes a table's rows a chunk per transaction, sized and paced as the copies are, so that the
    /// DROP that follows frees next to nothing under the write lock.
    func emptyInChunks(_ table: String) throws {
        let quoted = "main." + SQLiteConnection.quoteIdentifier(table)
        try Self.inSizedChunks(startingAt: Self.chunkRows) { rows in
            try connection.transaction(.immediate) { () throws -> Bool in
                try connection.run("DELETE FROM \(quoted) WHERE rowid IN (SELECT rowid FROM \(quoted) LIMIT \(rows))")
                return connection.changes > 0
            }
        }
    }
}

/// What the rollback's rename restore did.
public struct ShadowRestoreSummary: Sendable, Equatable {
    public var restored: [String] = []
    /// Rows live traffic changed during the window, merged back by key.
    public var merged = 0
    /// Rows kept in `_molam_quarantine_<table>` because the old schema could not take them.
    public var quarantined: [String: Int] = [:]
    public var dropped: [String] = []
}
