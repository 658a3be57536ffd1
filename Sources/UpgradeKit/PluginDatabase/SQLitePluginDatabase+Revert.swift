import Foundation
import MolamSQLite

/// Going back after a commit without losing rows: the releases' down migrations, and, only when the
/// operator asks, the backup's tables with the rows written since kept aside.
extension SQLitePluginDatabase {
    /// The authorizer confines every migration: nothing to refuse.
    public func confinementProblem(_ confinement: MigrationConfinement) throws(PluginDatabaseError) -> String? { nil }

    /// Runs each migration's down SQL, in the order given (newest first), under `confinement`, and
    /// takes it out of the ledger; all in one transaction, all or nothing.
    public func revertMigrations(
        _ migrations: [Migration], confinement: MigrationConfinement?
    ) throws(PluginDatabaseError) {
        guard !migrations.isEmpty else { return }
        var downs: [Migration] = []
        for migration in migrations {
            guard let down = migration.down else {
                throw .migrationFailed(migration: migration.fileName, line: nil, message: "it has no down migration")
            }
            downs.append(down)
        }
        try runLedgered(downs, confinement: confinement, ledger: { migration in
            try connection.run(
                "DELETE FROM main.molam_schema_migrations WHERE version = ?", [.integer(Int64(migration.version))])
        })
    }

    /// The rows of `table`s that differ from the table backup in `file` (written or changed since),
    /// copied into `_molam_quarantine_<table>`; how many per table. Nothing is removed here.
    public func quarantineRowsSince(
        backup file: String, tables: [String], keep: Bool
    ) throws(PluginDatabaseError) -> [String: Int] {
        let context = "keeping the rows written since \(file) in \(path)"
        do {
            try connection.attach(path: file, as: "molam_backup")
        } catch {
            throw .sqlite(error, context: context)
        }
        defer { try? connection.detach("molam_backup") }
        do {
            return try connection.transaction(.immediate) { () throws -> [String: Int] in
                var kept: [String: Int] = [:]
                for table in try Self.validatedTableNames(tables) {
                    let inBackup = try TableColumns.insertable(connection, schema: "molam_backup", table: table)
                    let live = try TableColumns.insertable(connection, schema: "main", table: table)
                    guard !live.isEmpty, try connection.scalar(
                        "SELECT wr FROM pragma_table_list(?) WHERE schema = 'main'", [.text(table)])?.intValue == 0
                    else { continue }
                    let quoted = SQLiteConnection.quoteIdentifier(table)
                    let common = live.filter { column in inBackup.contains { $0.lowercased() == column.lowercased() } }
                    let list = ["rowid"] + common.map(SQLiteConnection.quoteIdentifier)
                    let changed = inBackup.isEmpty
                        ? "SELECT rowid FROM main.\(quoted)"
                        : "SELECT rowid FROM (SELECT \(list.joined(separator: ", ")) FROM main.\(quoted) EXCEPT "
                            + "SELECT \(list.joined(separator: ", ")) FROM molam_backup.\(quoted))"
                    let count = Int(try connection.scalar("SELECT count(*) FROM (\(changed))")?.intValue ?? 0)
                    guard count > 0 else { continue }
                    kept[table] = count
                    guard keep else { continue }
                    try quarantine(table, where: "rowid IN (\(changed))", [], reason: "written since the backup restored")
                }
                return kept
            }
        } catch let error as PluginDatabaseError {
            throw error
        } catch {
            throw Self.unexpected(error, context: context)
        }
    }
}

extension Migration {
    /// The down migration as a migration of its own (its SQL, its file), nil when there is none.
    var down: Migration? {
        downSQL.map {
            Migration(version: version, name: name, sql: $0, checksum: checksum,
                      file: String(file.dropLast(".sql".count)) + ".down.sql")
        }
    }
}
