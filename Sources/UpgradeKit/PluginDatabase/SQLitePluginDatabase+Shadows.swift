import Foundation
import MolamSQLite

/// DESIGN.md's "Rows" on SQLite: shadow copies of the owned tables made before the risky window, the
/// keys of the rows live traffic changes recorded by triggers, and a rollback that merges those rows
/// into the shadows and renames them into place in one transaction, in time that grows with the
/// rows changed, not with the tables.
///
/// The agent's own objects in the site database all start with `_molam_`: the shadows
/// (`_molam_shadow_<table>`, their indexes `_molam_shadow_i<n>`), the change log (`_molam_changes`),
/// the registry of what was shadowed (`_molam_shadow_registry`), the capture triggers
/// (`_molam_capture_<i|u|d>_<table>`) and, when a row cannot be put back, `_molam_quarantine_<table>`.
///
/// SQLite keeps index names database-wide and has no ALTER INDEX, so a shadow's indexes are built
/// under names of their own and given their original names and SQL at the rename, in
/// `sqlite_schema` itself (`writable_schema`), where the table, its indexes and its triggers also
/// get back their original places (`rowid`), so a dump of the schema reads as before.
extension SQLitePluginDatabase {
    static let registryTable = "_molam_shadow_registry"
    static let changesTable = "_molam_changes"
    /// Rows per transaction where a chunk's size is fixed (emptying set-aside tables): live writers
    /// wait for one chunk at most.
    static let chunkRows = 2_000
    /// The page cache of a schema a copy reads once, sequentially (`PRAGMA cache_size`, KiB).
    static let readOnceCacheKiB = 256
    /// What a copy's chunk should take: `inSizedChunks` sizes its chunks to it. A live writer that
    /// arrives as a chunk starts waits for it, then for its busy handler's next poll, which comes 33 ms
    /// after its first try (then 53 ms): chunks that mostly end before that keep its wait near 33 ms.
    static let chunkTarget: Duration = .milliseconds(25)

    static func shadowName(_ table: String) -> String { "_molam_shadow_" + table }
    static func stringLiteral(_ text: String) -> String { "'" + text.replacing("'", with: "''") + "'" }

    /// Runs `chunk` (one short transaction of a fixed number of rows) until it says it is done, leaving
    /// the database to live writers after each chunk for `pause(after:)` or as long as the chunk took,
    /// whichever is longer: SQLite's busy handler polls, and a loop that takes the lock again at once
    /// would starve them. Fixed chunks (emptying set-aside tables, during a rollback's tidy-up) can take
    /// far longer than `chunkTarget`; they keep the older, longer pause.
    static func inChunks(_ chunk: () throws -> Bool) rethrows {
        while true {
            let started = ContinuousClock.now
            guard try chunk() else { return }
            let took = ContinuousClock.now - started
            Thread.sleep(forTimeInterval: max(took, pause(after: took)) / .seconds(1))
        }
    }

    /// The sleeps, in ms, of SQLite's default busy handler (`sqliteDefaultBusyCallback` in main.c),
    /// which `sqlite3_busy_timeout` installs (PHP's PDO, Python and our own connections use it); it
    /// sleeps 100 ms after these.
    static let busyHandlerSleeps = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100]

    /// How long the site is left alone after a chunk that held its lock for `took`: long enough that
    /// every writer that began waiting during the chunk polls inside the pause. Such a writer is at
    /// most in the busy handler's sleep that can span the chunk's end, the longest of those that start
    /// within `took` of its first try (10 ms for a chunk of 8–18 ms, 15 ms up to 33 ms, 20 ms up to
    /// 53 ms…), plus 3 ms for late wake-ups. The older rule, a pause as long as the chunk, left
    /// writers waiting one more chunk after chunks of 8–10 ms, and idled longer than needed above.
    static func pause(after took: Duration) -> Duration {
        var slept: Duration = .zero
        var spanning: Duration = .milliseconds(100)
        for sleep in busyHandlerSleeps.map({ Duration.milliseconds($0) }) {
            guard slept < took else { break }
            spanning = sleep
            slept += sleep
        }
        if slept < took { spanning = .milliseconds(100) }
        return max(.milliseconds(5), spanning + .milliseconds(3))
    }

    /// Runs `chunk(rows)` (one short transaction copying at most `rows` rows; true while rows remain)
    /// with `inChunks`' pauses, resizing the chunks towards `chunkTarget`: a commit's fsyncs cost the
    /// same for 100 rows as for 10,000, and the rows a chunk can copy in that time vary with the row
    /// size, the machine and its load.
    /// `between` runs after each chunk, outside its transaction, and its time counts towards the pause.
    static func inSizedChunks(
        startingAt initial: Int, between: () throws -> Void = {}, _ chunk: (Int) throws -> Bool
    ) rethrows {
        var rows = initial
        while true {
            let started = ContinuousClock.now
            guard try chunk(rows) else { return }
            let ended = ContinuousClock.now
            let took = ended - started
            // At most halved or doubled at a time: one slow or fast commit is no trend.
            let scale = min(2, max(0.5, chunkTarget / max(took, .microseconds(100))))
            rows = min(100_000, max(100, Int(Double(rows) * scale)))
            try between()
            let left = pause(after: took) - (ContinuousClock.now - ended)
            if left > .zero { Thread.sleep(forTimeInterval: left / .seconds(1)) }
        }
    }
    static func quarantineName(_ table: String) -> String { PluginDatabases.quarantineTable(for: table) }

    public func prepareShadows(_ tables: [String]) throws(PluginDatabaseError) -> ShadowSummary {
        let names = try Self.validatedTableNames(tables)
        try discardShadows()
        let context = "preparing shadow tables in \(path)"
        do {
            let shadowed = try connection.transaction(.immediate) { () throws -> [ShadowedTable] in
                try connection.execute("""
                    CREATE TABLE main.\(Self.registryTable)(
                        name TEXT PRIMARY KEY, shadow TEXT NOT NULL, create_sql TEXT NOT NULL,
                        schema_rowid INTEGER NOT NULL);
                    CREATE TABLE main.\(Self.registryTable)_objects(
                        table_name TEXT NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL, shadow_name TEXT,
                        sql TEXT NOT NULL, schema_rowid INTEGER NOT NULL);
                    CREATE TABLE main.\(Self.changesTable)(seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, key INTEGER);
                    """)
                var shadowed: [ShadowedTable] = []
                for name in names {
                    guard let table = try shadowTable(name, index: shadowed.count) else { continue }
                    shadowed.append(table)
                }
                try startCapture(shadowed.map(\.name))
                return shadowed
            }
            var rows = 0
            for table in shadowed { rows += try copyInChunks(table) }
            // The copy filled this connection's page cache (2 MiB by default), which would otherwise
            // stay allocated for the rest of the run, the backup's own copies included; the pages are
            // in the OS cache anyway (sqlite3_db_release_memory).
            try connection.execute("PRAGMA shrink_memory")
            return ShadowSummary(tables: shadowed.map(\.name), rows: rows)
        } catch let error as PluginDatabaseError {
            try? discardShadows()
            throw error
        } catch {
            try? discardShadows()
            throw Self.unexpected(error, context: context)
        }
    }

    public func hasShadows() throws(PluginDatabaseError) -> Bool {
        try sql("reading \(path)") { () throws(SQLiteError) in
            try connection.scalar(
                "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?", [.text(Self.registryTable)]
            ) != nil
        }
    }

    public func discardShadows() throws(PluginDatabaseError) {
        guard try hasCaptureLeftovers() else { return }
        try dropRetiredTables()
        let context = "removing the shadow tables of \(path)"
        do {
            // Recording stops first; then the shadows' rows go a chunk at a time: one DROP of a large
            // table frees every page under the write lock (2 s at 400 MiB, the shop's writes waiting).
            try connection.transaction(.immediate) { () throws in try dropCaptureTriggers() }
            let shadows = try connection.query("""
                SELECT name FROM main.sqlite_schema WHERE type = 'table'
                  AND name LIKE '\\_molam\\_shadow\\_%' ESCAPE '\\' AND name NOT LIKE '\(Self.registryTable)%'
                """).compactMap { $0[0].stringValue }
            for shadow in shadows { try emptyInChunks(shadow) }
            try connection.transaction(.immediate) { () throws in
                for row in try connection.query("""
                    SELECT type, name FROM main.sqlite_schema
                    WHERE (type = 'trigger' AND name LIKE '\\_molam\\_capture\\_%' ESCAPE '\\')
                       OR (type = 'table' AND (name LIKE '\\_molam\\_shadow\\_%' ESCAPE '\\'
                                               OR name = '\(Self.changesTable)'))
                    ORDER BY type DESC
                    """) {
                    let type = row[0].description.uppercased()
                    try connection.execute("DROP \(type) IF EXISTS main.\(SQLiteConnection.quoteIdentifier(row[1].description))")
                }
            }
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    private func hasCaptureLeftovers() throws(PluginDatabaseError) -> Bool {
        try sql("reading \(path)") { () throws(SQLiteError) in
            try connection.scalar("""
                SELECT 1 FROM main.sqlite_schema WHERE name LIKE '\\_molam\\_capture\\_%' ESCAPE '\\'
                   OR name LIKE '\\_molam\\_shadow\\_%' ESCAPE '\\' OR name = ?
                   OR name LIKE '\\_molam\\_retired\\_%' ESCAPE '\\'
                """, [.text(Self.changesTable)]) != nil
        }
    }

    /// Triggers recording the key of every row live traffic inserts, updates or deletes in `tables`.
    /// They name no column, so no migration is ever kept from changing one.
    func startCapture(_ tables: [String]) throws {
        for table in tables {
            let quoted = SQLiteConnection.quoteIdentifier(table), name = SQLiteConnection.quoteIdentifier
            let log = "INSERT INTO \(Self.changesTable)(tbl, key) VALUES (\(Self.stringLiteral(table)), "
            try connection.execute("""
                CREATE TRIGGER main.\(name("_molam_capture_i_" + table)) AFTER INSERT ON \(quoted)
                BEGIN \(log)new.rowid); END;
                CREATE TRIGGER main.\(name("_molam_capture_u_" + table)) AFTER UPDATE ON \(quoted)
                BEGIN \(log)old.rowid); \(log)new.rowid); END;
                CREATE TRIGGER main.\(name("_molam_capture_d_" + table)) AFTER DELETE ON \(quoted)
                BEGIN \(log)old.rowid); END;
                """)
        }
    }

    /// The capture triggers off while `body` runs (a migration's own changes are not live traffic),
    /// and back, in the same transaction, on the shadowed tables that still exist and on the tables
    /// `body` created: rows live traffic writes into those are what a rollback must keep.
    func withCapturePaused<T>(_ body: () throws -> T) throws -> T {
        guard try hasShadows() else { return try body() }
        let before = try rowidTables()
        try dropCaptureTriggers()
        let value = try body()
        let shadowed = Set(try connection.query("SELECT name FROM main.\(Self.registryTable)")
            .compactMap(\.[0].stringValue))
        let after = try rowidTables()
        try startCapture(after.filter { shadowed.contains($0) || !before.contains($0) }.sorted())
        return value
    }

    /// Tables of the site that have rowids, the agent's own and SQLite's left out.
    private func rowidTables() throws -> Set<String> {
        Set(try connection.query("""
            SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND wr = 0
              AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_molam\\_%' ESCAPE '\\'
            """).compactMap(\.[0].stringValue))
    }

    func dropCaptureTriggers() throws {
        let triggers = try connection.query("""
            SELECT name FROM main.sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_molam\\_capture\\_%' ESCAPE '\\'
            """).compactMap(\.[0].stringValue)
        for trigger in triggers {
            try connection.execute("DROP TRIGGER IF EXISTS main.\(SQLiteConnection.quoteIdentifier(trigger))")
        }
    }

    /// Copies a table into its shadow a chunk of rows per transaction (sized to `chunkTarget`), rowids
    /// kept, so that a live writer waits for one chunk at most. What changes meanwhile is in the change
    /// log already.
    private func copyInChunks(_ table: ShadowedTable) throws -> Int {
        let columns = try TableColumns.insertable(connection, schema: "main", table: table.name)
        guard let list = TableColumns.selectList(columns: columns, hasRowID: true) else {
            throw PluginDatabaseError.invalidTableName("\(table.name) (its columns shadow rowid, _rowid_ and oid)")
        }
        let rowid = list.split(separator: ",").first.map(String.init) ?? "rowid"
        let source = "main." + SQLiteConnection.quoteIdentifier(table.name)
        let target = "main." + SQLiteConnection.quoteIdentifier(table.shadow)
        var last: Int64 = .min
        var copied = 0
        try Self.inSizedChunks(startingAt: Self.chunkRows) { rows in
            let (count, highest) = try connection.transaction(.immediate) { () throws -> (Int, Int64?) in
                try connection.run("""
                    INSERT INTO \(target)(\(list)) SELECT \(list) FROM \(source)
                    WHERE \(rowid) > ? ORDER BY \(rowid) LIMIT \(rows)
                    """, [.integer(last)])
                let count = connection.changes
                return (count, try connection.scalar("SELECT max(\(rowid)) FROM \(target)")?.intValue)
            }
            copied += count
            guard count == rows, let highest else { return false }
            last = highest
            return true
        }
        return copied
    }

    /// One table's shadow and its indexes, empty, registered; nil for a table that does not exist.
    private func shadowTable(_ requested: String, index: Int) throws -> ShadowedTable? {
        guard let found = try connection.query("""
            SELECT name, sql, rowid FROM main.sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE
            """, [.text(requested)]).first,
            let name = found[0].stringValue, let createSQL = found[1].stringValue, let order = found[2].intValue
        else { return nil }
        let withoutRowID = try connection.scalar(
            "SELECT wr FROM pragma_table_list(?) WHERE schema = 'main'", [.text(name)])?.intValue == 1
        if withoutRowID || createSQL.uppercased().hasPrefix("CREATE VIRTUAL TABLE") {
            throw PluginDatabaseError.shadowUnsupported(table: name, reason: "only tables with rowids can be shadowed")
        }
        let shadow = Self.shadowName(name)
        try connection.execute(try Self.renamedCreateSQL(createSQL, table: name, to: shadow))
        try connection.run(
            "INSERT INTO main.\(Self.registryTable)(name, shadow, create_sql, schema_rowid) VALUES (?, ?, ?, ?)",
            [.text(name), .text(shadow), .text(createSQL), .integer(order)])
        let objects = try connection.query("""
            SELECT type, name, coalesce(sql, ''), rowid FROM main.sqlite_schema
            WHERE type IN ('index', 'trigger') AND tbl_name = ? ORDER BY rowid
            """, [.text(name)])
        for (number, object) in objects.enumerated() {
            let type = object[0].description, objectName = object[1].description, sql = object[2].description
            var shadowName: SQLiteValue = .null
            // Automatic indexes (UNIQUE, PRIMARY KEY) come with the shadow's CREATE TABLE.
            if type == "index" && !sql.isEmpty {
                let renamed = "_molam_shadow_i\(index)_\(number)"
                try createShadowIndex(sql, name: objectName, as: renamed, on: shadow, table: name)
                shadowName = .text(renamed)
            }
            try connection.run("""
                INSERT INTO main.\(Self.registryTable)_objects(table_name, type, name, shadow_name, sql, schema_rowid)
                VALUES (?, ?, ?, ?, ?, ?)
                """, [.text(name), .text(type), .text(objectName), shadowName, .text(sql), object[3]])
        }
        return ShadowedTable(name: name, shadow: shadow)
    }

    /// The table's CREATE statement under another name, written by SQLite itself: the statement is run
    /// in a private in-memory database and renamed there.
    static func renamedCreateSQL(_ createSQL: String, table: String, to shadow: String) throws -> String {
        let scratch = try SQLiteConnection(path: ":memory:", mode: .readWriteCreate)
        try scratch.execute("PRAGMA legacy_alter_table = ON")
        try scratch.execute(createSQL)
        try scratch.execute(
            "ALTER TABLE \(SQLiteConnection.quoteIdentifier(table)) RENAME TO \(SQLiteConnection.quoteIdentifier(shadow))")
        guard let sql = try scratch.scalar(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", [.text(shadow)])?.stringValue
        else {
            throw PluginDatabaseError.invalidTableName("\(table) (its CREATE statement cannot be renamed)")
        }
        return sql
    }

    /// Builds the shadow's copy of an index under `renamed`, from the index's own SQL with only its
    /// name and table changed, then has SQLite confirm that the copy indexes the same columns the
    /// same way, on the shadow: what the statement says is read by SQLite, never trusted.
    private func createShadowIndex(
        _ sql: String, name: String, as renamed: String, on shadow: String, table: String
    ) throws {
        guard let copySQL = Self.shadowIndexSQL(sql, name: renamed, table: shadow) else {
            throw PluginDatabaseError.shadowUnsupported(table: table, reason: "its index \(name) cannot be copied")
        }
        try connection.execute(copySQL)
        let columns = { (index: String) throws -> [String] in
            try self.connection.query(
                "SELECT seqno, cid, name, desc, coll, key FROM pragma_index_xinfo(?)", [.text(index)]
            ).map { $0.values.map(\.description).joined(separator: "|") }
        }
        let flags = { (index: String, of: String) throws -> String? in
            try self.connection.query(
                "SELECT \"unique\", partial FROM pragma_index_list(?) WHERE name = ?", [.text(of), .text(index)]
            ).first.map { $0.values.map(\.description).joined(separator: "|") }
        }
        let owner = try connection.scalar("SELECT tbl_name FROM main.sqlite_schema WHERE name = ?", [.text(renamed)])
        guard owner?.stringValue == shadow, try columns(renamed) == columns(name),
              try flags(renamed, shadow) == flags(name, table) else {
            throw PluginDatabaseError.shadowUnsupported(table: table, reason: "the copy of its index \(name) differs from it")
        }
    }

    /// `CREATE [UNIQUE] INDEX <name> ON <table> …` with both names replaced; nil when the statement
    /// does not read that way. SQLite stores it normalised: no IF NOT EXISTS, no schema prefix.
    static func shadowIndexSQL(_ sql: String, name: String, table: String) -> String? {
        var scanner = IdentifierScanner(sql)
        guard scanner.keyword("CREATE") else { return nil }
        _ = scanner.keyword("UNIQUE")
        guard scanner.keyword("INDEX"), let nameRange = scanner.identifier(), scanner.keyword("ON"),
              let tableRange = scanner.identifier() else { return nil }
        return String(sql[..<nameRange.lowerBound]) + SQLiteConnection.quoteIdentifier(name)
            + String(sql[nameRange.upperBound..<tableRange.lowerBound]) + SQLiteConnection.quoteIdentifier(table)
            + String(sql[tableRange.upperBound...])
    }
}

/// Reads the head of a CREATE statement: keywords and identifiers (bare, or quoted with "", [], ``
/// or ''), nothing more. Only used where SQLite checks the result.
struct IdentifierScanner {
    let text: String
    var position: String.Index

    init(_ text: String) {
        self.text = text
        position = text.startIndex
    }

    mutating func skipSpace() {
        while position < text.endIndex, text[position].isWhitespace { position = text.index(after: position) }
    }

    mutating func keyword(_ word: String) -> Bool {
        skipSpace()
        guard let range = bareRange(), text[range].uppercased() == word else { return false }
        position = range.upperBound
        return true
    }

    mutating func identifier() -> Range<String.Index>? {
        skipSpace()
        guard position < text.endIndex else { return nil }
        let open = text[position]
        guard let close: Character = ["\"": "\"", "`": "`", "'": "'", "[": "]"][open] else {
            guard let range = bareRange() else { return nil }
            position = range.upperBound
            return range
        }
        var index = text.index(after: position)
        while index < text.endIndex {
            let next = text.index(after: index)
            if text[index] == close {
                // A doubled quote stands for itself, except in [brackets].
                if close != "]", next < text.endIndex, text[next] == close {
                    index = text.index(after: next)
                    continue
                }
                let range = position..<next
                position = next
                return range
            }
            index = next
        }
        return nil
    }

    private func bareRange() -> Range<String.Index>? {
        var end = position
        while end < text.endIndex, text[end].isLetter || text[end].isNumber || text[end] == "_" || text[end] == "$" {
            end = text.index(after: end)
        }
        return end > position ? position..<end : nil
    }
}


struct ShadowedTable {
    var name: String
    var shadow: String
}

/// What `prepareShadows` made.
public struct ShadowSummary: Sendable, Equatable {
    public var tables: [String]
    public var rows: Int
}
