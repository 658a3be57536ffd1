/// One SQLite value, with the five storage classes SQLite itself knows.
public enum SQLiteValue: Sendable, Equatable, Hashable, CustomStringConvertible {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    /// The text, or the number rendered as text; nil for NULL and blobs.
    public var stringValue: String? {
        switch self {
        case .text(let text): return text
        case .integer(let value): return String(value)
        case .real(let value): return String(value)
        case .null, .blob: return nil
        }
    }

    /// The integer; reals with an integral value and integer-looking text convert too.
    public var intValue: Int64? {
        switch self {
        case .integer(let value): return value
        case .real(let value):
            guard value.rounded() == value, let exact = Int64(exactly: value) else { return nil }
            return exact
        case .text(let text): return Int64(text)
        case .null, .blob: return nil
        }
    }

    public var isNull: Bool { self == .null }

    /// What a person reading smoke-check output expects: `NULL`, `42`, `3.5`, the text itself,
    /// and blobs as SQL literals (`x'0aff'`).
    public var description: String {
        switch self {
        case .null: return "NULL"
        case .integer(let value): return String(value)
        case .real(let value): return String(value)
        case .text(let text): return text
        case .blob(let bytes):
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

extension SQLiteValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(nilLiteral: ()) { self = .null }
}

/// One result row: values in column order, addressable by index or by column name.
public struct SQLiteRow: Sendable, Equatable, Hashable {
    public let columns: [String]
    public let values: [SQLiteValue]

    public init(columns: [String], values: [SQLiteValue]) {
        self.columns = columns
        self.values = values
    }

    /// `.null` when out of range, like a missing column, so reading rows never traps on input.
    public subscript(_ index: Int) -> SQLiteValue {
        values.indices.contains(index) ? values[index] : .null
    }

    /// The first column with this name (SQLite compares names case-insensitively, so do we);
    /// `.null` when absent.
    public subscript(_ column: String) -> SQLiteValue {
        if let index = columns.firstIndex(of: column) { return values[index] }
        let lowered = column.lowercased()
        if let index = columns.firstIndex(where: { $0.lowercased() == lowered }) { return values[index] }
        return .null
    }
}
