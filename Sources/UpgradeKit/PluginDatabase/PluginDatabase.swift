import Foundation

/// The plugin's database as the pipeline sees it, whatever engine holds it (DESIGN.md "Rows").
///
/// One implementation per engine, chosen by `PluginDatabases.open` from the DSN; nothing outside
/// this folder (and `Config/`, which parses DSNs) knows which engine it talks to. The model is
/// SwiftPM's `Archiver` protocol and its format-dispatching `UniversalArchiver`.
///
/// The table backup is a contract in two halves: `backupTables` prepares, before the risky window,
/// everything a restore will need (today a backup file of the engine's own format; shadow tables in
/// the same database next), and `restoreTables` is all that runs inside the window.
///
/// Not Sendable: an implementation owns a connection, used from one thread at a time.
public protocol PluginDatabase: AnyObject {
    /// Where it is, for messages.
    var location: DatabaseLocation { get }
    /// How long a statement waits for a lock the site holds before it fails.
    var busyTimeoutSeconds: Double { get set }

    // MARK: Migrations
    /// Tables that exist now, by name.
    func existingTables() throws(PluginDatabaseError) -> Set<String>
    /// The migration ledger (`molam_schema_migrations`), oldest first.
    func appliedMigrations() throws(PluginDatabaseError) -> [AppliedMigration]
    /// The migrations of `all` not in the ledger yet; refuses a ledger that disagrees with them.
    func pendingMigrations(_ all: [Migration]) throws(PluginDatabaseError) -> [Migration]
    /// Applies `pending` in order, under `confinement` when given; `onApplied` runs once per migration
    /// that stuck, so callers journal only what the database kept.
    func applyMigrations(
        _ pending: [Migration], now: Date, confinement: MigrationConfinement?, onApplied: (Migration) -> Void
    ) throws(PluginDatabaseError)

    /// Why `confinement` cannot be enforced on this database for migrations, nil when it can (SQLite's
    /// authorizer always can; MySQL needs an account whose grants stop at the owned tables).
    func confinementProblem(_ confinement: MigrationConfinement) throws(PluginDatabaseError) -> String?

    /// Reverts `migrations` (newest first) with their down SQL under `confinement`, taking each out
    /// of the ledger; all or nothing.
    func revertMigrations(_ migrations: [Migration], confinement: MigrationConfinement?) throws(PluginDatabaseError)

    // MARK: Backup and restore
    /// Copies exactly `tables` (schema, indexes, triggers, rows) into `file`, which must not exist,
    /// durably, as one consistent snapshot; tables that do not exist are recorded so a restore drops them.
    func backupTables(_ tables: [String], to file: String) throws(PluginDatabaseError) -> TableBackupSummary
    /// Checks a file `backupTables` wrote before anything relies on it.
    func verifyTableBackup(at file: String) throws(PluginDatabaseError) -> TableBackupSummary
    /// Puts the tables of `file` back, all or nothing, and drops those it recorded as absent and
    /// `alsoDrop`; never touches a table `mayTouch` refuses.
    func restoreTables(
        from file: String, alsoDrop: [String], mayTouch: (String) -> Bool
    ) throws(PluginDatabaseError) -> TableRestoreSummary

    /// Counts the rows of `tables` that differ from the table backup `backup` (written or changed
    /// since) and, with `keep`, copies them into `_molam_quarantine_<table>` before a restore from
    /// that backup; how many per table.
    func quarantineRowsSince(
        backup: String, tables: [String], keep: Bool
    ) throws(PluginDatabaseError) -> [String: Int]

    // MARK: Rows written during the window (DESIGN.md "Rows")
    /// Copies `tables` into shadow tables of the same database, before the window, and from then on
    /// records which rows live traffic changes in them. Replaces any shadows left from before.
    func prepareShadows(_ tables: [String]) throws(PluginDatabaseError) -> ShadowSummary
    /// Whether shadows are prepared: a run in progress, or one a crash interrupted.
    func hasShadows() throws(PluginDatabaseError) -> Bool
    /// The first half of the rollback's table restore, before its window: the rows changed so far
    /// merged into the shadows, so that `restoreShadows` only has what changes after this to merge.
    func prepareShadowRestore(mayTouch: (String) -> Bool) throws(PluginDatabaseError) -> ShadowRestoreSummary

    /// The rollback's table restore: the changed rows merged into the shadows by key (columns by
    /// name; rows the old schema cannot take quarantined, never dropped), `alsoDrop` tables' rows
    /// quarantined and the tables dropped, and the shadows put in place in one transaction. Its cost
    /// grows with the rows changed, not with the tables.
    func restoreShadows(
        alsoDrop: [String], mayTouch: (String) -> Bool
    ) throws(PluginDatabaseError) -> ShadowRestoreSummary
    /// Drops, a chunk of rows at a time, the tables `restoreShadows` set aside: after the window.
    func dropRetiredTables() throws(PluginDatabaseError)
    /// Stops recording changes and drops the shadows: the run committed, or never changed the schema.
    func discardShadows() throws(PluginDatabaseError)

    // MARK: Checks
    /// One read-only query, in a read-only session, ended after `timeoutSeconds`: the first column of
    /// the first row as text, "NULL" when there is none.
    func smokeQuery(_ sql: String, timeoutSeconds: Double) throws(PluginDatabaseError) -> String
    /// A scratch database holding copies of `tables`, made inside `directory` (the run's private work
    /// folder), for a dry run's migrations. It goes with that folder.
    func scratchCopy(of tables: [String], in directory: String) throws(PluginDatabaseError) -> any PluginDatabase
}

extension PluginDatabase {
    public func applyMigrations(
        _ pending: [Migration], now: Date, confinement: MigrationConfinement? = nil
    ) throws(PluginDatabaseError) {
        try applyMigrations(pending, now: now, confinement: confinement, onApplied: { _ in })
    }

    public func restoreTables(from file: String, alsoDrop: [String] = []) throws(PluginDatabaseError) -> TableRestoreSummary {
        try restoreTables(from: file, alsoDrop: alsoDrop, mayTouch: { _ in true })
    }
}

/// Opens the plugin database a DSN names, with the engine it names: the one place that maps a
/// `DatabaseLocation` to an implementation, exhaustively.
public enum PluginDatabases {
    public static func open(_ location: DatabaseLocation) throws(PluginDatabaseError) -> any PluginDatabase {
        switch location {
        case .sqlite(let path): try SQLitePluginDatabase(path: path)
        case .mysql(let location): try MySQLPluginDatabase(location: location)
        }
    }

    /// Where the rows a rollback could not put back are kept, as JSON, with why: never dropped.
    public static func quarantineTable(for table: String) -> String { "_molam_quarantine_" + table }

    /// Table name prefixes the engines keep for themselves: never a plugin's to own or to cover.
    public static let reservedTablePrefixes: [(prefix: String, owner: String)] = [("sqlite_", "SQLite's own")]
}
