import Foundation
import MolamMySQL

/// DESIGN.md's "Rows" on MySQL, as pt-online-schema-change and gh-ost do it: before the window, each
/// owned table gets a shadow copy (`_molam_shadow_<table>`, `CREATE TABLE … LIKE`, rows copied in
/// chunks by primary key that lock no row of the live table) and triggers
/// (`_molam_capture_<i|u|d>_<table>`) that record the key of every row live traffic writes into
/// `_molam_changes_<table>`. A rollback merges those rows into the shadows and swaps them in with one
/// `RENAME TABLE` (`MySQLPluginDatabase+ShadowRestore.swift`).
///
/// The capture triggers skip the agent's own session while it migrates (`@molam_capture_paused`):
/// a migration's writes are the release's, and every other session keeps being recorded.
extension MySQLPluginDatabase {
    static let registryTable = "_molam_shadow_registry"
    static let chunkRows = 5_000

    static func shadowName(_ table: String) -> String { "_molam_shadow_" + table }
    static func changesName(_ table: String) -> String { "_molam_changes_" + table }
    static func retiredName(_ table: String) -> String { "_molam_retired_" + table }
    static func captureName(_ event: Character, _ table: String) -> String { "_molam_capture_\(event)_" + table }

    public func prepareShadows(_ tables: [String]) throws(PluginDatabaseError) -> ShadowSummary {
        let names = try Self.validatedTableNames(tables)
        try discardShadows()
        let context = "preparing shadow tables in \(mysqlLocation)"
        do {
            try connection.execute("""
                CREATE TABLE \(Self.quote(Self.registryTable))(
                    name VARCHAR(64) NOT NULL PRIMARY KEY,
                    shadow VARCHAR(64) NOT NULL,
                    key_columns TEXT NOT NULL,
                    triggers LONGTEXT NOT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
                """)
            var shadowed: [MySQLTableInfo] = []
            for name in names {
                guard let info = try MySQLTableInfo.read(connection, table: name) else { continue }
                try checkShadowable(info)
                try connection.execute("CREATE TABLE \(Self.quote(Self.shadowName(name))) LIKE \(Self.quote(name))")
                try connection.execute("""
                    INSERT INTO \(Self.quote(Self.registryTable))(name, shadow, key_columns, triggers) VALUES (?, ?, ?, ?)
                    """, [.text(name), .text(Self.shadowName(name)), .text(Self.jsonText(info.key)),
                          .text(Self.jsonText(try ownTriggers(of: name)))])
                // Recording starts before the copy: a row changed while it runs is merged later.
                try startCapture(info)
                shadowed.append(info)
            }
            var rows = 0
            for info in shadowed { rows += try copyInChunks(info) }
            return ShadowSummary(tables: shadowed.map(\.name), rows: rows)
        } catch {
            try? discardShadows()
            throw Self.unexpected(error, context: context)
        }
    }

    /// A table the rename restore can handle: a primary key to merge rows by, names that fit, and no
    /// foreign key (a renamed table takes the references to it along).
    private func checkShadowable(_ info: MySQLTableInfo) throws {
        guard !info.key.isEmpty else {
            throw PluginDatabaseError.shadowUnsupported(table: info.name, reason: "it has no primary key")
        }
        guard Self.captureName("i", info.name).utf8.count <= 64,
              PluginDatabases.quarantineTable(for: info.name).utf8.count <= 64 else {
            throw PluginDatabaseError.shadowUnsupported(
                table: info.name, reason: "its name is too long for the agent's tables beside it (64 characters)")
        }
        let references = try connection.query("""
            SELECT constraint_name FROM information_schema.referential_constraints
            WHERE constraint_schema = DATABASE() AND (table_name = ? OR referenced_table_name = ?) LIMIT 1
            """, [.text(info.name), .text(info.name)])
        if let reference = references.first?[0].stringValue {
            throw PluginDatabaseError.shadowUnsupported(
                table: info.name, reason: "foreign key \(reference) would follow a renamed table")
        }
    }

    public func hasShadows() throws(PluginDatabaseError) -> Bool {
        try sql("reading \(mysqlLocation)") { () throws(MySQLError) in try tableExists(Self.registryTable) }
    }

    /// Removes every object of the agent's change capture, triggers first: a capture trigger must never
    /// outlive the table it writes to, or the shop's own writes would fail.
    public func discardShadows() throws(PluginDatabaseError) {
        try sql("removing the shadow tables of \(mysqlLocation)") { () throws(MySQLError) in
            try dropCaptureTriggers(on: nil)
            for table in try baseTables() where table.hasPrefix("_molam_shadow_") || table.hasPrefix("_molam_changes_")
                || table.hasPrefix("_molam_retired_") || table.hasPrefix("_molam_restore_") {
                try connection.execute("DROP TABLE IF EXISTS \(Self.quote(table))")
            }
        }
    }

    func dropCaptureTriggers(on table: String?) throws(MySQLError) {
        var query = """
            SELECT trigger_name FROM information_schema.triggers
            WHERE trigger_schema = DATABASE() AND trigger_name LIKE '\\_molam\\_capture\\_%'
            """
        var bindings: [MySQLValue] = []
        if let table {
            query += " AND event_object_table = ?"
            bindings.append(.text(table))
        }
        for row in try connection.query(query, bindings) {
            if let name = row[0].stringValue { try connection.execute("DROP TRIGGER IF EXISTS \(Self.quote(name))") }
        }
    }

    /// The change log of one table (its key columns, typed as in the table) and the three triggers
    /// filling it, unless the agent's own session is migrating.
    func startCapture(_ info: MySQLTableInfo) throws(MySQLError) {
        let changes = Self.quote(Self.changesName(info.name))
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS \(changes)(
                molam_seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, KEY molam_key(\(info.quotedKey))
            ) ENGINE=InnoDB SELECT \(info.quotedKey) FROM \(Self.quote(info.name)) LIMIT 0
            """)
        let existing = Set(try connection.query("""
            SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE() AND event_object_table = ?
            """, [.text(info.name)]).compactMap { $0[0].stringValue })
        let columns = "(\(info.quotedKey))"
        func values(_ row: String) -> String {
            "(" + info.key.map { "\(row).\(Self.quote($0))" }.joined(separator: ", ") + ")"
        }
        let events: [(Character, String, String)] = [
            ("i", "INSERT", values("NEW")), ("u", "UPDATE", values("OLD") + ", " + values("NEW")),
            ("d", "DELETE", values("OLD")),
        ]
        for (letter, event, rows) in events where !existing.contains(Self.captureName(letter, info.name)) {
            try connection.execute("""
                CREATE TRIGGER \(Self.quote(Self.captureName(letter, info.name))) AFTER \(event) ON \(Self.quote(info.name))
                FOR EACH ROW BEGIN IF @molam_capture_paused IS NULL THEN
                INSERT INTO \(changes)\(columns) VALUES \(rows); END IF; END
                """)
        }
    }

    /// After migrations, while shadows exist: the capture on every table the migrations created (rows
    /// live traffic writes there are quarantined, never dropped, if the release is rolled back) and
    /// on a shadowed table a migration recreated. `before`: the tables before the migrations.
    func captureNewTables(before: Set<String>) throws(MySQLError) {
        guard try tableExists(Self.registryTable) else { return }
        let shadowed = Set(try connection.query("SELECT name FROM \(Self.quote(Self.registryTable))")
            .compactMap { $0[0].stringValue })
        for table in try baseTables() where !table.hasPrefix("_molam_") && table != Self.migrationsTable
            && (shadowed.contains(table) || !before.contains(table)) {
            guard let info = try MySQLTableInfo.read(connection, table: table), !info.key.isEmpty,
                  Self.captureName("i", table).utf8.count <= 64
            else { continue }
            try startCapture(info)
        }
    }

    /// Copies a table into its shadow a chunk at a time, by primary key, in READ COMMITTED: the reads
    /// are consistent reads, so no row of the live table is locked. Rows changed meanwhile are in the
    /// change log already.
    private func copyInChunks(_ info: MySQLTableInfo) throws -> Int {
        try connection.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        defer { _ = try? connection.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ") }
        let list = info.columnNames.map(Self.quote).joined(separator: ", ")
        let shadow = Self.quote(Self.shadowName(info.name))
        let order = info.key.map(Self.quote).joined(separator: ", ")
        let descending = info.key.map { Self.quote($0) + " DESC" }.joined(separator: ", ")
        let after = info.key.count == 1 ? "\(order) > ?" : "(\(order)) > (\(info.key.map { _ in "?" }.joined(separator: ", ")))"
        var last: [MySQLValue]?
        var copied = 0
        while true {
            let condition = last == nil ? "" : "WHERE \(after) "
            let count = try connection.execute("""
                INSERT INTO \(shadow)(\(list)) SELECT \(list) FROM \(Self.quote(info.name))
                \(condition)ORDER BY \(order) LIMIT \(Self.chunkRows)
                """, last ?? [])
            copied += Int(count)
            guard count == UInt64(Self.chunkRows),
                  let highest = try connection.query("SELECT \(order) FROM \(shadow) ORDER BY \(descending) LIMIT 1").first
            else { return copied }
            last = highest.values
        }
    }

    static func jsonText(_ strings: [String]) -> String {
        (try? JSONEncoder().encode(strings)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    static func jsonStrings(_ text: String) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
    }
}
