import Foundation
import MolamSQLite

/// The merchant site's SQLite database (`sqlite:///path/site.db`), seen from the plugin: only
/// the tables the plugin owns are ever changed; persistent settings (journal mode, page size…)
/// are never touched, so a database nothing was done to stays byte-identical.
///
/// Not Sendable: it owns one read-write connection, to be used from one thread at a time.
public final class SQLitePluginDatabase: PluginDatabase {
    public let path: String
    public var location: DatabaseLocation { .sqlite(path: path) }
    public var busyTimeoutSeconds: Double {
        get { connection.busyTimeout }
        set { connection.busyTimeout = newValue }
    }
    let connection: SQLiteConnection

    public init(path: String) throws(PluginDatabaseError) {
        // `.readWrite` would also fail on a missing file, but with SQLite's vaguer message.
        guard DatabaseFileIO.exists(path) else { throw .missingDatabase(path: path) }
        do {
            connection = try SQLiteConnection(path: path, mode: .readWrite)
            // Per connection: our migrations and restores are on disk before the journal says so,
            // whatever the site's own default is.
            try connection.execute("PRAGMA synchronous = FULL")
        } catch {
            throw .sqlite(error, context: "cannot open plugin database \(path)")
        }
        self.path = path
    }

    /// Tables that exist now, by name (sqlite_schema type='table').
    public func existingTables() throws(PluginDatabaseError) -> Set<String> {
        let rows = try sql("listing tables of \(path)") { () throws(SQLiteError) in
            try connection.query("SELECT name FROM main.sqlite_schema WHERE type = 'table'")
        }
        return Set(rows.compactMap { $0[0].stringValue })
    }

    // MARK: Migrations

    static let migrationsTable = "molam_schema_migrations"

    /// Migrations already applied, by version.
    public func appliedMigrations() throws(PluginDatabaseError) -> [AppliedMigration] {
        try sql("reading applied migrations from \(path)") { () throws(SQLiteError) in
            let present = try connection.scalar(
                "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?",
                [.text(Self.migrationsTable)]
            )
            guard present != nil else { return [] }
            return try connection.query(
                "SELECT version, name, checksum, applied_at FROM main.molam_schema_migrations "
                    + "ORDER BY version"
            ).map { row in
                AppliedMigration(
                    version: Int(row[0].intValue ?? 0), name: row[1].stringValue ?? "",
                    checksum: row[2].stringValue ?? "", appliedAt: row[3].stringValue ?? ""
                )
            }
        }
    }

    /// Which of `all` are not applied yet, in order. An applied migration whose file changed is
    /// an error: silently re-running or skipping it would leave the schema unknown.
    public func pendingMigrations(_ all: [Migration]) throws(PluginDatabaseError) -> [Migration] {
        let applied = Dictionary(
            try appliedMigrations().map { ($0.version, $0) }, uniquingKeysWith: { first, _ in first }
        )
        for migration in all {
            if let record = applied[migration.version], record.checksum != migration.checksum {
                throw .checksumMismatch(
                    version: migration.version, name: migration.name, file: migration.file
                )
            }
        }
        return all.filter { applied[$0.version] == nil }.sorted { $0.version < $1.version }
    }

    /// Applies `pending` in order inside ONE immediate transaction, each in its own savepoint,
    /// recording each in `molam_schema_migrations`. If any fails, everything is rolled back: the
    /// file is unchanged byte for byte, and the error names the migration file and line.
    /// With `confinement`, each migration's SQL (never the ledger writes, which are ours) runs under
    /// SQLite's authorizer: a statement outside the plugin's tables fails the migration, named.
    /// `onApplied` runs after the COMMIT, once per migration, so callers journal only what stuck.
    public func applyMigrations(
        _ pending: [Migration], now: Date, confinement: MigrationConfinement?,
        onApplied: (Migration) -> Void
    ) throws(PluginDatabaseError) {
        // Nothing to do must mean nothing written, not even an empty transaction.
        guard !pending.isEmpty else { return }
        let appliedAt = Self.timestamp(now)
        try runLedgered(pending, confinement: confinement, before: {
            try connection.execute("""
                CREATE TABLE IF NOT EXISTS main.molam_schema_migrations(
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    checksum TEXT NOT NULL,
                    applied_at TEXT NOT NULL
                )
                """)
        }, ledger: { migration in
            try connection.run(
                "INSERT INTO main.molam_schema_migrations(version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                [.integer(Int64(migration.version)), .text(migration.name), .text(migration.checksum),
                 .text(appliedAt)])
            try FaultInjection.hit("between-migrations")
        })
        pending.forEach(onApplied)
    }

    /// Runs `migrations`' SQL in order inside ONE immediate transaction, each in its own savepoint
    /// followed by its `ledger` write, with the change capture paused (a migration's own changes are
    /// not live traffic). If any fails, everything is rolled back, and the error names the file and
    /// line, or what the confinement refused.
    func runLedgered(
        _ migrations: [Migration], confinement: MigrationConfinement?, before: () throws -> Void = {},
        ledger: (Migration) throws -> Void
    ) throws(PluginDatabaseError) {
        var running: Migration?
        do {
            try connection.transaction(.immediate) {
                try before()
                try withCapturePaused {
                    for migration in migrations {
                        running = migration
                        try connection.savepoint("molam_migration_\(migration.version)") {
                            if let confinement {
                                try runConfined(migration, confinement)
                            } else {
                                try connection.executeScript(migration.sql)
                            }
                        }
                        try ledger(migration)
                    }
                }
                running = nil
            }
        } catch let error as SQLiteError {
            throw migrationError(error, running: running, confinement: confinement)
        } catch let error as PluginDatabaseError {
            throw error
        } catch {
            throw Self.unexpected(error, context: "applying migrations to \(path)")
        }
    }

    /// A migration's failure, named: the file, the line, and what the confinement refused.
    func migrationError(
        _ error: SQLiteError, running: Migration?, confinement: MigrationConfinement?
    ) -> PluginDatabaseError {
        guard let running else { return .sqlite(error, context: "applying migrations to \(path)") }
        if let denial = error.denial, let confinement {
            return .migrationDenied(
                migration: running.fileName, statement: error.statement ?? 0,
                sql: SQLiteError.abbreviate(Self.withoutSemicolon(error.sql ?? ""), limit: 60),
                reason: confinement.explain(denial))
        }
        return .migrationFailed(migration: running.fileName, line: error.line, message: "\(error.message) (\(path))")
    }

    /// One migration's SQL under the confinement's authorizer, then a check that nothing in the
    /// schema outside the owned tables changed (an ALTER TABLE … RENAME TO names its new table
    /// nowhere the authorizer sees).
    func runConfined(_ migration: Migration, _ confinement: MigrationConfinement) throws {
        let before = try confinement.foreignSchema(connection)
        try connection.withAccessPolicy(confinement.policy) { () throws(SQLiteError) in
            try connection.executeScript(migration.sql)
        }
        let after = try confinement.foreignSchema(connection)
        // A table's own entry names it best: list tables before their indexes and triggers.
        func order(_ a: String, _ b: String) -> Bool {
            (a.hasPrefix("table ") ? 0 : 1, a) < (b.hasPrefix("table ") ? 0 : 1, b)
        }
        if let changed = after.subtracting(before).sorted(by: order).first
            ?? before.subtracting(after).sorted(by: order).first {
            let entry = changed.split(separator: "\u{0}", omittingEmptySubsequences: false).first ?? ""
            throw PluginDatabaseError.migrationDenied(
                migration: migration.fileName, statement: 0, sql: "",
                reason: "it changed the schema entry \(entry), which is not in a table \(confinement.plugin) owns")
        }
    }

    static func withoutSemicolon(_ sql: String) -> String {
        var text = Substring(sql)
        while let last = text.last, last == ";" || last.isWhitespace { text = text.dropLast() }
        return String(text)
    }

    static func timestamp(_ date: Date) -> String {
        UTCTimestamp.string(date, milliseconds: false)
    }

    // MARK: Smoke checks

    /// Runs one read-only query on its own read-only connection (also `query_only`, so not even a
    /// function with side effects can write) and returns the first column of the first row as
    /// text, "NULL" when there is none. A query still running after `timeoutSeconds` is
    /// interrupted through SQLite's progress handler.
    public func smokeQuery(_ sql: String, timeoutSeconds: Double) throws(PluginDatabaseError) -> String {
        do {
            let reader = try SQLiteConnection(path: path, mode: .readOnly)
            // Waiting for a lock counts against the same budget.
            reader.busyTimeout = min(max(timeoutSeconds, 0), 5)
            try reader.execute("PRAGMA query_only = ON")
            // And the authorizer in read-only mode: no write, ATTACH, VACUUM INTO or writing PRAGMA
            // even gets prepared.
            let value = try reader.withAccessPolicy(.readOnly) { () throws(SQLiteError) in
                try reader.withTimeout(timeoutSeconds) { () throws(SQLiteError) in
                    try reader.scalar(sql)
                }
            }
            return (value ?? .null).description
        } catch {
            if error.isInterrupted { throw .timeout(query: sql, seconds: timeoutSeconds) }
            if let denial = error.denial { throw .smokeDenied(query: sql, denial: denial) }
            throw .sqlite(error, context: "SQL smoke check on \(path)")
        }
    }

    /// A dry run's scratch database: a table backup of `tables` in `directory`, which is a SQLite
    /// file like any other.
    public func scratchCopy(
        of tables: [String], in directory: String
    ) throws(PluginDatabaseError) -> any PluginDatabase {
        let scratch = directory + "/scratch.db"
        _ = try backupTables(tables, to: scratch)
        return try SQLitePluginDatabase(path: scratch)
    }

    // MARK: Helpers

    func sql<T>(
        _ context: @autoclosure () -> String, _ body: () throws(SQLiteError) -> T
    ) throws(PluginDatabaseError) -> T {
        do { return try body() } catch { throw .sqlite(error, context: context()) }
    }

    /// Maps what a `transaction`/`savepoint` body threw back to our typed error.
    static func unexpected(_ error: any Error, context: String) -> PluginDatabaseError {
        switch error {
        case let error as PluginDatabaseError: return error
        case let error as SQLiteError: return .sqlite(error, context: context)
        case let error as SystemError: return .io(error)
        default:
            return .sqlite(SQLiteError(code: 1, message: String(describing: error)), context: context)
        }
    }

    /// Owned table names from a manifest: non-empty, no NUL, not SQLite's own or our backup
    /// metadata's; duplicates (SQLite names are case-insensitive) removed, order kept.
    static func validatedTableNames(_ names: [String]) throws(PluginDatabaseError) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for name in names {
            let lowered = name.lowercased()
            guard !name.isEmpty, !name.contains("\0"),
                  !lowered.hasPrefix("sqlite_"), !lowered.hasPrefix("_molam_")
            else { throw .invalidTableName(name) }
            if seen.insert(lowered).inserted { result.append(name) }
        }
        return result
    }
}
