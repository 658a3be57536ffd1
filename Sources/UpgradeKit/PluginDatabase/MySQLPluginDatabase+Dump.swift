import Foundation
import MolamMySQL

/// The portable table backup on MySQL (`MySQLTableDump`): written from one consistent snapshot,
/// checked, and loaded back into tables of the agent's before a single `RENAME TABLE` puts them in
/// place. Only a fallback and the operator's `--restore-tables` use it: a rollback renames the shadow
/// tables instead, without copying.
extension MySQLPluginDatabase {
    static func restoreName(_ table: String) -> String { "_molam_restore_" + table }

    public func backupTables(_ tables: [String], to file: String) throws(PluginDatabaseError) -> TableBackupSummary {
        let names = try Self.validatedTableNames(tables)
        do {
            try DatabaseFileIO.createExclusive(file)
        } catch {
            if error.errno == EEXIST { throw .backupExists(path: file) }
            throw .io(error)
        }
        var complete = false
        defer { if !complete { DatabaseFileIO.removeIfPresent(file) } }
        var counts: [String: Int] = [:]
        var missing: [String] = []
        let context = "backing up the plugin's tables of \(mysqlLocation) to \(file)"
        do {
            let writer = try MySQLTableDump.Writer(path: file)
            // One snapshot for every table: InnoDB reads it without locking a row.
            try connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            try connection.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            defer { _ = try? connection.execute("ROLLBACK") }
            for name in names {
                guard let info = try MySQLTableInfo.read(connection, table: name) else {
                    missing.append(name)
                    try writer.table(.init(name: name, existed: false), createSQL: "")
                    continue
                }
                let create = try connection.query("SHOW CREATE TABLE \(Self.quote(name))").first?[1].stringValue ?? ""
                try writer.table(
                    .init(name: name, existed: true, triggers: try ownTriggers(of: name), columns: info.columnNames),
                    createSQL: create)
                counts[name] = try dumpRows(info, to: writer)
            }
            try writer.end(.init(tables: counts, missing: missing))
            try DatabaseFileIO.syncDirectory(of: file)
            let bytes = try DatabaseFileIO.size(file)
            complete = true
            return TableBackupSummary(tables: counts, missing: missing, bytes: bytes)
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    /// The CREATE TRIGGER statements of the table's own triggers, the agent's left out.
    func ownTriggers(of table: String) throws(MySQLError) -> [String] {
        var statements: [String] = []
        for row in try connection.query("""
            SELECT trigger_name FROM information_schema.triggers
            WHERE event_object_schema = DATABASE() AND event_object_table = ?
              AND trigger_name NOT LIKE '\\_molam\\_%' ORDER BY action_timing, event_manipulation, action_order
            """, [.text(table)]) {
            guard let name = row[0].stringValue else { continue }
            if let statement = try connection.query("SHOW CREATE TRIGGER \(Self.quote(name))").first?[2].stringValue {
                statements.append(statement)
            }
        }
        return statements
    }

    /// Every row of the table as INSERT statements of about a MiB, streamed: memory stays bounded.
    private func dumpRows(_ info: MySQLTableInfo, to writer: MySQLTableDump.Writer) throws -> Int {
        let prefix = MySQLTableDump.insertPrefix(info.name, columns: info.columnNames)
        let list = info.columnNames.map(Self.quote).joined(separator: ", ")
        var statement = prefix, inStatement = 0, total = 0
        try connection.forEachRow("SELECT \(list) FROM \(Self.quote(info.name))") { row in
            if inStatement > 0 { statement += "," }
            statement += "(" + zip(row.values, info.columns).map { literal($0, binary: $1.isBinary) }
                .joined(separator: ",") + ")"
            inStatement += 1
            total += 1
            if statement.utf8.count >= MySQLTableDump.statementBytes {
                try writer.rows(inStatement, insertSQL: statement)
                statement = prefix
                inStatement = 0
            }
        }
        if inStatement > 0 { try writer.rows(inStatement, insertSQL: statement) }
        return total
    }

    /// A value as an SQL literal: escaped by the client library, binary as a hex literal.
    func literal(_ value: MySQLValue, binary: Bool) -> String {
        switch value {
        case .null, .int, .uint, .bytes: return value.description
        case .double(let number): return number.isFinite ? value.description : "NULL"
        case .text(let text): return binary ? MySQLValue.bytes(Array(text.utf8)).description : connection.quote(text)
        }
    }

    public func verifyTableBackup(at file: String) throws(PluginDatabaseError) -> TableBackupSummary {
        let reader = try MySQLTableDump.Reader(path: file)
        var counts: [String: Int] = [:]
        var current: String?
        var seen = Set<String>()
        while let record = try reader.next() {
            switch record {
            case .table(let header, let create):
                guard seen.insert(header.name).inserted else { throw reader.invalid("table \(header.name) appears twice") }
                guard !header.existed || create.hasPrefix("CREATE TABLE \(Self.quote(header.name))") else {
                    throw reader.invalid("the CREATE statement of \(header.name) does not create it")
                }
                current = header.existed ? header.name : nil
                if header.existed { counts[header.name] = 0 }
            case .rows(let rows, let insert):
                guard let table = current, rows.count > 0 else { throw reader.invalid("rows outside a table") }
                counts[table, default: 0] += rows.count
                guard insert.hasPrefix("INSERT INTO \(Self.quote(table)) (") else {
                    throw reader.invalid("an INSERT statement of \(table) writes elsewhere")
                }
            case .end(let end):
                guard end.tables == counts else { throw reader.invalid("its row counts do not add up") }
                guard try reader.next() == nil else { throw reader.invalid("it goes on after its end") }
                return TableBackupSummary(
                    tables: counts, missing: end.missing, bytes: (try? DatabaseFileIO.size(file)) ?? 0)
            }
        }
        throw reader.invalid("it has no end record (cut short)")
    }

    /// Loads the tables of the dump that `wanted` accepts into `_molam_restore_<table>`, their headers
    /// by name (tables the backup recorded as absent included).
    func loadBackup(_ file: String, wanted: (String) -> Bool) throws -> [String: MySQLTableDump.TableHeader] {
        _ = try verifyTableBackup(at: file)
        let reader = try MySQLTableDump.Reader(path: file)
        var headers: [String: MySQLTableDump.TableHeader] = [:]
        var loading: MySQLTableDump.TableHeader?
        while let record = try reader.next() {
            switch record {
            case .table(let header, let create):
                headers[header.name] = header
                loading = nil
                guard header.existed, wanted(header.name) else { continue }
                let target = Self.quote(Self.restoreName(header.name))
                try connection.execute("DROP TABLE IF EXISTS \(target)")
                let original = "CREATE TABLE \(Self.quote(header.name))"
                try connection.execute("CREATE TABLE \(target)" + create.dropFirst(original.count))
                loading = header
            case .rows(_, let insert):
                guard let header = loading else { continue }
                let original = MySQLTableDump.insertPrefix(header.name, columns: header.columns)
                guard insert.hasPrefix(original) else { throw reader.invalid("an INSERT of \(header.name) is malformed") }
                try connection.execute(
                    MySQLTableDump.insertPrefix(Self.restoreName(header.name), columns: header.columns)
                        + insert.dropFirst(original.count))
            case .end:
                return headers
            }
        }
        return headers
    }

    /// Puts the backup's tables back with one `RENAME TABLE` (the live ones set aside, then dropped),
    /// drops those it recorded as absent and `alsoDrop`, never one `mayTouch` refuses. The rows are
    /// loaded first, beside the live tables, so the switch itself is one statement.
    public func restoreTables(
        from file: String, alsoDrop: [String], mayTouch: (String) -> Bool
    ) throws(PluginDatabaseError) -> TableRestoreSummary {
        let extra = try Self.validatedTableNames(alsoDrop).filter(mayTouch)
        let context = "restoring the plugin's tables of \(mysqlLocation) from \(file)"
        do {
            let headers = try loadBackup(file, wanted: mayTouch)
            var summary = TableRestoreSummary(restored: [], dropped: [])
            var renames: [String] = []
            var restored: [MySQLTableDump.TableHeader] = []
            for header in headers.values.sorted(by: { $0.name < $1.name }) where header.existed && mayTouch(header.name) {
                let retired = Self.retiredName(header.name)
                try connection.execute("DROP TABLE IF EXISTS \(Self.quote(retired))")
                if try tableExists(header.name) {
                    renames.append("\(Self.quote(header.name)) TO \(Self.quote(retired))")
                }
                renames.append("\(Self.quote(Self.restoreName(header.name))) TO \(Self.quote(header.name))")
                restored.append(header)
            }
            if !renames.isEmpty {
                try connection.execute("RENAME TABLE " + renames.joined(separator: ", "))
                try FaultInjection.hit("mid-restore")
            }
            for header in restored {
                try replaceTriggers(of: header.name, with: header.triggers)
                summary.restored.append(header.name)
            }
            let absent = headers.values.filter { !$0.existed }.map(\.name)
            for table in absent + extra where mayTouch(table) && headers[table]?.existed != true {
                if try tableExists(table) {
                    try connection.execute("DROP TABLE \(Self.quote(table))")
                    summary.dropped.append(table)
                }
            }
            try dropRetiredTables()
            return summary
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    /// The triggers the table was given back with: those riding on the table set aside (their names
    /// are the database's) dropped, then `statements` run.
    func replaceTriggers(of table: String, with statements: [String]) throws {
        // Triggers left on the table set aside go with it, after the window.
        guard !statements.isEmpty else { return }
        for row in try connection.query("""
            SELECT trigger_name FROM information_schema.triggers
            WHERE event_object_schema = DATABASE() AND event_object_table = ?
            """, [.text(Self.retiredName(table))]) {
            if let name = row[0].stringValue { try connection.execute("DROP TRIGGER IF EXISTS \(Self.quote(name))") }
        }
        for statement in statements {
            do {
                try connection.execute(statement)
            } catch {
                // 1359: it exists already (a restore run again after a crash).
                guard error.number == 1359 else { throw error }
            }
        }
    }

    public func quarantineRowsSince(
        backup file: String, tables: [String], keep: Bool
    ) throws(PluginDatabaseError) -> [String: Int] {
        let names = try Self.validatedTableNames(tables)
        let context = "keeping the rows written since \(file) in \(mysqlLocation)"
        do {
            let headers = try loadBackup(file, wanted: { names.contains($0) })
            defer {
                for name in names { _ = try? connection.execute("DROP TABLE IF EXISTS \(Self.quote(Self.restoreName(name)))") }
            }
            var kept: [String: Int] = [:]
            for name in names {
                guard let live = try MySQLTableInfo.read(connection, table: name) else { continue }
                var condition = "TRUE"
                if let header = headers[name], header.existed {
                    let common = live.columnNames.filter(header.columns.contains)
                    let match = common.map { "r.\(Self.quote($0)) <=> t.\(Self.quote($0))" }.joined(separator: " AND ")
                    condition = "NOT EXISTS (SELECT 1 FROM \(Self.quote(Self.restoreName(name))) r WHERE "
                        + (match.isEmpty ? "TRUE" : match) + ")"
                }
                let count = Int(try connection.query(
                    "SELECT count(*) FROM \(Self.quote(name)) t WHERE \(condition)").first?[0].intValue ?? 0)
                guard count > 0 else { continue }
                kept[name] = count
                if keep { try quarantine(live, from: name, where: condition, reason: "written since the backup restored") }
            }
            return kept
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }

    /// Keeps rows of `source` (the table `info` describes, or the one it was set aside as) as JSON in
    /// `_molam_quarantine_<table>`, with why. `condition` may call the source `t`.
    func quarantine(
        _ info: MySQLTableInfo, from source: String, where condition: String, _ parameters: [MySQLValue] = [],
        reason: String
    ) throws {
        let quarantine = Self.quote(PluginDatabases.quarantineTable(for: info.name))
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS \(quarantine)(
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                source_key LONGTEXT NOT NULL,
                `row` LONGTEXT NOT NULL,
                reason TEXT NOT NULL,
                quarantined_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
            """)
        let key = info.key.isEmpty ? "JSON_ARRAY()" : info.jsonKey(prefix: "t.")
        try connection.execute("""
            INSERT INTO \(quarantine)(source_key, `row`, reason)
            SELECT \(key), \(info.jsonObject(prefix: "t.")), ? FROM \(Self.quote(source)) t WHERE \(condition)
            """, [.text(reason)] + parameters)
    }
}
