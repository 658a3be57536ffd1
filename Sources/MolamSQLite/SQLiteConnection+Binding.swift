internal import CSQLite

extension SQLiteConnection {
    /// Binds `values` to the statement's parameters, in order; the count must match exactly.
    func bind(_ values: [SQLiteValue], to statement: SQLiteStatement) throws(SQLiteError) {
        let expected = Int(sqlite3_bind_parameter_count(statement.handle))
        guard expected == values.count else {
            throw misuse("expected \(expected) bound values, got \(values.count)", sql: statement.sql)
        }
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let result: Int32
            switch value {
            case .null:
                result = sqlite3_bind_null(statement.handle, index)
            case .integer(let integer):
                result = sqlite3_bind_int64(statement.handle, index, integer)
            case .real(let real):
                result = sqlite3_bind_double(statement.handle, index, real)
            case .text(let text):
                guard let length = Int32(exactly: text.utf8.count) else {
                    throw SQLiteError(
                        code: SQLITE_TOOBIG, message: "text too big", sql: statement.sql, path: path
                    )
                }
                result = text.withCString {
                    csqlite_bind_text_transient(statement.handle, index, $0, length)
                }
            case .blob(let bytes):
                guard let length = Int32(exactly: bytes.count) else {
                    throw SQLiteError(
                        code: SQLITE_TOOBIG, message: "blob too big", sql: statement.sql, path: path
                    )
                }
                // A nil pointer would bind NULL, not an empty blob.
                result = bytes.withUnsafeBytes { buffer in
                    guard let base = buffer.baseAddress, length > 0 else {
                        return sqlite3_bind_zeroblob(statement.handle, index, 0)
                    }
                    return csqlite_bind_blob_transient(statement.handle, index, base, length)
                }
            }
            try check(result, sql: statement.sql)
        }
    }
}
