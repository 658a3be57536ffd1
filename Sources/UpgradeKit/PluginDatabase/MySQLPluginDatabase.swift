import Foundation
import MolamMySQL

/// The shop's MySQL or MariaDB database (`mysql://user@host/db`), seen from the plugin, through
/// MariaDB Connector/C. Only the tables the plugin owns and the agent's own `_molam_` tables are
/// ever changed.
///
/// MySQL commits DDL implicitly, so nothing here relies on a transaction to undo a schema change: a
/// migration that fails half way is undone by the rollback's `RENAME TABLE` of the shadow tables
/// (DESIGN.md "Rows"). Confinement is the database's own: migrations need an account whose grants
/// cover the owned tables only (`MySQLGrants`), checked before anything runs.
///
/// Not Sendable: it owns one connection, used from one thread at a time.
public final class MySQLPluginDatabase: PluginDatabase {
    public let mysqlLocation: MySQLLocation
    let endpoint: MySQLEndpoint
    let connection: MySQLConnection
    /// A dry run's scratch database, dropped with this object.
    private var ownedScratchDatabase: String?
    /// The site's database, whose grants confine migrations: a scratch copy's is the site's it was
    /// copied from.
    private var siteDatabase: String?
    private(set) var lockWaitSeconds = 5

    public var location: DatabaseLocation { .mysql(mysqlLocation) }
    public var busyTimeoutSeconds: Double {
        get { Double(lockWaitSeconds) }
        set {
            lockWaitSeconds = max(1, Int(newValue.rounded(.up)))
            try? applyLockWait(connection)
        }
    }
    var database: String { endpoint.database }

    public convenience init(location: MySQLLocation) throws(PluginDatabaseError) {
        let password: String?
        do {
            password = try location.password()
        } catch {
            throw .credentials("\(error)")
        }
        let endpoint = MySQLEndpoint(
            host: location.host, port: location.port, socket: location.socket, user: location.user,
            password: password, database: location.database, charset: location.charset ?? "utf8mb4")
        try self.init(location: location, endpoint: endpoint)
    }

    init(location: MySQLLocation, endpoint: MySQLEndpoint) throws(PluginDatabaseError) {
        mysqlLocation = location
        self.endpoint = endpoint
        do {
            connection = try MySQLConnection(endpoint)
        } catch {
            throw .mysql(error, context: "cannot connect to plugin database \(location)")
        }
        try sql("setting up the session on \(location)") { () throws(MySQLError) in try applyLockWait(connection) }
    }

    deinit {
        if let scratch = ownedScratchDatabase {
            _ = try? connection.execute("DROP DATABASE IF EXISTS \(Self.quote(scratch))")
        }
    }

    /// How long a statement waits for a row lock (InnoDB) or a table's metadata lock the site holds.
    func applyLockWait(_ connection: MySQLConnection) throws(MySQLError) {
        // An id of 0 copied into a shadow or a restored table stays 0 (as mysqldump loads it).
        try connection.execute(
            "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')")
        try connection.execute(
            "SET SESSION innodb_lock_wait_timeout = \(lockWaitSeconds), lock_wait_timeout = \(lockWaitSeconds)")
    }

    /// A second connection with the same account and session settings (the rename's cut-over).
    func openSecondConnection() throws(MySQLError) -> MySQLConnection {
        let second = try MySQLConnection(endpoint)
        try applyLockWait(second)
        return second
    }

    public func existingTables() throws(PluginDatabaseError) -> Set<String> {
        Set(try sql("listing tables of \(mysqlLocation)") { () throws(MySQLError) in try baseTables() })
    }

    func baseTables() throws(MySQLError) -> [String] {
        try connection.query("""
            SELECT table_name FROM information_schema.tables
            WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'
            """).compactMap { $0[0].stringValue }
    }

    func tableExists(_ table: String) throws(MySQLError) -> Bool {
        try !connection.query("""
            SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?
            """, [.text(table)]).isEmpty
    }

    // MARK: Migrations

    static let migrationsTable = TableOwnership.ledgerTable

    public func appliedMigrations() throws(PluginDatabaseError) -> [AppliedMigration] {
        try sql("reading applied migrations from \(mysqlLocation)") { () throws(MySQLError) in
            guard try tableExists(Self.migrationsTable) else { return [] }
            return try connection.query(
                "SELECT version, name, checksum, applied_at FROM \(Self.quote(Self.migrationsTable)) ORDER BY version"
            ).map { row in
                AppliedMigration(
                    version: Int(row[0].intValue ?? 0), name: row[1].stringValue ?? "",
                    checksum: row[2].stringValue ?? "", appliedAt: row[3].stringValue ?? "")
            }
        }
    }

    public func pendingMigrations(_ all: [Migration]) throws(PluginDatabaseError) -> [Migration] {
        let applied = Dictionary(
            try appliedMigrations().map { ($0.version, $0) }, uniquingKeysWith: { first, _ in first })
        for migration in all {
            if let record = applied[migration.version], record.checksum != migration.checksum {
                throw .checksumMismatch(version: migration.version, name: migration.name, file: migration.file)
            }
        }
        return all.filter { applied[$0.version] == nil }.sorted { $0.version < $1.version }
    }

    /// Applies `pending` in order, each recorded in the ledger once its SQL ran. MySQL cannot undo
    /// DDL: a migration that fails leaves what it did so far, and the run's rollback renames the
    /// shadow tables back over it. With `confinement`, the account's grants must keep it inside the
    /// owned tables (checked first), so the server itself refuses any statement outside them.
    public func applyMigrations(
        _ pending: [Migration], now: Date, confinement: MigrationConfinement?, onApplied: (Migration) -> Void
    ) throws(PluginDatabaseError) {
        guard let first = pending.first else { return }
        try refuseWideGrants(confinement, migration: first)
        let appliedAt = SQLitePluginDatabase.timestamp(now)
        try sql("creating the migration ledger in \(mysqlLocation)") { () throws(MySQLError) in
            try connection.execute("""
                CREATE TABLE IF NOT EXISTS \(Self.quote(Self.migrationsTable))(
                    version INT NOT NULL PRIMARY KEY,
                    name VARCHAR(255) NOT NULL,
                    checksum CHAR(64) NOT NULL,
                    applied_at VARCHAR(32) NOT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
                """)
        }
        try runLedgered(pending) { migration throws(MySQLError) in
            try connection.execute(
                "INSERT INTO \(Self.quote(Self.migrationsTable))(version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                [.int(Int64(migration.version)), .text(migration.name), .text(migration.checksum), .text(appliedAt)])
            onApplied(migration)
        }
    }

    public func revertMigrations(
        _ migrations: [Migration], confinement: MigrationConfinement?
    ) throws(PluginDatabaseError) {
        guard let first = migrations.first else { return }
        var downs: [Migration] = []
        for migration in migrations {
            guard let down = migration.down else {
                throw .migrationFailed(migration: migration.fileName, line: nil, message: "it has no down migration")
            }
            downs.append(down)
        }
        try refuseWideGrants(confinement, migration: first)
        try runLedgered(downs) { migration throws(MySQLError) in
            try connection.execute(
                "DELETE FROM \(Self.quote(Self.migrationsTable)) WHERE version = ?", [.int(Int64(migration.version))])
        }
    }

    /// Runs each migration's SQL (the server parses it: several statements, compound ones too), then
    /// `step` for it, with the change capture paused for this session only: a migration's own writes
    /// are not live traffic, and live writers keep being recorded meanwhile.
    private func runLedgered(
        _ migrations: [Migration], step: (Migration) throws(MySQLError) -> Void
    ) throws(PluginDatabaseError) {
        let before: Set<String>
        do {
            before = Set(try baseTables())
            try connection.execute("SET @molam_capture_paused = 1")
        } catch {
            throw .mysql(error, context: "applying migrations to \(mysqlLocation)")
        }
        defer { _ = try? connection.execute("SET @molam_capture_paused = NULL") }
        for migration in migrations {
            do {
                try connection.executeScript(migration.sql)
            } catch {
                let statement = error.statementIndex.map { "statement \($0): " } ?? ""
                throw .migrationFailed(
                    migration: migration.fileName, line: nil,
                    message: "\(statement)\(error.message) (error \(error.number), \(mysqlLocation))")
            }
            do {
                try step(migration)
                try FaultInjection.hit("between-migrations")
            } catch let error as MySQLError {
                throw .mysql(error, context: "recording migration \(migration.fileName) in \(mysqlLocation)")
            } catch {
                throw .migrationFailed(migration: migration.fileName, line: nil, message: "\(error)")
            }
        }
        do {
            try captureNewTables(before: before)
        } catch {
            throw .mysql(error, context: "recording live writes to the tables the migrations created")
        }
    }

    /// Refuses, before anything runs, migrations under an account that could write outside what the
    /// plugin owns, unless the operator allowed it (`allow_wide_grants`).
    private func refuseWideGrants(_ confinement: MigrationConfinement?, migration: Migration) throws(PluginDatabaseError) {
        guard let confinement, let problem = try confinementProblem(confinement) else { return }
        throw .migrationDenied(migration: migration.fileName, statement: 0, sql: "", reason: problem)
    }

    public func confinementProblem(_ confinement: MigrationConfinement) throws(PluginDatabaseError) -> String? {
        guard !confinement.allowWideGrants else { return nil }
        let allowed = Set((confinement.owned + confinement.creatable).map { $0 })
        let site = siteDatabase ?? database
        let wide = try sql("reading the grants of \(endpoint.user) on \(mysqlLocation)") { () throws(MySQLError) -> String? in
            if let wide = try MySQLGrants.current(connection).firstWrite(outside: allowed, database: site) {
                return wide
            }
            return try MySQLGrants.serverAllowedWrite(connection, database: site, allowed: allowed)
        }
        guard let wide else { return nil }
        return "the database account \(endpoint.user) \(wide), so the server cannot keep the migrations inside "
            + "the tables \(confinement.plugin) owns; give the agent an account with the grants "
            + "`molam-upgrade grants` prints, or set allow_wide_grants (--allow-wide-grants)"
    }

    // MARK: Smoke checks

    /// One query on its own connection, in a read-only session (MySQL refuses every write and DDL in
    /// it), prepared first so that a statement that returns no rows (`SELECT … INTO OUTFILE`) is
    /// refused before it runs, and stopped by the server after `timeoutSeconds`.
    public func smokeQuery(_ sql: String, timeoutSeconds: Double) throws(PluginDatabaseError) -> String {
        do {
            let reader = try MySQLConnection(endpoint)
            defer { reader.close() }
            try reader.execute("SET SESSION TRANSACTION READ ONLY")
            let seconds = max(timeoutSeconds, 0.001)
            // MariaDB's name, then MySQL's.
            if (try? reader.execute("SET SESSION max_statement_time = \(seconds)")) == nil {
                _ = try? reader.execute("SET SESSION MAX_EXECUTION_TIME = \(Int(seconds * 1000))")
            }
            guard try reader.resultColumnCount(of: sql) > 0 else {
                throw PluginDatabaseError.smokeRefused(query: sql, reason: "it returns no rows")
            }
            try reader.execute("START TRANSACTION READ ONLY")
            let rows = try reader.query(sql)
            _ = try? reader.execute("ROLLBACK")
            guard let first = rows.first, !first.values.isEmpty else { return "NULL" }
            return first[0].isNull ? "NULL" : first[0].description
        } catch let error as PluginDatabaseError {
            throw error
        } catch let error as MySQLError {
            // 1969 (MariaDB) and 3024 (MySQL): the statement ran out of time.
            if error.number == 1969 || error.number == 3024 { throw .timeout(query: sql, seconds: timeoutSeconds) }
            if error.number == 1792 {
                throw .smokeRefused(query: sql, reason: "it writes, and a smoke check is read-only")
            }
            throw .mysql(error, context: "SQL smoke check on \(mysqlLocation)")
        } catch {
            throw .smokeRefused(query: sql, reason: "\(error)")
        }
    }

    /// A dry run's scratch database on the same server, `molam_scratch_<pid>_<n>`, holding copies of
    /// `tables` under their own names (so the migrations run as written), dropped when the returned
    /// object goes.
    public func scratchCopy(of tables: [String], in directory: String) throws(PluginDatabaseError) -> any PluginDatabase {
        let scratch = "molam_scratch_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        let names = try Self.validatedTableNames(tables)
        let context = "copying the plugin's tables into scratch database \(scratch)"
        try sql(context) { () throws(MySQLError) in
            try connection.execute("CREATE DATABASE \(Self.quote(scratch)) DEFAULT CHARACTER SET utf8mb4")
        }
        do {
            for table in names where try tableExists(table) {
                try connection.execute("CREATE TABLE \(Self.quote(scratch)).\(Self.quote(table)) LIKE \(Self.quote(table))")
                try connection.execute(
                    "INSERT INTO \(Self.quote(scratch)).\(Self.quote(table)) SELECT * FROM \(Self.quote(table))")
            }
            var location = mysqlLocation
            location.database = scratch
            var endpoint = self.endpoint
            endpoint.database = scratch
            let copy = try MySQLPluginDatabase(location: location, endpoint: endpoint)
            copy.ownedScratchDatabase = scratch
            copy.siteDatabase = siteDatabase ?? database
            return copy
        } catch {
            _ = try? connection.execute("DROP DATABASE IF EXISTS \(Self.quote(scratch))")
            throw Self.unexpected(error, context: context)
        }
    }

    // MARK: Helpers

    static func quote(_ identifier: String) -> String { MySQLConnection.quoteIdentifier(identifier) }

    @discardableResult
    func sql<T>(_ context: @autoclosure () -> String, _ body: () throws(MySQLError) -> T) throws(PluginDatabaseError) -> T {
        do { return try body() } catch { throw .mysql(error, context: context()) }
    }

    static func unexpected(_ error: any Error, context: String) -> PluginDatabaseError {
        switch error {
        case let error as PluginDatabaseError: return error
        case let error as MySQLError: return .mysql(error, context: context)
        case let error as SystemError: return .io(error)
        default: return .credentials("\(context): \(error)")
        }
    }

    /// Owned table names: non-empty, at most 64 characters (MySQL's limit), not the agent's own;
    /// duplicates removed, order kept (names are case-sensitive on Linux).
    static func validatedTableNames(_ names: [String]) throws(PluginDatabaseError) -> [String] {
        var result: [String] = []
        for name in names {
            guard !name.isEmpty, name.utf8.count <= 64, !name.contains("\0"), !name.hasSuffix(" "),
                  !name.lowercased().hasPrefix("_molam_")
            else { throw .invalidTableName(name) }
            if !result.contains(name) { result.append(name) }
        }
        return result
    }
}
