import MolamSQLite

/// What a release's migrations may touch: writes and DDL on `owned` tables, CREATE of `creatable`
/// ones only (see `TableOwnership.migrationTables`). Enforced by SQLite's authorizer.
public struct MigrationConfinement: Sendable, Equatable {
    /// The plugin's name, for messages ("wp_options is not a table molam-form owns").
    public let plugin: String
    public let owned: [String]
    public let creatable: [String]
    /// `allow_wide_grants`: on MySQL, migrations may run under an account whose grants reach beyond
    /// the owned tables (the operator said so); SQLite's authorizer confines them either way.
    public var allowWideGrants: Bool

    public init(plugin: String, owned: [String], creatable: [String], allowWideGrants: Bool = false) {
        self.plugin = plugin
        self.owned = owned
        self.creatable = creatable
        self.allowWideGrants = allowWideGrants
    }

    var policy: SQLiteAccessPolicy {
        SQLiteAccessPolicy(mode: .ownedWritesOnly, ownedTables: owned, creatableTables: creatable)
    }

    /// The denial as the end of one line: what was refused and why.
    func explain(_ denial: SQLiteDenial) -> String {
        let via = denial.trigger.map { " (through trigger \($0))" } ?? ""
        let object = denial.object ?? "?"
        switch denial.reason {
        case .notOwned:
            return "\(object) is not a table \(plugin) owns\(via)"
        case .notDeclared:
            return "\(object) is not among the tables the release declares, so it may not be created\(via)"
        case .forbidden:
            let target = denial.object.map { " \($0)" } ?? ""
            return "\(denial.action)\(target) is not allowed in a migration\(via)"
        }
    }

    /// Every schema entry (type, name, table, SQL) that belongs to no owned table, as one string
    /// each: compared before and after a migration, so any change outside is caught whatever
    /// statement made it.
    func foreignSchema(_ connection: SQLiteConnection) throws(SQLiteError) -> Set<String> {
        let owned = Set(self.owned.map { $0.lowercased() } + [TableOwnership.ledgerTable])
        let rows = try connection.query("SELECT type, name, tbl_name, sql FROM main.sqlite_schema")
        var entries = Set<String>()
        for row in rows {
            let table = row[2].stringValue ?? ""
            let name = row[1].stringValue ?? ""
            // sqlite_sequence and sqlite_stat* come and go with owned tables' DDL.
            if owned.contains(table.lowercased()) || name.lowercased().hasPrefix("sqlite_") { continue }
            // "table t" or "index i on table t", then a NUL and the SQL: only the part before it goes
            // in messages.
            let type = row[0].stringValue ?? ""
            let label = type == "table" || name == table ? "\(type) \(name)" : "\(type) \(name) on table \(table)"
            entries.insert("\(label)\u{0}\(row[3].stringValue ?? "")")
        }
        return entries
    }
}
