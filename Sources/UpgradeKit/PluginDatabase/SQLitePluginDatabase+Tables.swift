import Foundation
import MolamSQLite

extension SQLitePluginDatabase {
    /// Copies exactly `tables` into a new SQLite file at `backupPath` (refused if it exists):
    /// each table's CREATE sql, all rows with their rowids, its indexes, triggers and
    /// sqlite_sequence entry, plus which tables did not exist so a restore drops them.
    ///
    /// The backup file is the main database of its own connection and the site is ATTACHed to
    /// it, so the stored CREATE statements run verbatim; everything is read in one transaction,
    /// a consistent snapshot of the site (shadowed tables: from their shadows, see `copyTables`).
    /// The file is 0600. It is written with no rollback journal and no fsync per transaction
    /// (nothing relies on it before this returns, and a failed copy removes it), then fsynced once,
    /// with its directory entry, before this returns: as durable as a synchronous=FULL copy, without
    /// a journal commit per chunk of rows.
    public func backupTables(
        _ tables: [String], to backupPath: String
    ) throws(PluginDatabaseError) -> TableBackupSummary {
        let names = try Self.validatedTableNames(tables)
        let file: Int32
        do {
            file = try DatabaseFileIO.openExclusive(backupPath)
        } catch {
            if error.errno == EEXIST { throw .backupExists(path: backupPath) }
            throw .io(error)
        }
        defer { close(file) }
        var complete = false
        defer {
            if !complete {
                // A half-written backup must not be mistaken for a good one later.
                DatabaseFileIO.removeIfPresent(backupPath + "-journal")
                DatabaseFileIO.removeIfPresent(backupPath)
            }
        }
        let (rows, missing) = try copyTables(names, to: backupPath, file: file)
        do {
            try FileSystem.fsync(file, path: backupPath)
            try DatabaseFileIO.syncDirectory(of: backupPath)
            let bytes = try DatabaseFileIO.size(backupPath)
            complete = true
            return TableBackupSummary(tables: rows, missing: missing, bytes: bytes)
        } catch {
            throw .io(error)
        }
    }

    /// `file` is a descriptor of `backupPath`, through which the chunked copies flush what they wrote.
    private func copyTables(
        _ names: [String], to backupPath: String, file: Int32
    ) throws(PluginDatabaseError) -> (rows: [String: Int], missing: [String]) {
        let context = "backing up tables of \(path) to \(backupPath)"
        // The connection is closed when this function returns, before the directory is synced.
        let backup: SQLiteConnection
        do {
            backup = try SQLiteConnection(path: backupPath, mode: .readWrite)
            // A new file only this connection sees: a journal would protect nothing a failed copy does
            // not remove anyway, and `backupTables` fsyncs the finished file once.
            try backup.execute("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
            try backup.attach(path: path, as: "site")
            // The site is only read here, each page once, in rowid order: a page cache of its own
            // (2 MiB by default, filled by a 100 MiB copy and held until the connection closes) buys
            // nothing. The backup file keeps the default: a chunk's new pages stay there until commit.
            try backup.execute("PRAGMA site.cache_size = -\(Self.readOnceCacheKiB)")
        } catch {
            throw .sqlite(error, context: context)
        }
        do {
            // Tables with a shadow (`prepareShadows`) are copied from it afterwards, a chunk of rows
            // per transaction: nothing else writes a shadow, and a long read would keep the site's
            // writers from committing all along.
            let shadows = try backup.scalar(
                "SELECT 1 FROM site.sqlite_schema WHERE type = 'table' AND name = ?", [.text(Self.registryTable)]
            ) != nil
                ? Dictionary(try backup.query("SELECT name, shadow FROM site.\(Self.registryTable)")
                    .map { ($0[0].description, $0[1].description) }, uniquingKeysWith: { first, _ in first })
                : [:]
            var fromShadows: [(table: String, shadow: String)] = []
            // In WAL mode a reader never blocks the site's writers (nor they it): the shadows are read in
            // one transaction. Otherwise a read holds the site's SHARED lock, which keeps a writer from
            // committing, and the shadows are read a chunk at a time.
            let siteInWAL = try backup.scalar("PRAGMA site.journal_mode")?.stringValue?.lowercased() == "wal"
            // DEFERRED, not IMMEDIATE: IMMEDIATE would take the site's write lock too, and the
            // site only needs to be read. The first read of `site` fixes the snapshot.
            var (rows, missing) = try backup.transaction(.deferred) { () throws -> ([String: Int], [String]) in
                try backup.execute(TableBackupFormat.schema)
                try backup.execute("""
                    PRAGMA main.application_id = \(TableBackupFormat.applicationID);
                    PRAGMA main.user_version = \(TableBackupFormat.version);
                    """)
                let hasSequence = try backup.scalar(
                    "SELECT 1 FROM site.sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'"
                ) != nil
                var rows: [String: Int] = [:]
                var missing: [String] = []
                for (position, requested) in names.enumerated() {
                    let found = try backup.query("""
                        SELECT name, sql, rowid FROM site.sqlite_schema
                        WHERE type = 'table' AND name = ? COLLATE NOCASE
                        """, [.text(requested)]).first
                    guard let found, let name = found[0].stringValue,
                          let createSQL = found[1].stringValue else {
                        try backup.run(
                            "INSERT INTO _molam_backup(table_name, position, existed, row_count, has_rowid) "
                                + "VALUES (?, ?, 0, 0, 0)",
                            [.text(requested), .integer(Int64(position))]
                        )
                        missing.append(requested)
                        continue
                    }
                    if createSQL.uppercased().hasPrefix("CREATE VIRTUAL TABLE") {
                        throw PluginDatabaseError.invalidTableName(
                            "\(name) (virtual tables cannot be backed up)"
                        )
                    }
                    let withoutRowID = try backup.scalar(
                        "SELECT wr FROM pragma_table_list(?) WHERE schema = 'site'", [.text(name)]
                    )?.intValue == 1
                    try backup.execute(createSQL)
                    if let shadow = shadows[name], !withoutRowID {
                        fromShadows.append((name, shadow))
                    }
                    guard let count = fromShadows.last?.table == name ? 0 : try TableColumns.copyRows(
                        backup, table: name, hasRowID: !withoutRowID, from: "site", to: "main"
                    ) else {
                        throw PluginDatabaseError.invalidTableName(
                            "\(name) (its columns shadow rowid, _rowid_ and oid)"
                        )
                    }
                    let sequence: SQLiteValue = hasSequence
                        ? try backup.scalar(
                            "SELECT seq FROM site.sqlite_sequence WHERE name = ?", [.text(name)]
                        ) ?? .null
                        : .null
                    try backup.run("""
                        INSERT INTO _molam_backup(
                            table_name, position, existed, create_sql, schema_order, row_count,
                            has_rowid, sequence)
                        VALUES (?, ?, 1, ?, ?, ?, ?, ?)
                        """, [.text(name), .integer(Int64(position)), .text(createSQL), found[2],
                              .integer(Int64(count)), .integer(withoutRowID ? 0 : 1), sequence])
                    // Automatic indexes (sql IS NULL) come back with the CREATE TABLE itself.
                    try backup.run("""
                        INSERT INTO _molam_backup_objects(table_name, type, name, sql, schema_order)
                        SELECT ?, type, name, sql, rowid FROM site.sqlite_schema
                        WHERE type IN ('index', 'trigger') AND tbl_name = ? AND sql IS NOT NULL
                          AND name NOT LIKE '\\_molam\\_%' ESCAPE '\\'
                        """, [.text(name), .text(name)])
                    // Their places in sqlite_schema, so a restore can put them back where they were.
                    try backup.run("""
                        INSERT INTO _molam_backup_objects(table_name, type, name, sql, schema_order)
                        SELECT ?, 'autoindex', name, '', rowid FROM site.sqlite_schema
                        WHERE type = 'index' AND tbl_name = ? AND sql IS NULL
                        """, [.text(name), .text(name)])
                    rows[name] = count
                }
                return (rows, missing)
            }
            for (table, shadow) in fromShadows {
                let count = try copyFromShadow(
                    backup, table: table, shadow: shadow, inChunks: !siteInWAL ? (file, backupPath) : nil)
                try backup.run(
                    "UPDATE main._molam_backup SET row_count = ? WHERE table_name = ?",
                    [.integer(Int64(count)), .text(table)])
                rows[table] = count
            }
            return (rows, missing)
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    /// Copies a shadow's rows into the backup's table, rowids kept: a chunk per transaction when a
    /// read keeps the site's writers waiting (`inChunks`, the file to flush), else in one.
    ///
    /// In chunks, each chunk's rows are flushed to the file after it, outside its transaction, in the
    /// pause the site is given: left to the final fsync, the whole table's pages (400 MB) were written
    /// back at once, and the site's own commits waited behind them (188 ms at 400 MiB).
    private func copyFromShadow(
        _ backup: SQLiteConnection, table: String, shadow: String, inChunks flush: (fd: Int32, path: String)?
    ) throws -> Int {
        let columns = try TableColumns.insertable(backup, schema: "main", table: table)
        guard let list = TableColumns.selectList(columns: columns, hasRowID: true) else {
            throw PluginDatabaseError.invalidTableName("\(table) (its columns shadow rowid, _rowid_ and oid)")
        }
        let rowid = list.split(separator: ",").first.map(String.init) ?? "rowid"
        let target = "main." + SQLiteConnection.quoteIdentifier(table)
        let source = "site." + SQLiteConnection.quoteIdentifier(shadow)
        guard let flush else {
            return try backup.transaction(.deferred) { () throws -> Int in
                try backup.run("INSERT INTO \(target)(\(list)) SELECT \(list) FROM \(source) ORDER BY \(rowid)")
                return backup.changes
            }
        }
        var last: Int64 = .min
        var copied = 0
        try Self.inSizedChunks(startingAt: Self.chunkRows * 5, between: {
            try FileSystem.fsync(flush.fd, path: flush.path)
        }) { rows in
            let count = try backup.transaction(.deferred) { () throws -> Int in
                try backup.run("""
                    INSERT INTO \(target)(\(list)) SELECT \(list) FROM \(source)
                    WHERE \(rowid) > ? ORDER BY \(rowid) LIMIT \(rows)
                    """, [.integer(last)])
                return backup.changes
            }
            copied += count
            guard count == rows, let highest = try backup.scalar(
                "SELECT max(\(rowid)) FROM \(target)")?.intValue
            else { return false }
            last = highest
            return true
        }
        return copied
    }

    /// Checks a backup file before anything relies on it: it is one of ours, SQLite's
    /// integrity_check passes, the metadata is there and every table holds the rows it should.
    public func verifyTableBackup(at backupPath: String) throws(PluginDatabaseError) -> TableBackupSummary {
        try Self.verifyTableBackup(at: backupPath)
    }

    static func verifyTableBackup(
        at backupPath: String
    ) throws(PluginDatabaseError) -> TableBackupSummary {
        func invalid(_ reason: String) -> PluginDatabaseError {
            .invalidBackup(path: backupPath, reason: reason)
        }
        guard DatabaseFileIO.isRegularFile(backupPath) else { throw invalid("the file does not exist") }
        do {
            let backup = try SQLiteConnection(path: backupPath, mode: .readOnly)
            let applicationID = try backup.scalar("PRAGMA application_id")?.intValue
            guard applicationID == Int64(TableBackupFormat.applicationID),
                  try backup.userVersion == TableBackupFormat.version
            else { throw invalid("not a molam-upgrade table backup") }
            let problems = try backup.integrityCheck()
            guard problems == ["ok"] else {
                throw invalid("integrity check failed: " + problems.prefix(3).joined(separator: "; "))
            }
            var rows: [String: Int] = [:]
            var missing: [String] = []
            for table in try TableBackupFormat.tables(in: backup, schema: "main") {
                guard table.existed else {
                    missing.append(table.name)
                    continue
                }
                let quoted = SQLiteConnection.quoteIdentifier(table.name)
                let count = Int(try backup.scalar("SELECT count(*) FROM main.\(quoted)")?.intValue ?? -1)
                guard count == table.rowCount else {
                    throw invalid(
                        "table \(table.name) holds \(count) rows, \(table.rowCount) were backed up"
                    )
                }
                rows[table.name] = count
            }
            let bytes = try DatabaseFileIO.size(backupPath)
            return TableBackupSummary(tables: rows, missing: missing, bytes: bytes)
        } catch let error as PluginDatabaseError {
            throw error
        } catch let error as SQLiteError {
            throw invalid(error.description)
        } catch {
            throw unexpected(error, context: "verifying \(backupPath)")
        }
    }
}
