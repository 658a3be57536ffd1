internal import CSQLite

/// One SQLite database connection.
///
/// Not Sendable: opened with `SQLITE_OPEN_NOMUTEX`, so it must be used by one thread at a time,
/// the one that owns it. The handle is closed in `deinit` with `sqlite3_close_v2`, which defers
/// the close until every statement is finalized; a handle whose open failed is closed at once.
public final class SQLiteConnection {
    public enum OpenMode: Sendable {
        case readOnly
        /// The file must exist.
        case readWrite
        case readWriteCreate
    }

    public enum TransactionKind: String, Sendable {
        case deferred = "DEFERRED"
        case immediate = "IMMEDIATE"
        case exclusive = "EXCLUSIVE"
    }

    public let path: String
    /// Internal, not private: the access policy (SQLiteAccessPolicy.swift) installs its authorizer on it.
    let db: OpaquePointer
    /// The authorizer's state while `withAccessPolicy` runs; nil otherwise.
    var accessGuard: AccessGuard?
    /// Prepared statements by SQL text; always reset and cleared before reuse.
    var statementCache: [String: SQLiteStatement] = [:]
    /// Enough for a connection's repeated queries; a connection fed ever-new SQL must not grow forever.
    private let statementCacheLimit = 64

    /// Seconds a statement waits for another connection's lock before failing with SQLITE_BUSY.
    public var busyTimeout: Double = 5 {
        didSet { applyBusyTimeout() }
    }

    public init(path: String, mode: OpenMode = .readWriteCreate) throws(SQLiteError) {
        let access: Int32 = switch mode {
        case .readOnly: SQLITE_OPEN_READONLY
        case .readWrite: SQLITE_OPEN_READWRITE
        case .readWriteCreate: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        }
        var handle: OpaquePointer?
        let result = sqlite3_open_v2(path, &handle, access | SQLITE_OPEN_NOMUTEX, nil)
        guard result == SQLITE_OK, let handle else {
            // sqlite3_open_v2 usually hands back a handle even on failure; it must still be closed.
            let message = handle.map { String(cString: sqlite3_errmsg($0)) }
                ?? String(cString: sqlite3_errstr(result))
            let extended = handle.map { sqlite3_extended_errcode($0) } ?? result
            sqlite3_close_v2(handle)
            throw SQLiteError(
                code: result & 0xff, extendedCode: extended, message: message, path: path
            )
        }
        self.path = path
        self.db = handle
        sqlite3_extended_result_codes(handle, 1)
        applyBusyTimeout()
    }

    deinit {
        statementCache.removeAll()
        sqlite3_close_v2(db)
    }

    // MARK: Running SQL

    /// Runs one or more statements, discarding any rows (PRAGMAs, DDL).
    public func execute(_ sql: String) throws(SQLiteError) {
        try runScript(sql)
    }

    /// Runs a multi-statement script one statement at a time. A failure names the failing
    /// statement's SQL and its 1-based line in the script, so a migration error points at a line.
    public func executeScript(_ sql: String) throws(SQLiteError) {
        try runScript(sql)
    }

    /// Runs exactly one statement, discarding any rows.
    public func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) {
        try withStatement(sql, bindings) { statement throws(SQLiteError) in
            while try step(statement) {}
        }
    }

    /// Runs exactly one statement and returns all its rows.
    public func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> [SQLiteRow] {
        try withStatement(sql, bindings) { statement throws(SQLiteError) in
            let columns = statement.columnNames
            var rows: [SQLiteRow] = []
            while try step(statement) {
                rows.append(statement.row(columns: columns))
            }
            return rows
        }
    }

    /// The first column of the first row, or nil when there is no row. Steps only once, so an
    /// expensive query is not run to the end.
    public func scalar(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> SQLiteValue? {
        try withStatement(sql, bindings) { statement throws(SQLiteError) in
            guard try step(statement), sqlite3_column_count(statement.handle) > 0 else { return nil }
            return statement.value(at: 0)
        }
    }

    // MARK: Transactions

    /// Runs `body` in a transaction: COMMIT when it returns, ROLLBACK when it (or COMMIT) throws.
    /// `.immediate` takes the write lock up front, so a busy database fails before any work.
    public func transaction<T>(_ kind: TransactionKind = .immediate, _ body: () throws -> T) throws -> T {
        try bracket(begin: "BEGIN \(kind.rawValue)", end: "COMMIT", undo: rollbackIfActive, body)
    }

    /// Runs `body` inside `SAVEPOINT name`: released when it returns, rolled back to and released
    /// when it throws, so the enclosing transaction continues without its changes.
    public func savepoint<T>(_ name: String, _ body: () throws -> T) throws -> T {
        let quoted = Self.quoteIdentifier(name)
        return try bracket(begin: "SAVEPOINT \(quoted)", end: "RELEASE \(quoted)", undo: {
            // The savepoint may already be gone if SQLite rolled the whole transaction back
            // (SQLITE_FULL, SQLITE_IOERR); then there is nothing left to undo.
            if !isAutocommit {
                try? execute("ROLLBACK TO \(quoted)")
                try? execute("RELEASE \(quoted)")
            }
        }, body)
    }

    /// `begin`, then `body`, then `end`; `undo` when `body` or `end` throws, and the error goes on.
    private func bracket<T>(begin: String, end: String, undo: () -> Void, _ body: () throws -> T) throws -> T {
        try execute(begin)
        do {
            let result = try body()
            try execute(end)
            return result
        } catch {
            undo()
            throw error
        }
    }

    /// True outside any transaction.
    public var isAutocommit: Bool { sqlite3_get_autocommit(db) != 0 }

    private func rollbackIfActive() {
        // After some errors SQLite has already rolled back; a second ROLLBACK would only fail.
        guard !isAutocommit else { return }
        sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
    }

    // MARK: Connection state

    /// `PRAGMA user_version`: the application's schema version, stored in the file header.
    public var userVersion: Int {
        get throws(SQLiteError) { Int(try scalar("PRAGMA user_version")?.intValue ?? 0) }
    }

    public func setUserVersion(_ version: Int) throws(SQLiteError) {
        // PRAGMA takes no bound parameters; an Int cannot inject anything.
        try execute("PRAGMA user_version = \(version)")
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(db)) }

    /// `PRAGMA integrity_check` of one schema: `["ok"]` when the file is sound.
    public func integrityCheck(schema: String = "main") throws(SQLiteError) -> [String] {
        try query("PRAGMA \(Self.quoteIdentifier(schema)).integrity_check").map { $0[0].description }
    }

    public func attach(path: String, as schema: String) throws(SQLiteError) {
        // The path is bound, never spliced into SQL.
        try run("ATTACH DATABASE ? AS \(Self.quoteIdentifier(schema))", [.text(path)])
    }

    public func detach(_ schema: String) throws(SQLiteError) {
        // Cached statements may name the schema; drop them so none is re-prepared against it.
        statementCache.removeAll()
        try run("DETACH DATABASE \(Self.quoteIdentifier(schema))")
        statementCache.removeAll()
    }

    /// Turns trigger execution on or off for statements prepared from now on
    /// (`SQLITE_DBCONFIG_ENABLE_TRIGGER`). A restore reloading rows must not fire the triggers
    /// of the tables it fills: they could write into tables it has no right to touch.
    public func setTriggersEnabled(_ enabled: Bool) throws(SQLiteError) {
        var current: Int32 = 0
        let result = csqlite_db_config_int(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, enabled ? 1 : 0, &current)
        try check(result)
        // Triggers are compiled into prepared statements, so the cached ones are stale now.
        statementCache.removeAll()
    }

    /// Runs `body` with a deadline: SQLite's progress handler interrupts any statement still
    /// running after `seconds`, which then fails with `SQLITE_INTERRUPT` (`isInterrupted`).
    public func withTimeout<T, E: Error>(
        _ seconds: Double, _ body: () throws(E) -> T
    ) throws(E) -> T {
        let budget = Duration.milliseconds(Int64(max(0, seconds) * 1000))
        let deadline = Deadline(ContinuousClock.now.advanced(by: budget))
        let context = Unmanaged.passUnretained(deadline).toOpaque()
        // Checked every 1,000 virtual-machine instructions: cheap, yet well under a millisecond apart.
        sqlite3_progress_handler(db, 1000, { context in
            guard let context else { return 0 }
            let deadline = Unmanaged<Deadline>.fromOpaque(context).takeUnretainedValue()
            return ContinuousClock.now >= deadline.instant ? 1 : 0
        }, context)
        defer { sqlite3_progress_handler(db, 0, nil, nil) }
        return try withExtendedLifetime(deadline) { () throws(E) -> T in try body() }
    }

    /// Quotes an identifier for SQL: double quotes, embedded ones doubled.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacing("\"", with: "\"\"") + "\""
    }

    // MARK: Internals

    private func applyBusyTimeout() {
        let milliseconds = Int32(clamping: Int64((max(0, busyTimeout) * 1000).rounded()))
        sqlite3_busy_timeout(db, milliseconds)
    }

    /// The error funnel: every SQLite result code becomes `SQLiteError` here, with the
    /// connection's message, the SQL and the file.
    func check(_ result: Int32, sql: String? = nil, line: Int? = nil) throws(SQLiteError) {
        switch result & 0xff {
        case SQLITE_OK, SQLITE_ROW, SQLITE_DONE: return
        default: throw error(result, sql: sql, line: line)
        }
    }

    func error(_ result: Int32, sql: String?, line: Int? = nil, statement: Int? = nil) -> SQLiteError {
        SQLiteError(
            code: result & 0xff,
            extendedCode: sqlite3_extended_errcode(db),
            message: String(cString: sqlite3_errmsg(db)),
            sql: sql, path: path, line: line, statement: statement,
            // The authorizer's own record says which action on which object was refused;
            // SQLite's message only says "not authorized".
            denial: accessGuard?.firstDenial
        )
    }

    func misuse(_ message: String, sql: String) -> SQLiteError {
        SQLiteError(code: SQLITE_MISUSE, message: message, sql: sql, path: path)
    }

    /// Steps once: true with a row ready, false when done.
    private func step(_ statement: SQLiteStatement) throws(SQLiteError) -> Bool {
        let result = sqlite3_step(statement.handle)
        switch result {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw error(result, sql: statement.sql)
        }
    }

    private func withStatement<T>(
        _ sql: String, _ bindings: [SQLiteValue], _ body: (SQLiteStatement) throws(SQLiteError) -> T
    ) throws(SQLiteError) -> T {
        let statement = try cachedStatement(sql)
        statement.reset()
        // Reset at once after use: an unreset statement keeps its read transaction open.
        defer { statement.reset() }
        try bind(bindings, to: statement)
        return try body(statement)
    }

    private func cachedStatement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = statementCache[sql] { return cached }
        let statement = try prepareSingle(sql)
        if statementCache.count >= statementCacheLimit { statementCache.removeAll() }
        statementCache[sql] = statement
        return statement
    }

    /// Prepares exactly one statement; trailing whitespace, comments and semicolons are fine,
    /// a second statement is refused rather than silently ignored.
    private func prepareSingle(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        let bytes = Array(sql.utf8)
        guard let total = Int32(exactly: bytes.count) else {
            throw SQLiteError(code: SQLITE_TOOBIG, message: "statement too big", path: path)
        }
        var handle: OpaquePointer?
        var consumed = 0
        accessGuard?.beginStatement()
        let result = withPrepared(bytes, from: 0, total: total, &handle, &consumed)
        accessGuard?.endStatement()
        guard result == SQLITE_OK else {
            sqlite3_finalize(handle)
            throw error(result, sql: sql)
        }
        guard let handle else { throw misuse("no SQL statement", sql: sql) }
        let statement = SQLiteStatement(handle: handle, sql: sql)
        guard ScriptScanner.skipTrivia(bytes, from: consumed) >= bytes.count else {
            throw misuse("more than one statement; use execute(_:) for scripts", sql: sql)
        }
        return statement
    }

    /// sqlite3_prepare_v2 on `bytes[start...]`; `consumed` receives the tail's offset.
    /// Without a NUL terminator SQLite reads exactly `nByte` bytes (sqlite3.h).
    private func withPrepared(
        _ bytes: [UInt8], from start: Int, total: Int32,
        _ handle: inout OpaquePointer?, _ consumed: inout Int
    ) -> Int32 {
        var tailOffset = bytes.count
        var prepared: OpaquePointer?
        let result = bytes.withUnsafeBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress else { return SQLITE_MISUSE }
            return base.withMemoryRebound(to: CChar.self, capacity: buffer.count) { text in
                var tail: UnsafePointer<CChar>?
                let result = sqlite3_prepare_v2(db, text + start, total - Int32(start), &prepared, &tail)
                if let tail { tailOffset = tail - text }
                return result
            }
        }
        handle = prepared
        consumed = tailOffset
        return result
    }

    /// Prepares and runs each statement of `sql` in turn (prepare_v2 with its tail pointer).
    private func runScript(_ sql: String) throws(SQLiteError) {
        let bytes = Array(sql.utf8)
        guard let total = Int32(exactly: bytes.count) else {
            throw SQLiteError(code: SQLITE_TOOBIG, message: "script too big", path: path)
        }
        var scanner = ScriptScanner(bytes: bytes)
        var offset = 0
        var number = 0
        while true {
            let (start, line) = scanner.nextStatement(from: offset)
            guard start < bytes.count else { break }
            var handle: OpaquePointer?
            var consumed = 0
            number += 1
            accessGuard?.beginStatement()
            let result = withPrepared(bytes, from: start, total: total, &handle, &consumed)
            accessGuard?.endStatement()
            guard result == SQLITE_OK else {
                sqlite3_finalize(handle)
                throw error(result, sql: scanner.text(from: start, upTo: nil), line: line, statement: number)
            }
            let next = max(consumed, start + 1)
            guard let handle else {
                number -= 1
                offset = next
                continue
            }
            let statement = SQLiteStatement(handle: handle, sql: scanner.text(from: start, upTo: next))
            while true {
                let stepResult = sqlite3_step(statement.handle)
                if stepResult == SQLITE_ROW { continue }
                if stepResult == SQLITE_DONE { break }
                throw error(stepResult, sql: statement.sql, line: line, statement: number)
            }
            offset = next
            if let accessGuard, !accessGuard.createdTriggers.isEmpty {
                // A trigger's body is checked only when a statement that fires it is prepared: probe
                // it now, while the policy holds, rather than let the shop fire it unchecked later.
                try probeCreatedTriggers(accessGuard, sql: statement.sql, line: line, statement: number)
            }
        }
    }
}

/// The deadline `withTimeout` hands to SQLite's progress handler through an unmanaged pointer.
private final class Deadline {
    let instant: ContinuousClock.Instant
    init(_ instant: ContinuousClock.Instant) { self.instant = instant }
}
