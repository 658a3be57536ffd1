internal import CMariaDB

/// One prepared statement (binary protocol), used once by its `MySQLConnection` on that
/// connection's thread and closed when released.
final class MySQLStatement {
    private let handle: UnsafeMutablePointer<MYSQL_STMT>
    let sql: String
    private(set) var insertID: UInt64 = 0

    init(_ mysql: UnsafeMutablePointer<MYSQL>, sql: String) throws(MySQLError) {
        guard let handle = mysql_stmt_init(mysql) else {
            throw MySQLConnection.error(mysql, statement: sql)
        }
        self.handle = handle
        self.sql = sql
        let status = withSQLText(sql) { text, length in mysql_stmt_prepare(handle, text, length) }
        guard status == 0 else { throw error() }
    }

    /// How many columns the statement's result has: 0 for one that returns no rows.
    var resultColumnCount: Int { Int(mysql_stmt_field_count(handle)) }

    deinit {
        // Closing also reads and drops any rows left unread.
        mysql_stmt_close(handle)
    }

    /// Binds `parameters`, executes, hands each row of the first result to `body` and drops any
    /// further results; returns the affected rows.
    @discardableResult
    func run(_ parameters: [MySQLValue], _ body: (MySQLRow) -> Void) throws(MySQLError) -> UInt64 {
        let expected = Int(mysql_stmt_param_count(handle))
        guard parameters.count == expected else {
            // libmariadb reads as many binds as there are placeholders: never hand it fewer.
            throw MySQLError.client(
                MySQLError.parameterCountNumber,
                "the statement has \(expected) placeholders but \(parameters.count) parameters were given",
                statement: sql)
        }
        let bound = ParameterBuffers(parameters)
        if expected > 0 {
            guard mysql_stmt_bind_param(handle, bound.binds) == 0 else { throw error() }
        }
        let executed = mysql_stmt_execute(handle)
        withExtendedLifetime(bound) {}
        guard executed == 0 else { throw error() }
        let returnsRows = mysql_stmt_field_count(handle) != 0
        let affected = mysql_stmt_affected_rows(handle)
        insertID = mysql_stmt_insert_id(handle)
        try fetchResult(body)
        // A CALL answers with its result sets and a final status.
        while mysql_stmt_more_results(handle) != 0 {
            let next = mysql_stmt_next_result(handle)
            if next < 0 { break }
            guard next == 0 else { throw error() }
            try fetchResult { _ in }
        }
        // For a statement that returns rows libmariadb reports (my_ulonglong)-1 before they are read.
        return returnsRows || affected == UInt64.max ? 0 : affected
    }

    private func fetchResult(_ body: (MySQLRow) -> Void) throws(MySQLError) {
        guard let metadata = mysql_stmt_result_metadata(handle) else {
            guard mysql_stmt_field_count(handle) == 0 else { throw error() }
            return
        }
        let shape = ResultShape(metadata)
        mysql_free_result(metadata)
        let buffers = ResultBuffers(shape.kinds)
        guard mysql_stmt_bind_result(handle, buffers.binds) == 0 else { throw error() }
        while true {
            let status = mysql_stmt_fetch(handle)
            if status == MYSQL_NO_DATA { break }
            // MYSQL_DATA_TRUNCATED: a value longer than its buffer, read in full below.
            guard status == 0 || status == MYSQL_DATA_TRUNCATED else { throw error() }
            var values: [MySQLValue] = []
            values.reserveCapacity(shape.kinds.count)
            for column in shape.kinds.indices {
                values.append(try buffers.value(column, of: handle, statement: self))
            }
            body(MySQLRow(columns: shape.columns, values: values))
        }
    }

    /// The error funnel for statements: mysql_stmt_errno, mysql_stmt_sqlstate, mysql_stmt_error.
    func error() -> MySQLError {
        MySQLError.reported(
            number: mysql_stmt_errno(handle), sqlState: mysql_stmt_sqlstate(handle),
            message: mysql_stmt_error(handle), statement: sql)
    }
}

/// The MYSQL_BIND array for a statement's parameters and the memory each points at, alive until
/// the statement has executed.
final class ParameterBuffers {
    let binds: UnsafeMutablePointer<MYSQL_BIND>
    private let lengths: UnsafeMutablePointer<UInt>
    private var allocations: [UnsafeMutableRawPointer] = []
    private let count: Int

    init(_ values: [MySQLValue]) {
        count = values.count
        // Never a zero-sized allocation, so the pointers are always valid.
        binds = .allocate(capacity: max(count, 1))
        binds.initialize(repeating: MYSQL_BIND(), count: max(count, 1))
        lengths = .allocate(capacity: max(count, 1))
        lengths.initialize(repeating: 0, count: max(count, 1))
        for (index, value) in values.enumerated() {
            bind(value, at: index)
        }
    }

    deinit {
        allocations.forEach { $0.deallocate() }
        binds.deinitialize(count: max(count, 1))
        binds.deallocate()
        lengths.deallocate()
    }

    private func bind(_ value: MySQLValue, at index: Int) {
        switch value {
        case .null:
            binds[index].buffer_type = MYSQL_TYPE_NULL
        case .int(let number):
            store(number, at: index, type: MYSQL_TYPE_LONGLONG)
        case .uint(let number):
            store(number, at: index, type: MYSQL_TYPE_LONGLONG)
            binds[index].is_unsigned = 1
        case .double(let number):
            store(number, at: index, type: MYSQL_TYPE_DOUBLE)
        case .text(let text):
            store(Array(text.utf8), at: index, type: MYSQL_TYPE_STRING)
        case .bytes(let bytes):
            store(bytes, at: index, type: MYSQL_TYPE_BLOB)
        }
    }

    private func store<T: BitwiseCopyable>(_ value: T, at index: Int, type: enum_field_types) {
        let memory = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
        memory.storeBytes(of: value, as: T.self)
        allocations.append(memory)
        binds[index].buffer_type = type
        binds[index].buffer = memory
        binds[index].buffer_length = UInt(MemoryLayout<T>.size)
    }

    /// Strings and blobs go by length, so NULs and any byte survive.
    private func store(_ bytes: [UInt8], at index: Int, type: enum_field_types) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { memory.copyMemory(from: base, byteCount: source.count) }
        }
        allocations.append(memory)
        lengths[index] = UInt(bytes.count)
        binds[index].buffer_type = type
        binds[index].buffer = memory
        binds[index].buffer_length = UInt(bytes.count)
        binds[index].length = lengths + index
    }
}

/// The MYSQL_BIND array a statement's rows are fetched into: 8 bytes for numbers, a buffer that
/// holds most strings, and `mysql_stmt_fetch_column` for a longer value.
final class ResultBuffers {
    let binds: UnsafeMutablePointer<MYSQL_BIND>
    private let kinds: [FieldKind]
    private let lengths: UnsafeMutablePointer<UInt>
    private let nulls: UnsafeMutablePointer<my_bool>
    private let buffers: [UnsafeMutableRawPointer]
    private let capacities: [Int]

    private static let stringCapacity = 256

    init(_ kinds: [FieldKind]) {
        self.kinds = kinds
        let count = max(kinds.count, 1)
        binds = .allocate(capacity: count)
        binds.initialize(repeating: MYSQL_BIND(), count: count)
        lengths = .allocate(capacity: count)
        lengths.initialize(repeating: 0, count: count)
        nulls = .allocate(capacity: count)
        nulls.initialize(repeating: 0, count: count)
        capacities = kinds.map { Self.bufferType(for: $0).capacity }
        buffers = capacities.map { UnsafeMutableRawPointer.allocate(byteCount: $0, alignment: 8) }
        for (index, kind) in kinds.enumerated() {
            let (type, capacity) = Self.bufferType(for: kind)
            binds[index].buffer_type = type
            binds[index].buffer = buffers[index]
            binds[index].buffer_length = UInt(capacity)
            binds[index].length = lengths + index
            binds[index].is_null = nulls + index
            binds[index].is_unsigned = kind == .unsignedInteger ? 1 : 0
        }
    }

    deinit {
        buffers.forEach { $0.deallocate() }
        let count = max(kinds.count, 1)
        binds.deinitialize(count: count)
        binds.deallocate()
        lengths.deallocate()
        nulls.deallocate()
    }

    /// What libmariadb converts each kind into: numbers natively, the rest as their text
    /// (dates formatted by the library, DECIMAL exact) or raw bytes.
    private static func bufferType(for kind: FieldKind) -> (type: enum_field_types, capacity: Int) {
        switch kind {
        case .signedInteger, .unsignedInteger: return (MYSQL_TYPE_LONGLONG, 8)
        case .float: return (MYSQL_TYPE_FLOAT, 4)
        case .double: return (MYSQL_TYPE_DOUBLE, 8)
        case .null: return (MYSQL_TYPE_NULL, 8)
        case .text: return (MYSQL_TYPE_STRING, stringCapacity)
        case .bytes, .bit: return (MYSQL_TYPE_BLOB, stringCapacity)
        }
    }

    /// The fetched row's value in `column`.
    func value(
        _ column: Int, of statement: UnsafeMutablePointer<MYSQL_STMT>, statement owner: MySQLStatement
    ) throws(MySQLError) -> MySQLValue {
        guard nulls[column] == 0 else { return .null }
        let kind = kinds[column]
        let buffer = buffers[column]
        switch kind {
        case .signedInteger: return .int(buffer.load(as: Int64.self))
        case .unsignedInteger: return .uint(buffer.load(as: UInt64.self))
        // Through the float's shortest decimal form, as the text protocol would send it
        // (FLOAT 3.14 reads 3.14, not 3.140000104904175).
        case .float: return .double(Double(String(buffer.load(as: Float.self))) ?? 0)
        case .double: return .double(buffer.load(as: Double.self))
        case .null: return .null
        case .text, .bytes, .bit: break
        }
        let length = Int(lengths[column])
        if length <= capacities[column] {
            return kind.value(UnsafeRawBufferPointer(start: buffer, count: length))
        }
        // Longer than the buffer: fetch this column again into one of the right size.
        let large = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 1)
        defer { large.deallocate() }
        var fetchedLength: UInt = 0
        var isNull: my_bool = 0
        var bind = MYSQL_BIND()
        bind.buffer_type = binds[column].buffer_type
        bind.buffer = large
        bind.buffer_length = UInt(length)
        let status = withUnsafeMutablePointer(to: &fetchedLength) { lengthPointer in
            withUnsafeMutablePointer(to: &isNull) { nullPointer in
                bind.length = lengthPointer
                bind.is_null = nullPointer
                return mysql_stmt_fetch_column(statement, &bind, UInt32(column), 0)
            }
        }
        guard status == 0 else { throw owner.error() }
        let count = min(Int(fetchedLength), length)
        return kind.value(UnsafeRawBufferPointer(start: large, count: count))
    }
}
