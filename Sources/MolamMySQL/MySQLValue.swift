/// One value sent to or read from MySQL, typed from the column's field type: integers as `.int`
/// or `.uint` (UNSIGNED columns), FLOAT and DOUBLE as `.double`, DECIMAL as exact `.text`, strings
/// and blobs of the binary character set (BINARY, VARBINARY, BLOB) and BIT as `.bytes`/`.uint`,
/// everything else (text, dates, JSON) as `.text`.
public enum MySQLValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case text(String)
    case bytes([UInt8])

    /// The text, the number rendered as text, or bytes that are valid UTF-8; nil for NULL.
    public var stringValue: String? {
        switch self {
        case .null: return nil
        case .int(let value): return String(value)
        case .uint(let value): return String(value)
        case .double(let value): return String(value)
        case .text(let text): return text
        case .bytes(let bytes): return String(validating: bytes, as: UTF8.self)
        }
    }

    /// The integer when it fits an Int64; doubles with an integral value and integer-looking
    /// text (DECIMAL without a fraction) convert too.
    public var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .uint(let value): return Int64(exactly: value)
        case .double(let value):
            guard value.rounded() == value else { return nil }
            return Int64(exactly: value)
        case .text(let text): return Int64(text)
        case .null, .bytes: return nil
        }
    }

    public var isNull: Bool { self == .null }

    /// `NULL`, the number, the text itself, and bytes as a hex literal (`x'0aff'`).
    public var description: String {
        switch self {
        case .null: return "NULL"
        case .int(let value): return String(value)
        case .uint(let value): return String(value)
        case .double(let value): return String(value)
        case .text(let text): return text
        case .bytes(let bytes):
            let digits = Array("0123456789abcdef")
            var hex = ""
            hex.reserveCapacity(bytes.count * 2)
            for byte in bytes {
                hex.append(digits[Int(byte >> 4)])
                hex.append(digits[Int(byte & 0x0f)])
            }
            return "x'\(hex)'"
        }
    }
}

/// A result column as the server described it.
public struct MySQLColumn: Sendable, Equatable {
    /// The name or alias in the result (`AS x`), not the underlying column's.
    public let name: String
    /// An integer, FLOAT, DOUBLE, DECIMAL or YEAR column.
    public let isNumeric: Bool
    /// A string or blob type of the binary character set (charsetnr 63): BINARY, VARBINARY, BLOB.
    public let isBinary: Bool

    public init(name: String, isNumeric: Bool, isBinary: Bool) {
        self.name = name
        self.isNumeric = isNumeric
        self.isBinary = isBinary
    }
}

/// One result row: values in column order, addressable by index or by column name.
public struct MySQLRow: Sendable {
    public let columns: [MySQLColumn]
    public let values: [MySQLValue]

    public init(columns: [MySQLColumn], values: [MySQLValue]) {
        self.columns = columns
        self.values = values
    }

    /// `.null` when out of range, like a missing column, so reading rows never traps on input.
    public subscript(_ index: Int) -> MySQLValue {
        values.indices.contains(index) ? values[index] : .null
    }

    /// The first column with this name, compared without case as MySQL compares column names;
    /// nil when there is none.
    public subscript(_ name: String) -> MySQLValue? {
        let index = columns.firstIndex(where: { $0.name == name })
            ?? columns.firstIndex(where: { $0.name.lowercased() == name.lowercased() })
        guard let index, values.indices.contains(index) else { return nil }
        return values[index]
    }
}
