import Foundation
import MolamCrypto
import MolamMySQL
import Testing
import TestSupport
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The built binary against a real MariaDB (the private server of `MariaDBTestServer`): upgrades
/// with migrations on a site whose table prefix is `shop9_`, failed upgrades rolled back with live
/// orders written throughout, operator and fleet rollbacks, credentials from wp-config.php that
/// never leak, confinement by the server's grants, and dry runs that leave nothing behind.
@Suite("MySQL end to end", .enabled(if: MariaDBTestServer.isAvailable, "needs mariadb-server"))
struct MySQLEndToEndTests {
    static let addCurrency = """
        ALTER TABLE {prefix}molam_orders ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'XOF';
        UPDATE {prefix}molam_orders SET currency = 'EUR' WHERE amount_minor > 1000;

        """
    static let dropCurrency = "ALTER TABLE {prefix}molam_orders DROP COLUMN currency;\n"
    /// Its first statement adds the column, its second names a column that does not exist.
    static let brokenCurrency = """
        ALTER TABLE {prefix}molam_orders ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'XOF';
        UPDATE {prefix}molam_orders SET curency = 'EUR' WHERE amount_minor > 1000;

        """

    static let rootWide = ["--allow-wide-grants"]

    /// A 0600 password file for `--db-password-file`.
    static func passwordFile(_ site: MySQLSite, _ password: String) throws -> String {
        let path = site.site.root + "/db-password"
        guard FileManager.default.createFile(
            atPath: path, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else { throw TestFailure("cannot write \(path)") }
        return path
    }

    /// The database options for a confined account reached with a password file.
    static func confined(_ site: MySQLSite, password: String = "pw-\(UUID().uuidString)") throws -> [String] {
        let user = try site.confinedAccount(password: password)
        return ["--db", "mysql://\(user)@localhost/\(site.database)?socket=\(site.server.socketPath)",
                "--db-password-file", try passwordFile(site, password), "--table-prefix", MySQLSite.prefix]
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// No shadow, change, retired or restore table and no capture trigger left in the database.
    static func expectNoLeftovers(_ site: MySQLSite, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let leftovers = try site.leftovers()
        #expect(leftovers.isEmpty, "left over: \(leftovers)", sourceLocation: sourceLocation)
    }

    /// The site's fingerprint is `before`; a failure lists the lines that differ.
    static func expectUnchanged(
        _ site: MySQLSite, _ before: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let after = try site.fingerprint()
        let old = before.split(separator: "\n"), new = after.split(separator: "\n")
        let gone = old.filter { !new.contains($0) }, added = new.filter { !old.contains($0) }
        #expect(after == before, "before only: \(gone)\nafter only: \(added)", sourceLocation: sourceLocation)
    }

    @Test("a good upgrade with a {prefix} migration: column added, ledgered, nothing left over, dump backed up")
    func goodUpgrade() throws {
        let site = try MySQLSite(hint: "good")
        let outside = try site.outside()
        let database = try Self.confined(site)
        let release = try site.release("1.1.0", migrations: ["0002_currency.sql": Self.addCurrency])
        let result = try site.upgrade(release, database: database)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try site.site.installedVersion() == "1.1.0")
        #expect(try site.columns(MySQLSite.orders).contains("currency"))
        #expect(try site.count("SELECT count(*) FROM shop9_molam_orders WHERE currency = 'EUR'") == 29)
        let ledger = try site.ledger()
        #expect(ledger.count == 2)
        let checksum = try SHA256.hexDigest(of: Data(Self.addCurrency.utf8))
        #expect(ledger.last?.hasPrefix("2 currency \(checksum) ") == true, "\(ledger)")
        try Self.expectNoLeftovers(site)
        #expect(try site.outside() == outside)

        let backups = try site.backupDirectories()
        #expect(backups.count == 1, "\(backups)")
        let dump = try String(contentsOfFile: try #require(backups.first) + "/tables.db", encoding: .utf8)
        #expect(dump.split(separator: "\n").first?.hasPrefix("-- molam-upgrade MySQL table dump") == true,
                "\(dump.prefix(200))")
        #expect(dump.contains(MySQLSite.orders) && dump.contains("seed-39"))
        #expect(!dump.contains("currency"), "the dump is of the tables before the migration")
    }

    @Test("a migration failing half way: exit 1, the schema, rows and ledger exactly as before, nothing left over")
    func failingMigration() throws {
        let site = try MySQLSite(hint: "halfway")
        let before = try site.fingerprint()
        let counter = try site.autoIncrement()
        let tree = try TreeSnapshot.take(site.pluginDirectory)
        let release = try site.release("1.1.0", migrations: ["0002_currency.sql": Self.brokenCurrency])
        let result = try site.upgrade(release, extra: Self.rootWide)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("0002_currency.sql") && result.stderr.contains("curency"),
                "\(result.stderr)")
        try Self.expectUnchanged(site, before)
        // The counter only ever moves on: the next order gets an id no order had.
        #expect(try site.autoIncrement() >= counter)
        try site.admin.execute("INSERT INTO shop9_molam_orders(order_ref, amount_minor) VALUES ('next', 1)")
        #expect(try site.count("SELECT id FROM shop9_molam_orders WHERE order_ref = 'next'") >= counter)
        #expect(try TreeSnapshot.take(site.pluginDirectory) == tree)
        try Self.expectNoLeftovers(site)
    }

    @Test("a failing smoke check with orders written every millisecond: rolled back, not one order lost")
    func failingSmokeKeepsOrders() throws {
        let site = try MySQLSite(hint: "smoke_rows", rows: 3000)
        let showCreate = try site.showCreate(MySQLSite.orders)
        let ledger = try site.ledger()
        // The smoke check says it started (after the swap and the migration), then waits for the test's go.
        let smoke = """
            #!/bin/sh
            [ "$MOLAM_CHECK_PHASE" = "after_swap" ] || exit 0
            site="$MOLAM_PLUGIN_DIR/../../.."
            : > "$site/smoke.started"
            i=0
            while [ ! -e "$site/smoke.go" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done
            echo 'molam: gateway refused a test charge' >&2
            exit 1

            """
        let release = try site.release(
            "1.1.0", migrations: ["0002_currency.sql": Self.addCurrency], smokeScript: smoke)
        let writer = MySQLOrderWriter(
            endpoint: MySQLEndpoint(socket: site.server.socketPath, user: "root", database: site.database))
        #expect(writer.waitForMore(20))
        let atStart = writer.count
        let tool = try startTool(
            ["upgrade", "--json", "--archive", release.path, "--sha256", release.sha256] + Self.rootWide
                + site.options())
        let started = waitUntil(timeout: 60) {
            FileManager.default.fileExists(atPath: site.site.root + "/smoke.started") || tool.hasExited
        }
        #expect(started && FileManager.default.fileExists(atPath: site.site.root + "/smoke.started"))
        // Orders written under the new schema, between the migration and the rollback.
        #expect(writer.waitForMore(30))
        #expect(try site.columns(MySQLSite.orders).contains("currency"))
        _ = FileManager.default.createFile(atPath: site.site.root + "/smoke.go", contents: nil)
        let result = try tool.wait()
        #expect(writer.waitForMore(20), "the shop could not write after the rollback")
        let (acknowledged, failures) = writer.stop()

        #expect(result.status == 1, "\(result.stderr)")
        #expect(try Self.json(result.stdout)["rollback_status"] as? String == "success", "\(result.stdout)")
        #expect(failures.isEmpty, "the shop's writes failed: \(failures.prefix(3))")
        #expect(acknowledged.count - atStart > 50, "too few orders written during the run")
        let present = try site.orderReferences()
        let lost = acknowledged.filter { !present.contains($0) }
        #expect(lost.isEmpty, "\(lost.count) of \(acknowledged.count) acknowledged orders lost")
        #expect(try site.count("SELECT count(*) FROM shop9_molam_orders WHERE order_ref LIKE 'seed-%'") == 3000)
        #expect(try site.showCreate(MySQLSite.orders).withoutAutoIncrement
                    == showCreate.withoutAutoIncrement)
        #expect(try site.ledger() == ledger)
        try Self.expectNoLeftovers(site)
        #expect(try site.site.installedVersion() == "1.0.0")
    }

    @Test("operator rollback after a good upgrade: down migrations, orders written since kept, schema back")
    func operatorRollback() throws {
        let site = try MySQLSite(hint: "operator")
        let showCreate = try site.showCreate(MySQLSite.orders)
        let ledger = try site.ledger()
        let outside = try site.outside()
        let release = try site.release("1.1.0", migrations: [
            "0002_currency.sql": Self.addCurrency, "0002_currency.down.sql": Self.dropCurrency,
        ])
        let upgraded = try site.upgrade(release, extra: Self.rootWide)
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        try site.admin.execute("""
            INSERT INTO shop9_molam_orders(order_ref, amount_minor, currency) VALUES ('after-upgrade-1', 5, 'EUR')
            """)

        let writer = MySQLOrderWriter(
            endpoint: MySQLEndpoint(socket: site.server.socketPath, user: "root", database: site.database))
        #expect(writer.waitForMore(20))
        let result = try site.run(["rollback", "--json"] + Self.rootWide)
        #expect(writer.waitForMore(20))
        let (acknowledged, failures) = writer.stop()

        #expect(result.status == 0, "\(result.stderr)")
        let steps = (try Self.json(result.stdout)["steps"] as? [[String: Any]]) ?? []
        let migrate = steps.first { $0["name"] as? String == "migrate" }
        #expect((migrate?["detail"] as? String)?.contains("0002_currency.down.sql") == true, "\(migrate ?? [:])")
        #expect(try site.site.installedVersion() == "1.0.0")
        #expect(try site.showCreate(MySQLSite.orders).withoutAutoIncrement
                    == showCreate.withoutAutoIncrement)
        #expect(try site.ledger() == ledger)
        #expect(failures.isEmpty, "the shop's writes failed: \(failures.prefix(3))")
        let present = try site.orderReferences()
        #expect(present.contains("after-upgrade-1"))
        #expect(acknowledged.allSatisfy(present.contains))
        let tables = try site.tables()
        #expect(tables.filter { $0.hasPrefix("_molam_") }.isEmpty, "\(tables)")
        try Self.expectNoLeftovers(site)
        #expect(try site.outside() == outside)
    }

    @Test("operator rollback without a down migration: refused (exit 4); --restore-tables quarantines new rows")
    func rollbackWithoutDown() throws {
        let site = try MySQLSite(hint: "nodown")
        let showCreate = try site.showCreate(MySQLSite.orders)
        let ledger = try site.ledger()
        let release = try site.release("1.1.0", migrations: ["0002_currency.sql": Self.addCurrency])
        #expect(try site.upgrade(release, extra: Self.rootWide).status == 0)
        try site.admin.execute(
            "INSERT INTO shop9_molam_orders(order_ref, amount_minor, currency) VALUES ('late-1', 10, 'EUR')")
        let upgraded = try site.fingerprint()

        let refused = try site.run(["rollback"] + Self.rootWide)
        #expect(refused.status == 4, "\(refused.stderr)")
        #expect(refused.stderrLines.count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("--restore-tables") && refused.stderr.contains("would drop 1 row"),
                "\(refused.stderr)")
        #expect(try site.fingerprint() == upgraded)
        #expect(try site.site.installedVersion() == "1.1.0")

        let restored = try site.run(["rollback", "--restore-tables"] + Self.rootWide)
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(try site.site.installedVersion() == "1.0.0")
        #expect(try site.showCreate(MySQLSite.orders) == showCreate)
        #expect(try site.ledger() == ledger)
        #expect(!(try site.orderReferences().contains("late-1")))
        let quarantined = try site.admin.query("SELECT `row` FROM _molam_quarantine_shop9_molam_orders")
        #expect(quarantined.count == 1)
        #expect(quarantined.first?[0].stringValue?.contains("late-1") == true, "\(quarantined.map(\.values))")
        try Self.expectNoLeftovers(site)
    }

    @Test("a fleet rollback (rollout rolled_back) goes back through the down migrations and keeps every order")
    func fleetRollback() throws {
        let site = try MySQLSite(hint: "fleet")
        let host = try CentralAPISite()
        let showCreate = try site.showCreate(MySQLSite.orders)
        let key = try host.signingKey.publicKey.rawRepresentation.base64EncodedString()
        let config: [String: Any] = [
            "merchant_id": host.merchantID, "country": "SN", "tier": "gold", "api_url": host.api.baseURL,
            "token_file": host.tokenPath, "state_dir": site.stateDirectory,
            "release_public_keys": ["ed25519:" + key],
            "plugins": [[
                "name": MySQLSite.plugin, "plugin_dir": site.pluginDirectory, "db": site.rootDSN,
                "table_prefix": MySQLSite.prefix, "allow_wide_grants": true,
            ] as [String: Any]],
        ]
        unlink(host.configPath)
        #expect(FileManager.default.createFile(
            atPath: host.configPath, contents: try JSONSerialization.data(withJSONObject: config),
            attributes: [.posixPermissions: 0o600]))
        let tree = try MySQLPlugin.write(
            version: "1.1.0",
            migrations: ["0002_currency.sql": Self.addCurrency, "0002_currency.down.sql": Self.dropCurrency],
            into: site.site.root + "/build-fleet")
        host.setRollout(version: "1.1.0")
        try host.publish(tree, version: "1.1.0")
        let upgraded = try host.run(["upgrade"])
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        #expect(try site.site.installedVersion() == "1.1.0")
        try site.admin.execute("""
            INSERT INTO shop9_molam_orders(order_ref, amount_minor, currency) VALUES ('after-upgrade-1', 5, 'EUR')
            """)

        host.setRollout(version: "1.1.0", status: "rolled_back")
        let writer = MySQLOrderWriter(
            endpoint: MySQLEndpoint(socket: site.server.socketPath, user: "root", database: site.database))
        #expect(writer.waitForMore(20))
        let result = try host.run(["upgrade", "--json"])
        #expect(writer.waitForMore(20))
        let (acknowledged, failures) = writer.stop()

        #expect(result.status == 0, "\(result.stderr)")
        #expect(try Self.json(result.stdout)["command"] as? String == "rollback", "\(result.stdout)")
        #expect(try site.site.installedVersion() == "1.0.0")
        #expect(try site.showCreate(MySQLSite.orders).withoutAutoIncrement
                    == showCreate.withoutAutoIncrement)
        #expect(failures.isEmpty, "the shop's writes failed: \(failures.prefix(3))")
        let present = try site.orderReferences()
        #expect(present.contains("after-upgrade-1"))
        #expect(acknowledged.allSatisfy(present.contains))
        #expect(try site.tables().filter { $0.hasPrefix("_molam_") }.isEmpty,
                "a fleet rollback quarantines nothing")
    }

    @Test("credentials from wp-config.php: the upgrade works and the password is nowhere the agent writes")
    func wordPressConfigCredentials() throws {
        let site = try MySQLSite(hint: "wpconfig")
        let password = "Wp-\(UUID().uuidString)-s3cret"
        let user = try site.confinedAccount(password: password)
        let wpConfig = try site.writeWordPressConfig(user: user, password: password)
        let record = site.site.root + "/smoke-env.txt"
        // The smoke command records its argv, environment and its parent's command line.
        let smoke = """
            #!/bin/sh
            site="$MOLAM_PLUGIN_DIR/../../.."
            {
              echo "argv: $0 $*"
              tr '\\0' '\\n' < /proc/$$/cmdline
              tr '\\0' '\\n' < /proc/$$/environ
              tr '\\0' ' ' < /proc/$PPID/cmdline; echo
              env
            } >> "$site/smoke-env.txt"
            grep -q "Version: $MOLAM_PLUGIN_VERSION" "$MOLAM_PLUGIN_DIR/molam-form.php" || exit 3

            """
        let release = try site.release(
            "1.1.0", migrations: ["0002_currency.sql": Self.addCurrency], smokeScript: smoke)
        let database = ["--wp-config", wpConfig]
        let result = try site.upgrade(release, extra: ["--json"], database: database)
        #expect(result.status == 0, "\(result.stderr) \(result.stdout)")
        #expect(try site.columns(MySQLSite.orders).contains("currency"))
        #expect(try site.site.installedVersion() == "1.1.0")
        let history = try site.run(["history", "--json"], database: database)
        let status = try site.run(["status", "--json"], database: database)

        let recorded = try String(contentsOfFile: record, encoding: .utf8)
        #expect(recorded.contains("MOLAM_DB=mysql://\(user)@localhost/\(site.database)"), "\(recorded)")
        var places: [(String, Data)] = [
            ("stdout", Data(result.stdout.utf8)), ("stderr", Data(result.stderr.utf8)),
            ("history", Data((history.stdout + history.stderr).utf8)),
            ("status", Data((status.stdout + status.stderr).utf8)),
            ("smoke record", Data(recorded.utf8)),
        ]
        places += MySQLSite.allBytes(under: site.stateDirectory).map { ($0.path, $0.data) }
        #expect(places.contains { $0.0.hasSuffix("/journal.db") })
        #expect(places.contains { $0.0.hasSuffix("/tables.db") })
        let secret = Data(password.utf8)
        for (place, bytes) in places {
            #expect(bytes.range(of: secret) == nil, "the password leaked into \(place)")
        }

        // A wrong password fails in one line that names neither password.
        let wrong = "Wrong-\(UUID().uuidString)"
        try? FileManager.default.removeItem(atPath: wpConfig)
        _ = try site.writeWordPressConfig(user: user, password: wrong)
        let denied = try site.run(["status", "--json"], database: database)
        let again = try site.upgrade(release, extra: ["--force"], database: database)
        for output in [denied.stdout + denied.stderr, again.stdout + again.stderr] {
            #expect(!output.contains(wrong) && !output.contains(password), "\(output)")
        }
        #expect(again.status != 0 && again.stderr.contains("Access denied"), "\(again.stderr)")
    }

    @Test("an sql smoke check may name its tables with {prefix}, as the manifest's tables do")
    func prefixedSmokeQuery() throws {
        let site = try MySQLSite(hint: "smoke_prefix")
        let query = "SELECT count(*) FROM {prefix}molam_orders"
        let release = try site.release("1.1.0", smoke: [["type": "sql", "query": query, "expect": "40"]])
        let result = try site.upgrade(release)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try site.site.installedVersion() == "1.1.0")
    }

    @Test("confinement by the server: a confined account's migration writing a core table is denied and undone")
    func confinedAccountDenied() throws {
        let site = try MySQLSite(hint: "confined")
        let before = try site.fingerprint()
        let tree = try TreeSnapshot.take(site.pluginDirectory)
        let database = try Self.confined(site)
        let evil = Self.addCurrency + "UPDATE {prefix}users SET user_pass = 'pwned' WHERE ID = 1;\n"
        let release = try site.release("1.1.0", migrations: ["0002_currency.sql": evil])
        let result = try site.upgrade(release, database: database)
        // The grants pass the pre-check (reads everywhere, writes on the owned tables); the server
        // refuses the UPDATE (1142), and the run is rolled back.
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("0002_currency.sql") && result.stderr.contains("1142"), "\(result.stderr)")
        try Self.expectUnchanged(site, before)
        #expect(try site.scalar("SELECT user_pass FROM shop9_users WHERE ID = 1")?.stringValue == "$P$Bsecret")
        #expect(try TreeSnapshot.take(site.pluginDirectory) == tree)
        try Self.expectNoLeftovers(site)

        // A manifest claiming a core table is refused by the ownership policy before any change.
        let manifestClaim = try MySQLPlugin.write(version: "1.1.1", into: site.site.root + "/build-claim")
        let manifestPath = manifestClaim + "/molam-plugin.json"
        let text = try String(contentsOfFile: manifestPath, encoding: .utf8)
        try text.replacing("\"{prefix}molam_orders\"", with: "\"{prefix}molam_orders\", \"{prefix}users\"")
            .write(toFile: manifestPath, atomically: false, encoding: .utf8)
        let claiming = try site.site.release(from: manifestClaim, format: .tarGz)
        let refused = try site.upgrade(claiming, database: database)
        #expect(refused.status == 4, "\(refused.stderr)")
        #expect(refused.stderr.contains("shop9_users"), "\(refused.stderr)")
        try Self.expectUnchanged(site, before)
    }

    @Test("root's wide grants: migrations refused (exit 4, nothing changed) unless --allow-wide-grants")
    func wideGrants() throws {
        let site = try MySQLSite(hint: "wide")
        let before = try site.fingerprint()
        let tree = try TreeSnapshot.take(site.pluginDirectory)
        let release = try site.release("1.1.0", migrations: ["0002_currency.sql": Self.addCurrency])
        let refused = try site.upgrade(release)
        #expect(refused.status == 4, "\(refused.stderr)")
        #expect(refused.stderrLines.count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("--allow-wide-grants"), "\(refused.stderr)")
        try Self.expectUnchanged(site, before)
        #expect(try TreeSnapshot.take(site.pluginDirectory) == tree)
        #expect(try site.backupDirectories().isEmpty)
        try Self.expectNoLeftovers(site)

        let allowed = try site.upgrade(release, extra: Self.rootWide)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(try site.columns(MySQLSite.orders).contains("currency"))
    }

    @Test("grants prints the account's statements, and refuses a core table or a SQLite database in one line")
    func grantsCommand() throws {
        let site = try MySQLSite(hint: "grants_cli")
        let printed = try site.run(["grants", "--account", "'agent'@'localhost'", "--tables", "{prefix}molam_refunds", "--json"])
        #expect(printed.status == 0, "\(printed.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(printed.stdout.utf8)) as? [String: Any]
        let statements = object?["statements"] as? [String] ?? []
        #expect(statements.contains { $0.contains("`shop9_molam_refunds` TO 'agent'@'localhost'") })
        #expect(statements.contains { $0.contains("`_molam_shadow_molam_schema_migrations`") })
        #expect(!statements.contains { $0.contains("shop9_users") })
        let core = try site.run(["grants", "--tables", "{prefix}users"])
        #expect(core.status == 2 && core.stderrLines.count == 1 && core.stderr.contains("shop9_users"), "\(core.stderr)")
        let sqlite = try site.run(["grants"], database: ["--db", "sqlite:///tmp/none.db"])
        #expect(sqlite.status == 2 && sqlite.stderrLines.count == 1, "\(sqlite.stderr)")
    }

    @Test("a dry run with migrations changes nothing and leaves no scratch database behind")
    func dryRun() throws {
        let site = try MySQLSite(hint: "dry")
        let before = try site.fingerprint()
        let tree = try TreeSnapshot.take(site.pluginDirectory)
        let good = try site.release("1.1.0", migrations: ["0002_currency.sql": Self.addCurrency])
        let dry = try site.upgrade(good, extra: ["--dry-run"] + Self.rootWide)
        #expect(dry.status == 0, "\(dry.stderr)")
        let broken = try site.release("1.1.0", migrations: ["0002_currency.sql": Self.brokenCurrency])
        let failed = try site.upgrade(broken, extra: ["--dry-run"] + Self.rootWide)
        #expect(failed.status != 0, "\(failed.stdout)")
        #expect(failed.stderr.contains("0002_currency.sql") && failed.stderr.contains("curency"),
                "\(failed.stderr)")
        let scratch = try site.scratchDatabases()
        #expect(scratch.isEmpty, "\(scratch)")
        try Self.expectUnchanged(site, before)
        #expect(try TreeSnapshot.take(site.pluginDirectory) == tree)
        #expect(try site.backupDirectories().isEmpty)
        try Self.expectNoLeftovers(site)
    }

    @Test("a dry run under a confined account checks the migrations in a scratch database")
    func confinedDryRun() throws {
        let site = try MySQLSite(hint: "dry_confined")
        let before = try site.fingerprint()
        let database = try Self.confined(site)
        let good = try site.release("1.1.0", migrations: ["0002_currency.sql": Self.addCurrency])
        let dry = try site.upgrade(good, extra: ["--dry-run"], database: database)
        // The scratch copy judges the grants against the site's database, whose copy it is.
        #expect(dry.status == 0, "\(dry.stderr)")
        let scratch = try site.scratchDatabases()
        #expect(scratch.isEmpty, "\(scratch)")
        try Self.expectUnchanged(site, before)
    }
}

extension String {
    /// SHOW CREATE TABLE without its `AUTO_INCREMENT=n` table option: the counter moves on with every
    /// order written, and a rollback must never hand an id out twice.
    var withoutAutoIncrement: String { replacing(#/ AUTO_INCREMENT=\d+/#, with: "") }
}
