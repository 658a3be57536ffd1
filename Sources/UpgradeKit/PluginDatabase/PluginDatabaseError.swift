import MolamMySQL
import MolamSQLite

/// Why a plugin database operation failed; each reads as one line naming the file, table or
/// migration involved.
public enum PluginDatabaseError: Error, CustomStringConvertible, Sendable {
    case sqlite(SQLiteError, context: String)
    case mysql(MySQLError, context: String)
    /// The database's password could not be read (password file, wp-config.php).
    case credentials(String)
    /// A `sql` smoke check the engine refused before running it (MySQL: it writes, or returns no rows).
    case smokeRefused(query: String, reason: String)
    case missingDatabase(path: String)
    /// Migration files must be named `NNNN_name.sql` (or `NNNN_name.down.sql`), name in [a-z0-9_].
    case invalidMigrationName(file: String)
    case duplicateMigrationVersion(Int, files: [String])
    case checksumMismatch(version: Int, name: String, file: String)
    case migrationFailed(migration: String, line: Int?, message: String)
    /// SQLite's authorizer refused a statement of a migration (statement 0: the migration as a whole).
    case migrationDenied(migration: String, statement: Int, sql: String, reason: String)
    /// A `sql` smoke check tried something a read-only check may not.
    case smokeDenied(query: String, denial: SQLiteDenial)
    case backupExists(path: String)
    case invalidBackup(path: String, reason: String)
    /// A table the rename restore cannot handle; the run falls back to the backup file's restore.
    case shadowUnsupported(table: String, reason: String)
    case invalidTableName(String)
    case timeout(query: String, seconds: Double)
    case io(SystemError)

    public var description: String {
        switch self {
        case .sqlite(let error, let context):
            return "\(context): \(error)"
        case .mysql(let error, let context):
            return "\(context): \(error)"
        case .credentials(let message):
            return message
        case .smokeRefused(let query, let reason):
            return "SQL smoke check '\(SQLiteError.abbreviate(query, limit: 60))' refused: \(reason)"
        case .missingDatabase(let path):
            return "plugin database \(path) does not exist; check the database path in the configuration"
        case .invalidMigrationName(let file):
            return "migration file \(file) is not named NNNN_name.sql (name: lowercase letters, digits, _)"
        case .duplicateMigrationVersion(let version, let files):
            return "migration version \(Migration.paddedVersion(version)) is used by several files: "
                + files.joined(separator: ", ")
        case .checksumMismatch(let version, let name, let file):
            return "migration \(Migration.paddedVersion(version))_\(name) was already applied but \(file) "
                + "has changed since; restore the original file and put changes in a new migration"
        case .migrationFailed(let migration, let line, let message):
            if let line { return "migration \(migration) failed at line \(line): \(message)" }
            return "migration \(migration) failed: \(message)"
        case .migrationDenied(let migration, let statement, let sql, let reason):
            if statement == 0 { return "migration \(migration) denied: \(reason)" }
            return "migration \(migration): statement \(statement) '\(sql)' denied: \(reason)"
        case .smokeDenied(let query, let denial):
            return "SQL smoke check '\(SQLiteError.abbreviate(query, limit: 60))' denied: \(denial.action)"
                + (denial.object.map { " \($0)" } ?? "") + " is not allowed in a read-only check"
        case .backupExists(let path):
            return "table backup \(path) already exists; refusing to overwrite it"
        case .invalidBackup(let path, let reason):
            return "table backup \(path) cannot be relied on: \(reason)"
        case .invalidTableName(let name):
            return "invalid plugin table name \"\(name)\""
        case .shadowUnsupported(let table, let reason):
            return "table \(table) cannot have a shadow table: \(reason)"
        case .timeout(let query, let seconds):
            return "SQL smoke check timed out after \(seconds) s: \(query)"
        case .io(let error):
            return error.description
        }
    }
}
