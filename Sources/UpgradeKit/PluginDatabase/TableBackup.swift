import MolamSQLite

/// What a table backup holds: rows per backed-up table, the tables that did not exist (and so
/// are dropped by a restore), and the backup file's size.
public struct TableBackupSummary: Sendable, Equatable {
    public var tables: [String: Int]
    public var missing: [String]
    public var bytes: Int64

    public init(tables: [String: Int], missing: [String], bytes: Int64) {
        self.tables = tables
        self.missing = missing
        self.bytes = bytes
    }
}

public struct TableRestoreSummary: Sendable, Equatable {
    public var restored: [String]
    public var dropped: [String]

    public init(restored: [String], dropped: [String]) {
        self.restored = restored
        self.dropped = dropped
    }
}

/// Layout of a table backup file: the owned tables under their own names plus two metadata
/// tables. `application_id` marks the file as ours so any other SQLite file is refused.
enum TableBackupFormat {
    static let applicationID = 0x4D4F_4C4D  // "MOLM"
    static let version = 1
    static let schema = """
        CREATE TABLE _molam_backup(
            table_name TEXT PRIMARY KEY,
            position INTEGER NOT NULL,
            existed INTEGER NOT NULL,
            create_sql TEXT,
            schema_order INTEGER,
            row_count INTEGER NOT NULL,
            has_rowid INTEGER NOT NULL,
            sequence INTEGER
        );
        CREATE TABLE _molam_backup_objects(
            table_name TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT NOT NULL,
            sql TEXT NOT NULL,
            schema_order INTEGER NOT NULL
        );
        """

    struct Table {
        var name: String
        var existed: Bool
        var createSQL: String
        var rowCount: Int
        var hasRowID: Bool
        var sequence: Int64?
        /// The table's rowid in the site's sqlite_schema when it was backed up.
        var schemaOrder: Int64?
    }

    struct Object: Equatable {
        var type: String
        var name: String
        var sql: String

        init(row: SQLiteRow) {
            type = row[0].description
            name = row[1].description
            sql = row[2].description
        }
    }

    static func tables(in connection: SQLiteConnection, schema: String) throws(SQLiteError) -> [Table] {
        try connection.query("""
            SELECT table_name, existed, create_sql, row_count, has_rowid, sequence, schema_order
            FROM \(SQLiteConnection.quoteIdentifier(schema))._molam_backup ORDER BY position
            """).map { row in
            Table(
                name: row[0].stringValue ?? "", existed: row[1].intValue == 1,
                createSQL: row[2].stringValue ?? "", rowCount: Int(row[3].intValue ?? -1),
                hasRowID: row[4].intValue == 1, sequence: row[5].intValue, schemaOrder: row[6].intValue
            )
        }
    }

    /// The sqlite_schema rowids the table's indexes and triggers had, by name.
    static func objectOrders(
        in connection: SQLiteConnection, schema: String, table: String
    ) throws(SQLiteError) -> [(type: String, name: String, order: Int64)] {
        try connection.query("""
            SELECT type, name, schema_order FROM \(SQLiteConnection.quoteIdentifier(schema))._molam_backup_objects
            WHERE table_name = ? ORDER BY schema_order
            """, [.text(table)]).map {
                ($0[0].description == "autoindex" ? "index" : $0[0].description, $0[1].description,
                 $0[2].intValue ?? 0)
            }
    }

    static func objects(
        in connection: SQLiteConnection, schema: String, table: String
    ) throws(SQLiteError) -> [Object] {
        try connection.query("""
            SELECT type, name, sql FROM \(SQLiteConnection.quoteIdentifier(schema))._molam_backup_objects
            WHERE table_name = ? AND type IN ('index', 'trigger') ORDER BY schema_order
            """, [.text(table)]).map(Object.init(row:))
    }
}

/// Column lists for copying a table's rows with their rowids.
enum TableColumns {
    /// Ordinary columns of `table` in `schema`; generated ones cannot be inserted into.
    static func insertable(
        _ connection: SQLiteConnection, schema: String, table: String
    ) throws(SQLiteError) -> [String] {
        let sql = "SELECT name, hidden FROM pragma_table_xinfo(?, ?)"
        return try connection.query(sql, [.text(table), .text(schema)])
            .filter { $0[1].intValue == 0 }
            .compactMap { $0[0].stringValue }
    }

    /// `rowid, "a", "b"`: the rowid under a name no column shadows, then the columns.
    static func selectList(columns: [String], hasRowID: Bool) -> String? {
        var list = columns.map(SQLiteConnection.quoteIdentifier)
        if hasRowID {
            let taken = Set(columns.map { $0.lowercased() })
            let alias = ["rowid", "_rowid_", "oid"].first { !taken.contains($0) }
            guard let alias else { return nil }
            list.insert(alias, at: 0)
        }
        return list.joined(separator: ", ")
    }

    /// `INSERT INTO to.t(rowid, …) SELECT rowid, … FROM from.t`, keeping rowids so a restored
    /// table dumps exactly as before.
    static func copyRows(
        _ connection: SQLiteConnection, table: String, hasRowID: Bool, from source: String, to target: String
    ) throws(SQLiteError) -> Int? {
        let columns = try insertable(connection, schema: source, table: table)
        guard let list = selectList(columns: columns, hasRowID: hasRowID) else { return nil }
        let quoted = SQLiteConnection.quoteIdentifier(table)
        try connection.run("""
            INSERT INTO \(SQLiteConnection.quoteIdentifier(target)).\(quoted)(\(list))
            SELECT \(list) FROM \(SQLiteConnection.quoteIdentifier(source)).\(quoted)
            """)
        return connection.changes
    }
}
