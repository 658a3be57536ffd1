import Foundation
import MolamSQLite

/// Putting a table backup back: the restore, its no-op check, and the schema order it keeps.
extension SQLitePluginDatabase {
    /// Restores exactly the tables recorded in the backup in ONE immediate transaction (all or
    /// nothing, and idempotent). Tables that did not exist at backup time, and `alsoDrop` tables
    /// the backup does not hold, are dropped. A table whose CREATE sql is unchanged keeps its
    /// place in sqlite_schema: its rows are replaced and its indexes and triggers reconciled, so
    /// `.dump` reads as before; any other table is dropped and recreated. Foreign keys and
    /// triggers stay off meanwhile: cascades or triggers could otherwise reach tables the plugin
    /// does not own. Tables named nowhere are never touched, and neither is any table `mayTouch`
    /// refuses, whatever the backup or `alsoDrop` says (a backup taken under a bad manifest).
    public func restoreTables(
        from backupPath: String, alsoDrop: [String], mayTouch: (String) -> Bool
    ) throws(PluginDatabaseError) -> TableRestoreSummary {
        let extraDrops = try Self.validatedTableNames(alsoDrop).filter(mayTouch)
        guard DatabaseFileIO.isRegularFile(backupPath) else {
            throw .invalidBackup(path: backupPath, reason: "the file does not exist")
        }
        let context = "restoring tables of \(path) from \(backupPath)"
        do {
            // Both are per-connection settings, and foreign_keys is a no-op inside a transaction.
            try connection.execute("PRAGMA foreign_keys = OFF")
            try connection.setTriggersEnabled(false)
            try connection.attach(path: backupPath, as: "molam_backup")
        } catch {
            try? connection.setTriggersEnabled(true)
            throw .sqlite(error, context: context)
        }
        defer {
            try? connection.detach("molam_backup")
            try? connection.setTriggersEnabled(true)
        }
        do {
            return try connection.transaction(.immediate) {
                try restoreInTransaction(backupPath: backupPath, extraDrops: extraDrops, mayTouch: mayTouch)
            }
        } catch let error as SQLiteError
                    where error.message.contains("no such table: molam_backup._molam_backup") {
            throw .invalidBackup(path: backupPath, reason: "it holds no table backup metadata")
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    private func restoreInTransaction(
        backupPath: String, extraDrops: [String], mayTouch: (String) -> Bool
    ) throws -> TableRestoreSummary {
        let backedUp = try TableBackupFormat.tables(in: connection, schema: "molam_backup")
            .filter { mayTouch($0.name) }
        let backedUpNames = Set(backedUp.map { $0.name.lowercased() })
        var summary = TableRestoreSummary(restored: [], dropped: [])
        // Nothing to do when the tables already hold exactly the backup (a migration that was
        // rolled back as a whole): writing nothing keeps the database file byte for byte.
        if try matchesBackup(backedUp, extraDrops: extraDrops) { return summary }
        var recreated: [TableBackupFormat.Table] = []

        for table in backedUp where !table.existed {
            if try dropTableIfPresent(table.name) { summary.dropped.append(table.name) }
        }
        for name in extraDrops where !backedUpNames.contains(name.lowercased()) {
            if try dropTableIfPresent(name) { summary.dropped.append(name) }
        }
        let hasSequence = { () throws(SQLiteError) -> Bool in
            try self.connection.scalar(
                "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'"
            ) != nil
        }
        for table in backedUp where table.existed {
            let quoted = SQLiteConnection.quoteIdentifier(table.name)
            let wanted = try TableBackupFormat.objects(
                in: connection, schema: "molam_backup", table: table.name
            )
            let currentSQL = try connection.scalar(
                "SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
                [.text(table.name)]
            )?.stringValue
            var present: [TableBackupFormat.Object] = []
            if currentSQL == table.createSQL {
                // Extra or changed indexes and triggers go before the rows come back: a UNIQUE
                // index a newer version added could reject the old rows.
                for object in try currentObjects(of: table.name) where !wanted.contains(object) {
                    try connection.execute("DROP \(object.type.uppercased()) main.\(quote(object.name))")
                }
                present = try currentObjects(of: table.name)
                try connection.run("DELETE FROM main.\(quoted)")
            } else {
                if currentSQL != nil { try connection.run("DROP TABLE main.\(quoted)") }
                // Unqualified CREATE statements land in main, the site database.
                try connection.execute(table.createSQL)
                recreated.append(table)
            }
            let copied = try TableColumns.copyRows(
                connection, table: table.name, hasRowID: table.hasRowID, from: "molam_backup", to: "main"
            )
            guard copied == table.rowCount else {
                throw PluginDatabaseError.invalidBackup(
                    path: backupPath,
                    reason: "table \(table.name) holds \(copied ?? 0) rows, \(table.rowCount) were backed up"
                )
            }
            for object in wanted where !present.contains(object) {
                try connection.execute(object.sql)
            }
            if let sequence = table.sequence {
                // UPDATE in place keeps sqlite_sequence's row order, so .dump is unchanged too.
                try connection.run(
                    "UPDATE main.sqlite_sequence SET seq = ? WHERE name = ?",
                    [.integer(sequence), .text(table.name)]
                )
                if connection.changes == 0 {
                    try connection.run(
                        "INSERT INTO main.sqlite_sequence(name, seq) VALUES (?, ?)",
                        [.text(table.name), .integer(sequence)]
                    )
                }
            } else if try hasSequence() {
                try connection.run("DELETE FROM main.sqlite_sequence WHERE name = ?", [.text(table.name)])
            }
            summary.restored.append(table.name)
            try FaultInjection.hit("mid-restore")
        }
        try restoreSchemaOrder(of: recreated)
        return summary
    }

    /// Whether every backed-up table, with its indexes, triggers, rows and sequence, is already
    /// exactly as in the backup, and every table to drop is absent. Reads only.
    private func matchesBackup(
        _ backedUp: [TableBackupFormat.Table], extraDrops: [String]
    ) throws -> Bool {
        let backedUpNames = Set(backedUp.map { $0.name.lowercased() })
        for name in extraDrops where !backedUpNames.contains(name.lowercased()) {
            if try tableExists(name) { return false }
        }
        let hasSequence = try connection.scalar(
            "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'"
        ) != nil
        for table in backedUp {
            guard table.existed else {
                if try tableExists(table.name) { return false }
                continue
            }
            let currentSQL = try connection.scalar(
                "SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
                [.text(table.name)]
            )?.stringValue
            guard currentSQL == table.createSQL else { return false }
            let wanted = try TableBackupFormat.objects(
                in: connection, schema: "molam_backup", table: table.name)
            guard try currentObjects(of: table.name) == wanted else { return false }
            let quoted = quote(table.name)
            let columns = try TableColumns.insertable(connection, schema: "molam_backup", table: table.name)
            guard let list = TableColumns.selectList(columns: columns, hasRowID: table.hasRowID) else {
                return false
            }
            let count = try connection.scalar("SELECT count(*) FROM main.\(quoted)")?.intValue
            guard count == Int64(table.rowCount) else { return false }
            let differing = try connection.scalar("""
                SELECT count(*) FROM (SELECT \(list) FROM main.\(quoted)
                                      EXCEPT SELECT \(list) FROM molam_backup.\(quoted))
                """)?.intValue
            guard differing == 0 else { return false }
            let sequence = hasSequence
                ? try connection.scalar(
                    "SELECT seq FROM main.sqlite_sequence WHERE name = ?", [.text(table.name)])?.intValue
                : nil
            guard sequence == table.sequence else { return false }
        }
        return true
    }

    private func tableExists(_ name: String) throws(SQLiteError) -> Bool {
        try connection.scalar(
            "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE", [.text(name)]
        ) != nil
    }

    /// Puts recreated tables, their indexes and triggers back at the sqlite_schema rowids they had,
    /// so `sqlite3 .dump` lists them where it did before the upgrade. Only rowids change, never an
    /// entry's content, and only into rowids the DROP freed; it runs in a savepoint checked by
    /// quick_check, and is simply undone (the data restore stands) if anything looks wrong.
    /// (sqlite.org/pragma.html#pragma_writable_schema: edits that change meaning can corrupt.)
    private func restoreSchemaOrder(of tables: [TableBackupFormat.Table]) throws {
        var moves: [(type: String, name: String, order: Int64)] = []
        for table in tables {
            guard let order = table.schemaOrder else { return }
            moves.append(("table", table.name, order))
            moves += try TableBackupFormat.objectOrders(
                in: connection, schema: "molam_backup", table: table.name)
        }
        guard !moves.isEmpty else { return }
        // Every target rowid must be free or already held by the same entry.
        for move in moves {
            let holder = try connection.query(
                "SELECT type, name FROM main.sqlite_schema WHERE rowid = ?", [.integer(move.order)]
            ).first
            if let holder, !(holder[0].description == move.type && holder[1].description.lowercased()
                == move.name.lowercased()) {
                if !moves.contains(where: {
                    $0.type == holder[0].description && $0.name == holder[1].description
                }) {
                    return
                }
            }
        }
        try connection.execute("SAVEPOINT molam_schema_order")
        do {
            try connection.execute("PRAGMA writable_schema = ON")
            let base = (try connection.scalar("SELECT max(rowid) FROM main.sqlite_schema")?.intValue ?? 0) + 1
            // Two passes, so no move ever collides with an entry still waiting for its own.
            for (index, move) in moves.enumerated() {
                try connection.run(
                    "UPDATE main.sqlite_schema SET rowid = ? WHERE type = ? AND name = ? COLLATE NOCASE",
                    [.integer(base + Int64(index)), .text(move.type), .text(move.name)])
            }
            for (index, move) in moves.enumerated() {
                try connection.run(
                    "UPDATE main.sqlite_schema SET rowid = ? WHERE rowid = ?",
                    [.integer(move.order), .integer(base + Int64(index))])
            }
            try connection.execute("PRAGMA writable_schema = OFF")
            let check = try connection.query("PRAGMA main.quick_check").map(\.[0].description)
            guard check == ["ok"] else {
                try connection.execute("ROLLBACK TO molam_schema_order; RELEASE molam_schema_order")
                return
            }
            try connection.execute("RELEASE molam_schema_order")
        } catch {
            try? connection.execute("PRAGMA writable_schema = OFF")
            try? connection.execute("ROLLBACK TO molam_schema_order; RELEASE molam_schema_order")
        }
    }

    private func currentObjects(of table: String) throws(SQLiteError) -> [TableBackupFormat.Object] {
        try connection.query("""
            SELECT type, name, sql FROM main.sqlite_schema
            WHERE type IN ('index', 'trigger') AND tbl_name = ? COLLATE NOCASE AND sql IS NOT NULL
            ORDER BY rowid
            """, [.text(table)]).map(TableBackupFormat.Object.init(row:))
    }

    private func dropTableIfPresent(_ name: String) throws(SQLiteError) -> Bool {
        let exists = try connection.scalar(
            "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
            [.text(name)]
        ) != nil
        if exists { try connection.run("DROP TABLE main.\(quote(name))") }
        return exists
    }

    private func quote(_ name: String) -> String { SQLiteConnection.quoteIdentifier(name) }
}
