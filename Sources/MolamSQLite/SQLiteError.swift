internal import CSQLite

/// A failed SQLite call: the raw result codes, SQLite's own message, and where it happened.
public struct SQLiteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Primary result code (`SQLITE_CONSTRAINT` = 19, …).
    public let code: Int32
    /// Extended result code (`SQLITE_CONSTRAINT_UNIQUE` = 2067, …); equals `code` when none.
    public let extendedCode: Int32
    /// `sqlite3_errmsg` at the time of the failure.
    public let message: String
    public let sql: String?
    public let path: String?
    /// 1-based line in a script (`executeScript`) of the statement that failed.
    public let line: Int?
    /// 1-based position of the failing statement in a script.
    public let statement: Int?
    /// What an access policy refused, when the statement failed because of it.
    public let denial: SQLiteDenial?

    public init(
        code: Int32, extendedCode: Int32? = nil, message: String,
        sql: String? = nil, path: String? = nil, line: Int? = nil, statement: Int? = nil,
        denial: SQLiteDenial? = nil
    ) {
        self.code = code
        self.extendedCode = extendedCode ?? code
        self.message = message
        self.sql = sql
        self.path = path
        self.line = line
        self.statement = statement
        self.denial = denial
    }

    /// The statement was stopped by a deadline (progress handler) rather than by a fault.
    public var isInterrupted: Bool { code == SQLITE_INTERRUPT }
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
    public var isConstraintViolation: Bool { code == SQLITE_CONSTRAINT }
    /// The file is not a database or is damaged: a backup that must not be relied on.
    public var isCorruption: Bool { code == SQLITE_CORRUPT || code == SQLITE_NOTADB }

    /// One line: `SQLite error 19 (constraint failed: UNIQUE constraint failed: t.id) in "INSERT …"
    /// at line 3 of /x/site.db`.
    public var description: String {
        let generic = String(cString: sqlite3_errstr(code))
        let detail = message.isEmpty || message == generic ? generic : "\(generic): \(message)"
        var text = "SQLite error \(code) (\(detail))"
        if let denial { text += ", denied: \(denial)" }
        if let sql { text += " in \"\(Self.abbreviate(sql))\"" }
        switch (line, path) {
        case let (line?, path?): text += " at line \(line) of \(path)"
        case let (line?, nil): text += " at line \(line)"
        case let (nil, path?): text += " (\(path))"
        case (nil, nil): break
        }
        return text
    }

    /// Collapses whitespace and cuts long SQL so the error stays one readable line.
    public static func abbreviate(_ sql: String, limit: Int = 80) -> String {
        let words = sql.split(whereSeparator: { $0.isWhitespace || $0.isNewline })
        let oneLine = words.joined(separator: " ")
        guard oneLine.count > limit else { return oneLine }
        return String(oneLine.prefix(limit)) + "…"
    }
}
