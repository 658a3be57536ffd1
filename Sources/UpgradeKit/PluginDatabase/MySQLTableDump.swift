import Foundation

/// The portable backup of a MySQL plugin's tables (DESIGN.md "Backups"): SQL text the `mysql` client
/// can load (`mysql DB < tables.sql`), framed so that the agent reads it back without parsing any
/// SQL. Every record is a comment line `-- molam <kind> <JSON> <length>` followed by exactly
/// `<length>` bytes of one statement and a newline:
///
/// ```
/// -- molam-upgrade MySQL table dump, format 1
/// -- molam table {"name":"wp_molam_orders","existed":true,"triggers":[…]} 812
/// CREATE TABLE `wp_molam_orders` (…);
/// -- molam rows {"count":500} 98765
/// INSERT INTO `wp_molam_orders` (`id`, …) VALUES (…),(…);
/// -- molam end {"tables":{"wp_molam_orders":500},"missing":[]} 0
/// ```
///
/// Values are escaped by MariaDB Connector/C (`mysql_real_escape_string`), binary ones written as
/// hex, so a statement never holds a raw newline and the file stays valid UTF-8.
enum MySQLTableDump {
    static let magic = "-- molam-upgrade MySQL table dump, format 1"
    static let recordPrefix = "-- molam "
    /// An INSERT statement is cut after this many bytes of values.
    static let statementBytes = 1 << 20

    struct TableHeader: Codable, Equatable {
        var name: String
        var existed: Bool
        /// The table's own triggers (`SHOW CREATE TRIGGER`), the agent's capture triggers left out.
        var triggers: [String] = []
        /// The insertable columns, in the order of the INSERT statements.
        var columns: [String] = []
    }
    struct RowsHeader: Codable, Equatable { var count: Int }
    struct End: Codable, Equatable {
        var tables: [String: Int]
        var missing: [String]
    }

    enum Record {
        case table(TableHeader, createSQL: String)
        case rows(RowsHeader, insertSQL: String)
        case end(End)
    }

    /// The statement prefix every INSERT of `table` starts with; a restore retargets it.
    static func insertPrefix(_ table: String, columns: [String]) -> String {
        "INSERT INTO \(MySQLPluginDatabase.quote(table)) ("
            + columns.map(MySQLPluginDatabase.quote).joined(separator: ", ") + ") VALUES "
    }

    /// Writes records to a file, buffered, then synced.
    final class Writer {
        private let handle: FileHandle
        private let path: String
        private var buffer = Data()

        init(path: String) throws(SystemError) {
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw SystemError(call: "open", path: path, errno: errno == 0 ? EIO : errno)
            }
            self.handle = handle
            self.path = path
            buffer.append(contentsOf: Array((MySQLTableDump.magic + "\nSET NAMES utf8mb4;\n").utf8))
        }

        func table(_ header: TableHeader, createSQL: String) throws(SystemError) {
            try record("table", header, payload: header.existed ? createSQL : "")
        }

        func rows(_ count: Int, insertSQL: String) throws(SystemError) {
            try record("rows", RowsHeader(count: count), payload: insertSQL)
        }

        func end(_ end: End) throws(SystemError) {
            try record("end", end, payload: "")
            try flush()
            do {
                try handle.synchronize()
                try handle.close()
            } catch {
                throw SystemError(call: "fsync", path: path, errno: EIO)
            }
        }

        private func record(_ kind: String, _ value: some Encodable, payload: String) throws(SystemError) {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let json = (try? encoder.encode(value)) ?? Data("{}".utf8)
            let body = payload.isEmpty ? Data() : Data((payload + ";").utf8)
            buffer.append(contentsOf: Array("\(MySQLTableDump.recordPrefix)\(kind) ".utf8))
            buffer.append(json)
            buffer.append(contentsOf: Array(" \(body.count)\n".utf8))
            buffer.append(body)
            if !body.isEmpty { buffer.append(0x0A) }
            if buffer.count >= 1 << 20 { try flush() }
        }

        private func flush() throws(SystemError) {
            do {
                try handle.write(contentsOf: buffer)
            } catch {
                throw SystemError(call: "write", path: path, errno: ENOSPC)
            }
            buffer.removeAll(keepingCapacity: true)
        }
    }

    /// Reads the records back, a bounded buffer at a time.
    final class Reader {
        private let handle: FileHandle
        let path: String
        private var buffer: [UInt8] = []
        private var position = 0
        private var atEnd = false

        init(path: String) throws(PluginDatabaseError) {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw .invalidBackup(path: path, reason: "it cannot be opened")
            }
            self.handle = handle
            self.path = path
            guard try line() == MySQLTableDump.magic else {
                throw .invalidBackup(path: path, reason: "it is not a molam-upgrade MySQL table dump")
            }
        }

        deinit { try? handle.close() }

        /// The next record, nil after the end record's successor (there is none: a file goes on
        /// after `end` only if it was tampered with).
        func next() throws(PluginDatabaseError) -> Record? {
            while let line = try line() {
                guard line.hasPrefix(MySQLTableDump.recordPrefix) else { continue }
                let fields = line.dropFirst(MySQLTableDump.recordPrefix.count)
                guard let space = fields.firstIndex(of: " "), let last = fields.lastIndex(of: " "), space < last,
                      let length = Int(fields[fields.index(after: last)...]), length >= 0, length < 1 << 30
                else { throw invalid("a record header is malformed") }
                let kind = String(fields[..<space])
                let json = Data(fields[fields.index(after: space)..<last].utf8)
                let payload = try bytes(length)
                if length > 0, try bytes(1) != [0x0A] { throw invalid("a statement is not followed by a newline") }
                var sql = String(decoding: payload, as: UTF8.self)
                if sql.hasSuffix(";") { sql.removeLast() }
                let decoder = JSONDecoder()
                do {
                    switch kind {
                    case "table": return .table(try decoder.decode(TableHeader.self, from: json), createSQL: sql)
                    case "rows": return .rows(try decoder.decode(RowsHeader.self, from: json), insertSQL: sql)
                    case "end": return .end(try decoder.decode(End.self, from: json))
                    default: throw invalid("it holds a record of unknown kind '\(kind.prefix(20))'")
                    }
                } catch let error as PluginDatabaseError {
                    throw error
                } catch {
                    throw invalid("a \(kind) record's header is not valid JSON")
                }
            }
            return nil
        }

        func invalid(_ reason: String) -> PluginDatabaseError { .invalidBackup(path: path, reason: reason) }

        private func fill() throws(PluginDatabaseError) -> Bool {
            guard !atEnd else { return false }
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: 1 << 20)
            } catch {
                throw invalid("it cannot be read")
            }
            guard let chunk, !chunk.isEmpty else {
                atEnd = true
                return false
            }
            if position > 0 {
                buffer.removeFirst(position)
                position = 0
            }
            buffer.append(contentsOf: chunk)
            return true
        }

        private func line() throws(PluginDatabaseError) -> String? {
            while true {
                if let newline = buffer[position...].firstIndex(of: 0x0A) {
                    let text = String(decoding: buffer[position..<newline], as: UTF8.self)
                    position = newline + 1
                    return text
                }
                if buffer.count - position > 1 << 20 { throw invalid("a line is longer than 1 MiB") }
                guard try fill() else {
                    guard position < buffer.count else { return nil }
                    throw invalid("it ends in the middle of a line")
                }
            }
        }

        private func bytes(_ count: Int) throws(PluginDatabaseError) -> [UInt8] {
            while buffer.count - position < count {
                guard try fill() else { throw invalid("it ends in the middle of a statement") }
            }
            defer { position += count }
            return Array(buffer[position..<position + count])
        }
    }
}
