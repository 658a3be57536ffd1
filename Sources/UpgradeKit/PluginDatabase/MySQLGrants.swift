import Foundation
import MolamMySQL

/// Confinement on MySQL is the server's: migrations run under an account whose grants reach the
/// plugin's tables only, so a statement outside them fails with the server's own "command denied".
/// This reads what the account may do (information_schema's privilege views, never SHOW GRANTS
/// text) to refuse a wider account before a migration runs, and writes the GRANT statements an
/// administrator runs once (`molam-upgrade grants`).
///
/// What the account could reach beyond its own grants counts too, since a release's migration may
/// `SET ROLE` or `CALL` as it likes: roles it may take (their privileges are not in the views it can
/// read, so any role is too wide), and routines it may run that execute with another account's
/// rights (`SQL SECURITY DEFINER`).
struct MySQLGrants {
    struct Grant {
        enum Level: Equatable {
            case global
            /// A database name pattern (`_` and `%` are wildcards, `\` escapes them).
            case schema(String)
            case table(schema: String, table: String)
            case column(schema: String, table: String, column: String)
        }
        var level: Level
        var privilege: String
    }
    var grants: [Grant]
    /// Roles the account may take (`information_schema.applicable_roles`, nested ones included).
    var roles: [String] = []
    /// Routines it may run that run as another account: `schema.name` and that account.
    var definerRoutines: [(routine: String, definer: String)] = []

    /// Privileges that change data, schema or server state.
    static let writing: Set<String> = [
        "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "TRIGGER", "CREATE VIEW",
        "CREATE ROUTINE", "ALTER ROUTINE", "EXECUTE", "EVENT", "REFERENCES", "FILE", "SUPER", "CREATE USER",
        "CREATE TABLESPACE", "GRANT OPTION", "DELETE HISTORY", "SHUTDOWN", "RELOAD", "BINLOG ADMIN",
        "REPLICATION MASTER ADMIN", "REPLICA MONITOR", "CONNECTION ADMIN", "READ_ONLY ADMIN", "SET USER",
        "FEDERATED ADMIN",
    ]
    /// Database name patterns the agent's dry runs use for their scratch copies.
    static let scratchPattern = "molam\\_scratch\\_%"

    /// The grants of the account this connection authenticated as.
    static func current(_ connection: MySQLConnection) throws(MySQLError) -> MySQLGrants {
        let grantee = """
            CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')
            """
        var grants: [Grant] = []
        for row in try connection.query(
            "SELECT privilege_type FROM information_schema.user_privileges WHERE grantee = \(grantee)") {
            grants.append(Grant(level: .global, privilege: row[0].stringValue ?? ""))
        }
        for row in try connection.query(
            "SELECT table_schema, privilege_type FROM information_schema.schema_privileges WHERE grantee = \(grantee)") {
            grants.append(Grant(level: .schema(row[0].stringValue ?? ""), privilege: row[1].stringValue ?? ""))
        }
        for row in try connection.query("""
            SELECT table_schema, table_name, privilege_type FROM information_schema.table_privileges
            WHERE grantee = \(grantee)
            """) {
            grants.append(Grant(
                level: .table(schema: row[0].stringValue ?? "", table: row[1].stringValue ?? ""),
                privilege: row[2].stringValue ?? ""))
        }
        for row in try connection.query("""
            SELECT table_schema, table_name, column_name, privilege_type FROM information_schema.column_privileges
            WHERE grantee = \(grantee)
            """) {
            grants.append(Grant(
                level: .column(
                    schema: row[0].stringValue ?? "", table: row[1].stringValue ?? "", column: row[2].stringValue ?? ""),
                privilege: row[3].stringValue ?? ""))
        }
        var roles: [String] = []
        do {
            roles = try connection.query("SELECT DISTINCT role_name FROM information_schema.applicable_roles ORDER BY 1")
                .map { $0[0].stringValue ?? "" }
        } catch where error.number == 1109 {
            // MySQL before 8.0.19 has no such view, and MySQL 5.7 no roles.
        }
        // The view lists the routines this account may run (or alter); definers are `user@host`, as
        // CURRENT_USER() reads.
        let routines = try connection.query("""
            SELECT routine_schema, routine_name, definer FROM information_schema.routines
            WHERE security_type = 'DEFINER' AND definer <> CURRENT_USER() ORDER BY 1, 2
            """).map { (routine: "\($0[0].stringValue ?? "").\($0[1].stringValue ?? "")", definer: $0[2].stringValue ?? "") }
        return MySQLGrants(grants: grants, roles: roles, definerRoutines: routines)
    }

    /// Whether the agent may write `table` of the site's database: the plugin's tables (`allowed`),
    /// the agent's own beside them and the ledger.
    static func mayWrite(_ table: String, allowed: Set<String>) -> Bool {
        allowed.contains(table) || table.hasPrefix("_molam_") || table == TableOwnership.ledgerTable
    }

    /// The first way the server itself would let this account write `database` outside `allowed`,
    /// asked by preparing (never running) a DELETE and an INSERT on each of its other tables and a
    /// CREATE TABLE of a name no plugin owns: grants to PUBLIC (MariaDB 10.11) and roles in use do not
    /// show in the privilege views, and the server is the judge of what it allows.
    static func serverAllowedWrite(
        _ connection: MySQLConnection, database: String, allowed: Set<String>
    ) throws(MySQLError) -> String? {
        let db = MySQLPluginDatabase.quote(database)
        let tables = try connection.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [.text(database)]
        ).compactMap { $0[0].stringValue }
        for table in tables where !mayWrite(table, allowed: allowed) {
            let name = "\(db).\(MySQLPluginDatabase.quote(table))"
            for statement in ["DELETE FROM \(name)", "INSERT INTO \(name) () VALUES ()"] {
                if try accepts(connection, statement) {
                    return "may write \(database).\(table) (the server accepts `\(statement)`)"
                }
            }
        }
        if try accepts(connection, "CREATE TABLE \(db).`molam_confinement_probe` (i INT)") {
            return "may create any table in \(database)"
        }
        return nil
    }

    /// Whether the server prepares `statement` for this account. Its refusal (no privilege, a view it
    /// cannot update) is an answer; losing the connection (the client library's errors, 2000–2999) is not.
    private static func accepts(_ connection: MySQLConnection, _ statement: String) throws(MySQLError) -> Bool {
        do {
            try connection.prepareOnly(statement)
            return true
        } catch where (2000..<3000).contains(error.number) {
            throw error
        } catch {
            return false
        }
    }

    /// How the account can write outside `allowed` (and the agent's own `_molam_` tables, the ledger
    /// and scratch databases), as the end of a sentence; nil when it cannot.
    func firstWrite(outside allowed: Set<String>, database: String) -> String? {
        if let role = roles.first {
            return "may take the role \(role), whose privileges an account cannot read (a confined account holds no role)"
        }
        if let routine = definerRoutines.first {
            return "may run \(routine.routine), which runs with the rights of \(routine.definer)"
        }
        for grant in grants where Self.writing.contains(grant.privilege.uppercased()) {
            switch grant.level {
            case .global:
                return "holds the global privilege \(grant.privilege)"
            case .schema(let pattern):
                if pattern == Self.scratchPattern { continue }
                return "holds \(grant.privilege) on every table of the database \(pattern)"
            case .table(let schema, let table):
                if schema == database, Self.mayWrite(table, allowed: allowed) { continue }
                return "holds \(grant.privilege) on \(schema).\(table)"
            case .column(let schema, let table, let column):
                if schema == database, Self.mayWrite(table, allowed: allowed) { continue }
                return "holds \(grant.privilege) on the column \(column) of \(schema).\(table)"
            }
        }
        return nil
    }

    /// The statements an administrator runs once so that `account` (`'user'@'host'`) may upgrade the
    /// plugin owning `tables` in `database`, and nothing else: reads everywhere in the database, writes
    /// on the owned tables, the ledger and the agent's tables beside each, and scratch databases.
    static func statements(account: String, database: String, tables: [String]) -> [String] {
        let db = MySQLPluginDatabase.quote(database)
        var statements = [
            "GRANT SELECT, LOCK TABLES, SHOW VIEW ON \(db).* TO \(account);",
            "GRANT ALL PRIVILEGES ON `\(scratchPattern)`.* TO \(account);",
        ]
        let write = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, TRIGGER"
        var names = [MySQLPluginDatabase.registryTable]
        // The ledger is shadowed like the owned tables (`Pipeline.ownedTables`): its shadow too.
        for table in [TableOwnership.ledgerTable] + tables {
            names += [
                table, MySQLPluginDatabase.shadowName(table), MySQLPluginDatabase.changesName(table),
                MySQLPluginDatabase.retiredName(table), MySQLPluginDatabase.restoreName(table),
                PluginDatabases.quarantineTable(for: table),
            ]
        }
        for name in names where name.utf8.count <= 64 {
            statements.append("GRANT \(write) ON \(db).\(MySQLPluginDatabase.quote(name)) TO \(account);")
        }
        return statements
    }
}

extension Maintenance {
    /// The GRANT statements an administrator runs once so that `account` (`'user'@'host'`; by default
    /// the configured user at localhost) may upgrade the install: the tables its installed manifest
    /// owns, `extraTables` (a coming release's new ones), and the agent's tables beside them.
    public static func grantStatements(
        context: UpgradeContext, account: String?, extraTables: [String]
    ) throws(UpgradeError) -> [String] {
        guard case .mysql(let location) = context.site.database else {
            throw .configuration(
                "grants: \(context.site.database) is not a MySQL database; SQLite migrations are confined by SQLite itself")
        }
        let manifest: PluginManifest
        do {
            manifest = try PluginManifest.load(pluginDirectory: try LiveTree.directory(of: context.site.pluginDirectory))
                .resolvingTables(prefix: context.site.tablePrefix)
        } catch {
            throw .configuration("installed plugin: \(error)")
        }
        let extra = extraTables.map { $0.replacing("{prefix}", with: context.site.tablePrefix) }
        var tables: [String] = []
        for table in manifest.tables + extra where !tables.contains(table) {
            if let reason = TableOwnership.protectionReason(table, sitePrefix: context.site.tablePrefix) {
                throw .configuration("grants: \(table) cannot be a plugin's table: \(reason)")
            }
            tables.append(table)
        }
        let host = location.host == "localhost" || location.host == "127.0.0.1" ? location.host : "%"
        let grantee = account ?? "'\(location.user.replacing("'", with: "''"))'@'\(host)'"
        return MySQLGrants.statements(account: grantee, database: location.database, tables: tables)
    }
}
