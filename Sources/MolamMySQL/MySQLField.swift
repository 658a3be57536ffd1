internal import CMariaDB

/// How one result column's values become `MySQLValue`s, decided once per result from its
/// MYSQL_FIELD, the same way for the text and the binary protocol.
enum FieldKind {
    case signedInteger, unsignedInteger, float, double
    /// BIT(n): big-endian bytes on the wire, read as an unsigned integer.
    case bit
    /// Strings and blobs of the binary character set.
    case bytes
    /// Text, DECIMAL (exact, so not a Double), dates and times, JSON, ENUM, SET.
    case text
    case null

    /// `charsetnr` of the binary pseudo character set (`SHOW COLLATION LIKE 'binary'`).
    static let binaryCharset: UInt32 = 63

    init(_ field: MYSQL_FIELD) {
        let unsigned = field.flags & UInt32(UNSIGNED_FLAG) != 0
        switch field.type {
        case MYSQL_TYPE_TINY, MYSQL_TYPE_SHORT, MYSQL_TYPE_INT24, MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG,
             MYSQL_TYPE_YEAR:
            self = unsigned ? .unsignedInteger : .signedInteger
        case MYSQL_TYPE_FLOAT: self = .float
        case MYSQL_TYPE_DOUBLE: self = .double
        case MYSQL_TYPE_BIT: self = .bit
        case MYSQL_TYPE_NULL: self = .null
        default:
            let binary = Self.isStringType(field.type) && field.charsetnr == Self.binaryCharset
            self = binary ? .bytes : .text
        }
    }

    static func isStringType(_ type: enum_field_types) -> Bool {
        switch type {
        case MYSQL_TYPE_VARCHAR, MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_STRING, MYSQL_TYPE_TINY_BLOB,
             MYSQL_TYPE_MEDIUM_BLOB, MYSQL_TYPE_LONG_BLOB, MYSQL_TYPE_BLOB, MYSQL_TYPE_GEOMETRY:
            return true
        default:
            return false
        }
    }

    /// A value from its bytes as the text protocol sends them (and as the binary protocol sends
    /// the variable-length kinds). Text the kind's parser rejects is kept as text, not lost.
    func value(_ bytes: UnsafeRawBufferPointer) -> MySQLValue {
        switch self {
        case .bytes: return .bytes(Array(bytes))
        case .bit: return .uint(bytes.reduce(0) { $0 << 8 | UInt64($1) })
        case .null: return .null
        default: break
        }
        let text = String(decoding: bytes, as: UTF8.self)
        switch self {
        case .signedInteger: return Int64(text).map { .int($0) } ?? .text(text)
        case .unsignedInteger: return UInt64(text).map { .uint($0) } ?? .text(text)
        case .float, .double: return Double(text).map { .double($0) } ?? .text(text)
        default: return .text(text)
        }
    }
}

extension MySQLColumn {
    init(_ field: MYSQL_FIELD) {
        let name: String
        if let pointer = field.name {
            let bytes = UnsafeRawBufferPointer(start: pointer, count: Int(field.name_length))
            name = String(decoding: bytes, as: UTF8.self)
        } else {
            name = ""
        }
        let numeric: Bool
        switch field.type {
        case MYSQL_TYPE_TINY, MYSQL_TYPE_SHORT, MYSQL_TYPE_INT24, MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG,
             MYSQL_TYPE_YEAR, MYSQL_TYPE_FLOAT, MYSQL_TYPE_DOUBLE, MYSQL_TYPE_DECIMAL, MYSQL_TYPE_NEWDECIMAL:
            numeric = true
        default:
            numeric = false
        }
        self.init(
            name: name, isNumeric: numeric,
            isBinary: FieldKind.isStringType(field.type) && field.charsetnr == FieldKind.binaryCharset)
    }
}

/// The columns of one result and how to read each.
struct ResultShape {
    let columns: [MySQLColumn]
    let kinds: [FieldKind]

    init(_ result: UnsafeMutablePointer<MYSQL_RES>) {
        let count = Int(mysql_num_fields(result))
        guard count > 0, let fields = mysql_fetch_fields(result) else {
            (columns, kinds) = ([], [])
            return
        }
        let buffer = UnsafeBufferPointer(start: fields, count: count)
        columns = buffer.map(MySQLColumn.init)
        kinds = buffer.map(FieldKind.init)
    }
}
