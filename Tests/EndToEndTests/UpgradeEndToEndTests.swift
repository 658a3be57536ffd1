import Foundation
import MolamArchive
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The built binary, run as a user would, against throw-away sites.
@Suite("upgrade, end to end")
struct UpgradeEndToEndTests {
    @Test("A good fixture release upgrades 3.9.0 to 4.0.0, runs its migrations and journals every step")
    func fixtureUpgrade() throws {
        let site = try TestSite.molamForm()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz)
        let result = try site.upgrade(release, extra: ["--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try site.installedVersion() == "4.0.0")
        #expect(try site.query("SELECT version FROM molam_schema_migrations ORDER BY version").count == 4)
        #expect(try site.query("SELECT count(*) AS n FROM wp_molam_refunds").first?["n"].intValue == 0)
        #expect(try site.query("SELECT DISTINCT currency FROM wp_molam_orders").count >= 1)

        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["status"] as? String == "succeeded")
        #expect(json["rollback_status"] as? String == "not_required")
        let steps = (json["steps"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(steps == ["lock", "recover", "resolve", "eligibility", "download", "stage", "backup", "swap",
                          "migrate", "verify", "commit"])
        // The kept tree of 3.9.0 is outside the web root, in the state directory.
        let status = try site.run(["status", "--json"])
        let statusJSON = try #require(
            try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let kept = try #require(statusJSON["kept_tree"] as? String)
        #expect(kept.hasPrefix(site.stateDirectory))
        #expect(try PluginManifest.load(pluginDirectory: kept).version.description == "3.9.0")
    }

    @Test("A fixture release whose second migration fails half way is rolled back: tree and database content unchanged")
    func fixtureFailingMigration() throws {
        let site = try TestSite.molamForm()
        let before = try site.snapshot()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.1"), format: .zip)
        let result = try site.upgrade(release)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("0004"))
        let after = try site.snapshot()
        #expect(after.tree == before.tree)
        #expect(after.databaseDump == before.databaseDump)
    }

    @Test("A fixture release whose smoke check fails after migrating is rolled back to the exact old tree and tables")
    func fixtureFailingSmoke() throws {
        let site = try TestSite.molamForm()
        let before = try site.snapshot()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.2"), format: .tarZst)
        let result = try site.upgrade(release, extra: ["--json"])
        #expect(result.status == 1)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["status"] as? String == "rolled_back")
        #expect(json["rollback_status"] as? String == "success")
        let after = try site.snapshot()
        #expect(after.tree == before.tree)
        #expect(after.databaseDump == before.databaseDump)
        #expect(try site.installedVersion() == "3.9.0")
    }

    @Test("Another plugin with other tables upgrades from zip and from tar.gz", arguments: [ReleaseFormat.zip, .tarGz])
    func otherPluginUpgrade(format: ReleaseFormat) throws {
        let site = try AcmePay.site()
        let release = try AcmePay.release(site, version: "1.1.0", format: format)
        let result = try site.upgrade(release)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try site.installedVersion() == "1.1.0")
        #expect(try site.query("SELECT currency FROM acme_payments WHERE reference = 'P-2'").first?["currency"]
            .stringValue == "XOF")
        #expect(try site.query("SELECT count(*) AS n FROM acme_refunds").first?["n"].intValue == 3)
        #expect(try site.query("SELECT max(version) AS v FROM molam_schema_migrations").first?["v"].intValue == 3)
    }

    @Test("Another plugin's failing migration and failing smoke check both end in exit 1 with nothing changed",
          arguments: [AcmePay.Variant.failingMigration, .failingSmoke])
    func otherPluginFailures(variant: AcmePay.Variant) throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        for format in [ReleaseFormat.zip, .tarGz] {
            let release = try AcmePay.release(site, version: "1.1.0", variant: variant, format: format)
            let result = try site.upgrade(release)
            #expect(result.status == 1, "\(format): \(result.stderr)")
            let after = try site.snapshot()
            #expect(after.tree == before.tree, "\(format)")
            #expect(after.databaseDump == before.databaseDump, "\(format)")
        }
        let history = try site.run(["history", "--json"])
        let runs = try #require(
            (try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [String: Any])?["runs"]
                as? [[String: Any]])
        #expect(runs.count == 2)
        #expect(runs.allSatisfy { $0["status"] as? String == "rolled_back" })
    }

    @Test("A wrong checksum is refused with exit 4 and one line, nothing changed")
    func wrongChecksum() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let wrong = String(release.sha256.reversed())
        let result = try site.upgrade((release.path, wrong))
        #expect(result.status == 4)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("SHA-256"))
        #expect(try site.snapshot() == before)
        #expect(!FileManager.default.fileExists(atPath: site.stateDirectory + "/backups"))
    }

    @Test("An older release is refused with exit 4 unless --force; the same version is a no-op")
    func downgradeRefused() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let older = try AcmePay.release(site, version: "0.9.0", format: .tarGz)
        let refused = try site.upgrade(older)
        #expect(refused.status == 4)
        #expect(refused.stderr.contains("older"))
        #expect(try site.snapshot() == before)

        let same = try AcmePay.release(site, version: "1.0.0", format: .zip)
        let skipped = try site.upgrade(same)
        #expect(skipped.status == 0)
        #expect(skipped.stdout.contains("skipped"))
        #expect(try site.snapshot() == before)
    }

    @Test("A release naming another plugin is refused with exit 4")
    func wrongPlugin() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .zip)
        let result = try site.upgrade(release)
        #expect(result.status == 4)
        #expect(result.stderr.contains("molam-form"))
        #expect(try site.snapshot() == before)
    }

    @Test("Path traversal and symlink escapes are refused with exit 4 and nothing written outside",
          arguments: ["traversal", "absolute", "symlink", "hardlink"])
    func hostileArchives(kind: String) throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let path = site.releases + "/hostile-\(kind).tar.gz"
        let victim = site.root + "/wp-content/pwned.php"
        let writer = try ArchiveWriter(path: path, format: .paxRestricted, filter: .gzip)
        let manifest = Array(try String(contentsOfFile: site.pluginDirectory + "/molam-plugin.json", encoding: .utf8)
            .replacingOccurrences(of: "1.0.0", with: "1.1.0").utf8)
        try writer.addDirectory(path: "acme-pay", mode: 0o755)
        try writer.addFile(path: "acme-pay/molam-plugin.json", mode: 0o644, size: Int64(manifest.count))
        try writer.writeData(manifest)
        let payload = Array("<?php system($_GET['c']);".utf8)
        switch kind {
        case "traversal":
            try writer.addFile(path: "acme-pay/../../pwned.php", mode: 0o644, size: Int64(payload.count))
            try writer.writeData(payload)
        case "absolute":
            try writer.addFile(path: victim, mode: 0o644, size: Int64(payload.count))
            try writer.writeData(payload)
        case "symlink":
            try writer.addSymlink(path: "acme-pay/escape", target: site.root + "/wp-content")
            try writer.addFile(path: "acme-pay/escape/pwned.php", mode: 0o644, size: Int64(payload.count))
            try writer.writeData(payload)
        default:
            try writer.addHardlink(path: "acme-pay/pwned.php", target: victim)
        }
        try writer.close()
        let result = try site.upgrade((path, try sha256(ofFile: path)))
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderrLines.count == 1)
        #expect(!FileManager.default.fileExists(atPath: victim))
        #expect(try site.snapshot() == before)
        // Nothing left behind in the work area either.
        let work = (try? FileManager.default.contentsOfDirectory(atPath: site.stateDirectory + "/work")) ?? []
        #expect(work.isEmpty)
    }

    @Test("--dry-run stages the release and checks migrations on a scratch copy, changing nothing")
    func dryRun() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let good = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.upgrade(good, extra: ["--dry-run"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("dry run"))
        #expect(try site.snapshot() == before)

        let broken = try AcmePay.release(site, version: "1.1.0", variant: .failingMigration, format: .zip)
        let refused = try site.upgrade(broken, extra: ["--dry-run"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("0002"))
        #expect(try site.snapshot() == before)
    }

    @Test("A manual rollback after a good upgrade puts the old tree and tables back exactly")
    func manualRollback() throws {
        let site = try TestSite.molamForm()
        let before = try site.snapshot()
        let release = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz)
        #expect(try site.upgrade(release).status == 0)
        let result = try site.run(["rollback", "--reason", "merchant reports checkout errors"])
        #expect(result.status == 0, "\(result.stderr)")
        let after = try site.snapshot()
        #expect(after.tree == before.tree)
        #expect(after.databaseDump == before.databaseDump)

        // And forward again from the backup the rollback took first.
        let forward = try site.run(["rollback", "--to", "4.0.0"])
        #expect(forward.status == 0, "\(forward.stderr)")
        #expect(try site.installedVersion() == "4.0.0")
        #expect(try site.query("SELECT count(*) AS n FROM molam_schema_migrations").first?["n"].intValue == 4)
    }
}
