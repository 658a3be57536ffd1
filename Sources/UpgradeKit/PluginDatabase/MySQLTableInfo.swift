import Foundation
import MolamMySQL

/// What the engine needs to know of one table, read from information_schema.
struct MySQLTableInfo {
    struct Column {
        var name: String
        /// Binary data (BINARY, VARBINARY, BLOB, BIT…): written as hex, kept in JSON as hex.
        var isBinary: Bool
    }
    var name: String
    /// Columns a row can be written to (generated ones left out), in table order.
    var columns: [Column]
    /// The primary key's columns, in key order; empty when there is none.
    var key: [String]

    var columnNames: [String] { columns.map(\.name) }

    /// Nil when the table does not exist.
    static func read(_ connection: MySQLConnection, table: String, schema: String? = nil) throws(MySQLError) -> MySQLTableInfo? {
        let schemaExpression = schema == nil ? "DATABASE()" : "?"
        let schemaBinding: [MySQLValue] = schema.map { [.text($0)] } ?? []
        let columns = try connection.query("""
            SELECT column_name, extra, data_type, character_set_name FROM information_schema.columns
            WHERE table_schema = \(schemaExpression) AND table_name = ? ORDER BY ordinal_position
            """, schemaBinding + [.text(table)])
        guard !columns.isEmpty else { return nil }
        let binaryTypes: Set<String> = ["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"]
        let insertable = columns.filter { row in
            let extra = (row[1].stringValue ?? "").uppercased()
            return !extra.contains("GENERATED") && !extra.contains("PERSISTENT") && !extra.contains("VIRTUAL")
        }.map { row in
            Column(
                name: row[0].stringValue ?? "",
                isBinary: binaryTypes.contains((row[2].stringValue ?? "").lowercased()))
        }
        let key = try connection.query("""
            SELECT column_name FROM information_schema.statistics
            WHERE table_schema = \(schemaExpression) AND table_name = ? AND index_name = 'PRIMARY'
            ORDER BY seq_in_index
            """, schemaBinding + [.text(table)]).compactMap { $0[0].stringValue }
        return MySQLTableInfo(name: table, columns: insertable, key: key)
    }

    /// `a`.`x` = `b`.`x` AND … over the key.
    func keyJoin(_ left: String, _ right: String) -> String {
        key.map { "\(left).\(MySQLPluginDatabase.quote($0)) = \(right).\(MySQLPluginDatabase.quote($0))" }
            .joined(separator: " AND ")
    }

    /// `x` = ? AND … over the key.
    var keyMatch: String {
        key.map { "\(MySQLPluginDatabase.quote($0)) = ?" }.joined(separator: " AND ")
    }

    var quotedKey: String { key.map(MySQLPluginDatabase.quote).joined(separator: ", ") }

    /// JSON_OBJECT('a', `a`, …) of a row, binary columns as hex: how quarantined rows are kept.
    func jsonObject(prefix: String = "") -> String {
        "JSON_OBJECT(" + columns.map { column in
            let value = prefix + MySQLPluginDatabase.quote(column.name)
            return "'\(column.name.replacing("\\", with: "\\\\").replacing("'", with: "''"))', "
                + (column.isBinary ? "HEX(\(value))" : value)
        }.joined(separator: ", ") + ")"
    }

    /// JSON_ARRAY of the key columns of a row.
    func jsonKey(prefix: String = "") -> String {
        "JSON_ARRAY(" + key.map { prefix + MySQLPluginDatabase.quote($0) }.joined(separator: ", ") + ")"
    }
}
