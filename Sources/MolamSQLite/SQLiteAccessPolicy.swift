internal import CSQLite

/// What SQL run under `SQLiteConnection.withAccessPolicy` may do, enforced by SQLite's own
/// authorizer (`sqlite3_set_authorizer`, sqlite.org/c3ref/set_authorizer.html) while each statement
/// is prepared, never by reading the SQL text.
///
/// Both modes allow reading any table and deny ATTACH/DETACH (which also stops `VACUUM` and
/// `VACUUM INTO`: SQLite authorizes them as an ATTACH), transaction control, ANALYZE, REINDEX,
/// `load_extension` and other dangerous functions, and every PRAGMA that writes (any with an
/// argument, except a few read-only ones such as `table_info(t)`).
public struct SQLiteAccessPolicy: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// No write of any kind (`sql` smoke checks).
        case readOnly
        /// Writes, DDL, indexes, triggers and views only on the owned tables (migrations).
        case ownedWritesOnly
    }

    public var mode: Mode
    /// Lowercased: SQLite compares ASCII names without case.
    public private(set) var ownedTables: Set<String>
    /// The owned tables a statement may CREATE; the others may only be changed or dropped.
    public private(set) var creatableTables: Set<String>

    public init(mode: Mode, ownedTables: [String] = [], creatableTables: [String]? = nil) {
        self.mode = mode
        self.ownedTables = Set(ownedTables.map(Self.fold))
        self.creatableTables = Set((creatableTables ?? ownedTables).map(Self.fold)).intersection(self.ownedTables)
    }

    public static let readOnly = SQLiteAccessPolicy(mode: .readOnly)

    /// SQLite's own case folding for identifiers: ASCII only.
    static func fold(_ name: String) -> String {
        String(decoding: name.utf8.map { (0x41...0x5a).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    /// PRAGMAs that only read, with or without an argument (the argument names a table or index).
    static let readPragmasWithArgument: Set<String> = [
        "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
        "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
    ]
    /// PRAGMAs that only read when given no argument. Some argument-less pragmas act
    /// (`optimize`, `incremental_vacuum`, `wal_checkpoint`, `shrink_memory`): they are not listed.
    static let readPragmas: Set<String> = readPragmasWithArgument.union([
        "user_version", "schema_version", "application_id", "foreign_keys", "page_size", "page_count",
        "freelist_count", "encoding", "journal_mode", "database_list", "collation_list", "function_list",
        "pragma_list", "module_list", "compile_options", "data_version", "auto_vacuum", "cache_size",
        "synchronous", "recursive_triggers", "defer_foreign_keys", "query_only", "max_page_count",
    ])
    /// Functions that reach outside the database or hand SQLite raw pointers.
    static let forbiddenFunctions: Set<String> = [
        "load_extension", "fts3_tokenizer", "readfile", "writefile", "edit",
    ]
}

/// The first thing a policy refused in a statement: the action, the object and why.
public struct SQLiteDenial: Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// The object is a table (or the table of an index, trigger or view) outside the owned set.
        case notOwned
        /// The table is owned but the release did not declare it, so it may not be created.
        case notDeclared
        /// The action is never allowed under this policy (ATTACH, VACUUM, a writing PRAGMA, …).
        case forbidden
    }

    /// "DROP TABLE", "INSERT", "ATTACH", "PRAGMA", …
    public let action: String
    /// The table (or pragma, function, file) the action is on; nil when there is none.
    public let object: String?
    public let reason: Reason
    /// The trigger whose body asked for the action, when a trigger did.
    public let trigger: String?

    public init(action: String, object: String?, reason: Reason, trigger: String? = nil) {
        self.action = action
        self.object = object
        self.reason = reason
        self.trigger = trigger
    }

    public var description: String {
        let target = object.map { " \($0)" } ?? ""
        let via = trigger.map { " (in trigger \($0))" } ?? ""
        switch reason {
        case .notOwned: return "\(action)\(target)\(via): not an owned table"
        case .notDeclared: return "\(action)\(target)\(via): not a table the release declares"
        case .forbidden: return "\(action)\(target)\(via) is not allowed"
        }
    }
}

/// The authorizer's state for one connection while a policy is installed. Not Sendable: it lives
/// and is called on the connection's thread only (SQLite calls the authorizer from prepare).
final class AccessGuard {
    let policy: SQLiteAccessPolicy
    private(set) var firstDenial: SQLiteDenial?
    /// Whether the statement being prepared has done an allowed CREATE/DROP/ALTER TABLE: only then
    /// may it write `sqlite_sequence` (SQLite does so itself for AUTOINCREMENT tables).
    private var tableDDLSeen = false
    /// Whether it has done an allowed CREATE INDEX: SQLite then authorizes a REINDEX of that index.
    private var indexDDLSeen = false
    /// Triggers (name, table) created by the last statement, to be probed before the next.
    var createdTriggers: [(name: String, table: String)] = []
    /// While probing: the triggers whose bodies are checked; denials elsewhere are not theirs.
    var probing: Set<String>?

    init(policy: SQLiteAccessPolicy) { self.policy = policy }

    func beginStatement() { (tableDDLSeen, indexDDLSeen) = (false, false) }
    func endStatement() { (tableDDLSeen, indexDDLSeen) = (false, false) }

    /// The callback's decision: SQLITE_OK or SQLITE_DENY, recording the first denial.
    func authorize(_ action: Int32, _ first: String?, _ second: String?, _ database: String?,
                   _ trigger: String?) -> Int32 {
        guard let denial = decide(action, first, second, database) else { return SQLITE_OK }
        if let probing {
            // Probe statements are prepared, never run: only the new triggers' own actions count.
            if let trigger, probing.contains(SQLiteAccessPolicy.fold(trigger)), firstDenial == nil {
                firstDenial = SQLiteDenial(
                    action: denial.action, object: denial.object, reason: denial.reason, trigger: trigger)
            }
            return SQLITE_OK
        }
        if firstDenial == nil {
            firstDenial = SQLiteDenial(
                action: denial.action, object: denial.object, reason: denial.reason, trigger: trigger)
        }
        return SQLITE_DENY
    }

    func clearDenial() { firstDenial = nil }

    private func decide(
        _ action: Int32, _ first: String?, _ second: String?, _ database: String?
    ) -> SQLiteDenial? {
        let owned = { (name: String?) -> Bool in
            guard let name else { return false }
            return self.policy.ownedTables.contains(SQLiteAccessPolicy.fold(name))
        }
        let isTemp = database.map(SQLiteAccessPolicy.fold) == "temp"
        func deny(_ verb: String, _ object: String?, _ reason: SQLiteDenial.Reason = .forbidden) -> SQLiteDenial {
            SQLiteDenial(action: verb, object: object, reason: reason)
        }
        switch action {
        case SQLITE_SELECT, SQLITE_READ, SQLITE_RECURSIVE:
            return nil
        case SQLITE_FUNCTION:
            let name = second.map(SQLiteAccessPolicy.fold) ?? ""
            return SQLiteAccessPolicy.forbiddenFunctions.contains(name) ? deny("function", second) : nil
        case SQLITE_PRAGMA:
            let name = first.map(SQLiteAccessPolicy.fold) ?? ""
            let allowed = second == nil
                ? SQLiteAccessPolicy.readPragmas.contains(name)
                : SQLiteAccessPolicy.readPragmasWithArgument.contains(name)
            return allowed ? nil : deny("PRAGMA", second.map { "\(first ?? "")=\($0)" } ?? first)
        case SQLITE_ATTACH:
            // VACUUM is authorized as an ATTACH of "" and VACUUM INTO as an ATTACH of its file.
            if let first, !first.isEmpty { return deny("ATTACH (or VACUUM INTO)", first) }
            return deny("VACUUM", nil)
        case SQLITE_DETACH: return deny("DETACH", first)
        case SQLITE_TRANSACTION: return deny("transaction control (\(first ?? ""))", nil)
        case SQLITE_SAVEPOINT: return deny("SAVEPOINT \(first ?? "")", second)
        case SQLITE_ANALYZE: return deny("ANALYZE", first)
        case SQLITE_REINDEX: return indexDDLSeen ? nil : deny("REINDEX", first)
        default: break
        }
        guard policy.mode == .ownedWritesOnly else { return deny(Self.verb(action), first) }

        switch action {
        case SQLITE_INSERT, SQLITE_UPDATE, SQLITE_DELETE:
            let table = first.map(SQLiteAccessPolicy.fold) ?? ""
            if isTemp || owned(first) { return nil }
            // The schema table is written only by DDL, which is checked on its own; writing it
            // directly needs writable_schema, which is denied (and off under SQLITE_DBCONFIG_DEFENSIVE).
            if table == "sqlite_master" || table == "sqlite_schema" { return nil }
            if table == "sqlite_sequence" && tableDDLSeen { return nil }
            return deny(Self.verb(action), first, .notOwned)
        case SQLITE_CREATE_TABLE, SQLITE_CREATE_VTABLE:
            let table = first.map(SQLiteAccessPolicy.fold) ?? ""
            if table == "sqlite_sequence" && tableDDLSeen { return nil }
            if policy.creatableTables.contains(table) {
                tableDDLSeen = true
                return nil
            }
            return deny(Self.verb(action), first, owned(first) ? .notDeclared : .notOwned)
        case SQLITE_DROP_TABLE, SQLITE_DROP_VTABLE:
            guard owned(first) else { return deny(Self.verb(action), first, .notOwned) }
            tableDDLSeen = true
            return nil
        case SQLITE_ALTER_TABLE:
            // arg1 is the schema, arg2 the table.
            guard owned(second) else { return deny("ALTER TABLE", second, .notOwned) }
            tableDDLSeen = true
            return nil
        case SQLITE_CREATE_INDEX, SQLITE_DROP_INDEX:
            guard owned(second) else { return deny(Self.verb(action), second, .notOwned) }
            indexDDLSeen = action == SQLITE_CREATE_INDEX
            return nil
        case SQLITE_CREATE_TRIGGER, SQLITE_CREATE_TEMP_TRIGGER:
            // The trigger's table must be owned, wherever the trigger itself is stored.
            guard owned(second) else { return deny(Self.verb(action), second, .notOwned) }
            if let first { createdTriggers.append((first, second ?? "")) }
            return nil
        case SQLITE_DROP_TRIGGER, SQLITE_DROP_TEMP_TRIGGER:
            return owned(second) ? nil : deny(Self.verb(action), second, .notOwned)
        case SQLITE_CREATE_VIEW, SQLITE_DROP_VIEW:
            return owned(first) ? nil : deny(Self.verb(action), first, .notOwned)
        case SQLITE_CREATE_TEMP_TABLE, SQLITE_CREATE_TEMP_INDEX, SQLITE_CREATE_TEMP_VIEW,
             SQLITE_DROP_TEMP_TABLE, SQLITE_DROP_TEMP_INDEX, SQLITE_DROP_TEMP_VIEW:
            // TEMP objects vanish with the connection and cannot reach the site's tables.
            return nil
        default:
            return deny(Self.verb(action), first)
        }
    }

    static func verb(_ action: Int32) -> String {
        switch action {
        case SQLITE_INSERT: "INSERT INTO"
        case SQLITE_UPDATE: "UPDATE"
        case SQLITE_DELETE: "DELETE FROM"
        case SQLITE_CREATE_TABLE: "CREATE TABLE"
        case SQLITE_CREATE_VTABLE: "CREATE VIRTUAL TABLE"
        case SQLITE_DROP_TABLE: "DROP TABLE"
        case SQLITE_DROP_VTABLE: "DROP VIRTUAL TABLE"
        case SQLITE_CREATE_INDEX: "CREATE INDEX on"
        case SQLITE_DROP_INDEX: "DROP INDEX on"
        case SQLITE_CREATE_TRIGGER: "CREATE TRIGGER on"
        case SQLITE_CREATE_TEMP_TRIGGER: "CREATE TEMP TRIGGER on"
        case SQLITE_DROP_TRIGGER, SQLITE_DROP_TEMP_TRIGGER: "DROP TRIGGER on"
        case SQLITE_CREATE_VIEW: "CREATE VIEW"
        case SQLITE_DROP_VIEW: "DROP VIEW"
        default: "action \(action)"
        }
    }
}

extension SQLiteConnection {
    /// Runs `body` with `policy` enforced on every statement it prepares. Also, for the duration:
    /// `SQLITE_DBCONFIG_DEFENSIVE` (no writable_schema, no raw page writes), no attached databases
    /// (`SQLITE_LIMIT_ATTACHED` 0), no extension loading, and no functions with side effects in
    /// triggers or views (`SQLITE_DBCONFIG_TRUSTED_SCHEMA` off). A refused statement fails with an
    /// `SQLiteError` whose `denial` names the action and the object.
    public func withAccessPolicy<T>(
        _ policy: SQLiteAccessPolicy, _ body: () throws(SQLiteError) -> T
    ) throws(SQLiteError) -> T {
        precondition(accessGuard == nil, "access policies do not nest")
        let guardState = AccessGuard(policy: policy)
        // Cached statements were authorized (or not) when they were prepared: none may run unchecked.
        statementCache.removeAll()
        var previousDefensive: Int32 = 0
        var previousTrusted: Int32 = 1
        try check(csqlite_db_config_int(db, SQLITE_DBCONFIG_DEFENSIVE, -1, &previousDefensive))
        try check(csqlite_db_config_int(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, -1, &previousTrusted))
        var ignored: Int32 = 0
        try check(csqlite_db_config_int(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &ignored))
        try check(csqlite_db_config_int(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &ignored))
        try check(csqlite_db_config_int(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &ignored))
        let previousAttached = sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0)
        let context = Unmanaged.passUnretained(guardState).toOpaque()
        sqlite3_set_authorizer(db, { context, action, first, second, database, trigger in
            guard let context else { return SQLITE_DENY }
            let state = Unmanaged<AccessGuard>.fromOpaque(context).takeUnretainedValue()
            return state.authorize(
                action, first.map { String(cString: $0) }, second.map { String(cString: $0) },
                database.map { String(cString: $0) }, trigger.map { String(cString: $0) })
        }, context)
        accessGuard = guardState
        defer {
            sqlite3_set_authorizer(db, nil, nil)
            accessGuard = nil
            statementCache.removeAll()
            sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, previousAttached)
            var unused: Int32 = 0
            csqlite_db_config_int(db, SQLITE_DBCONFIG_DEFENSIVE, previousDefensive, &unused)
            csqlite_db_config_int(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, previousTrusted, &unused)
        }
        return try withExtendedLifetime(guardState) { () throws(SQLiteError) -> T in try body() }
    }

    /// Prepares (never runs) an INSERT, an UPDATE of every column and a DELETE on the table of each
    /// trigger the last statement created, so SQLite authorizes the trigger bodies under the policy.
    func probeCreatedTriggers(
        _ state: AccessGuard, sql: String, line: Int, statement number: Int
    ) throws(SQLiteError) {
        let triggers = state.createdTriggers
        state.createdTriggers = []
        state.probing = Set(triggers.map { SQLiteAccessPolicy.fold($0.name) })
        defer { state.probing = nil }
        for table in Set(triggers.map(\.table)) {
            let quoted = Self.quoteIdentifier(table)
            var probes = ["INSERT INTO \(quoted) DEFAULT VALUES", "DELETE FROM \(quoted)"]
            var columns: [String] = []
            var handle: OpaquePointer?
            if sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0", -1, &handle, nil)
                == SQLITE_OK, let handle {
                csqlite_bind_text_transient(handle, 1, table, -1)
                while sqlite3_step(handle) == SQLITE_ROW {
                    if let text = sqlite3_column_text(handle, 0) { columns.append(String(cString: text)) }
                }
            }
            sqlite3_finalize(handle)
            if !columns.isEmpty {
                let assignments = columns.map { "\(Self.quoteIdentifier($0)) = \(Self.quoteIdentifier($0))" }
                probes.append("UPDATE \(quoted) SET " + assignments.joined(separator: ", "))
            }
            for probe in probes {
                var prepared: OpaquePointer?
                // Errors other than our denials (a view without INSTEAD OF, say) are not the point here.
                _ = sqlite3_prepare_v2(db, probe, -1, &prepared, nil)
                sqlite3_finalize(prepared)
                if state.firstDenial != nil {
                    throw SQLiteError(
                        code: SQLITE_AUTH, message: "not authorized", sql: sql, path: path, line: line,
                        statement: number, denial: state.firstDenial)
                }
            }
        }
    }
}
