import Foundation
import MolamSQLite
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// A victim directory outside the plugin: what a planted link points the agent's deletions at.
private struct Victim {
    let root: String
    init(site: TestSite) throws {
        root = site.root + "/victim"
        for name in ["db", "mail", "www"] {
            try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
            try Data("keep \(name)".utf8).write(to: URL(fileURLWithPath: root + "/" + name + "/data"))
        }
    }

    var intact: Bool {
        ["db", "mail", "www"].allSatisfy {
            FileManager.default.contents(atPath: root + "/" + $0 + "/data") == Data("keep \($0)".utf8)
        }
    }
}

/// The state directory, the lock, the work areas and the journal's order, attacked as the web
/// server's user or a careless host would.
@Suite("state directory, lock and work area confinement")
struct StateConfinementTests {
    @Test("A link planted at the work area next to the plugin is never followed by any sweep")
    func plantedHiddenWorkLink() throws {
        let site = try AcmePay.site()
        let victim = try Victim(site: site)
        let planted = site.root + "/wp-content/plugins/.molam-upgrade-work"
        try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: victim.root)
        // Every command that sweeps work directories: recover, cleanup, and a successful upgrade's tidy.
        for arguments in [["recover"], ["cleanup"]] {
            let result = try site.run(arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(victim.intact, "\(arguments) followed the planted link")
        }
        let release = try AcmePay.release(site, version: "1.1.0", format: .tarGz)
        let upgrade = try site.upgrade(release)
        #expect(upgrade.status == 0, "\(upgrade.stderr)")
        #expect(try site.installedVersion() == "1.1.0")
        #expect(victim.intact)
        #expect(FileSystem.isSymbolicLink(planted))
    }

    @Test("A link planted inside the state's work area is removed, never followed")
    func plantedLinkInStateWork() throws {
        let site = try AcmePay.site()
        let victim = try Victim(site: site)
        try FileManager.default.createDirectory(atPath: site.stateDirectory + "/work", withIntermediateDirectories: true)
        chmod(site.stateDirectory + "/work", 0o700)
        try FileManager.default.createSymbolicLink(
            atPath: site.stateDirectory + "/work/0b7c0ffe-run", withDestinationPath: victim.root)
        let result = try site.run(["recover"])
        #expect(result.status == 0, "\(result.stderr)")
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        #expect(try site.upgrade(release).status == 0)
        #expect(victim.intact)
    }

    @Test("A state directory others can write is refused with the chmod to run, and nothing changes")
    func worldWritableStateDirectory() throws {
        let site = try AcmePay.site()
        try FileManager.default.createDirectory(atPath: site.stateDirectory, withIntermediateDirectories: true)
        chmod(site.stateDirectory, 0o777)
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.upgrade(release)
        #expect(result.status == 2)
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("chmod 700 \(site.stateDirectory)"))
        #expect(try site.snapshot() == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: site.stateDirectory).isEmpty)
    }

    @Test("A state directory that is a symbolic link is refused, not followed")
    func symlinkedStateDirectory() throws {
        let site = try AcmePay.site()
        let victim = try Victim(site: site)
        try FileManager.default.createSymbolicLink(atPath: site.stateDirectory, withDestinationPath: victim.root)
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.upgrade(release)
        #expect(result.status == 2)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("symbolic link"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: victim.root).sorted() == ["db", "mail", "www"])
        #expect(try site.installedVersion() == "1.0.0")
    }

    @Test("A hard link planted at the lock path: the linked file is not truncated, the run refuses")
    func hardLinkedLock() throws {
        let site = try AcmePay.site()
        try FileManager.default.createDirectory(atPath: site.stateDirectory, withIntermediateDirectories: true)
        let precious = site.stateDirectory + "/precious.conf"
        try Data("do not truncate me\n".utf8).write(to: URL(fileURLWithPath: precious))
        #expect(link(precious, site.stateDirectory + "/lock") == 0)
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.upgrade(release)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("hard links"))
        #expect(FileManager.default.contents(atPath: precious) == Data("do not truncate me\n".utf8))
        #expect(try site.installedVersion() == "1.0.0")
    }

    @Test("Two state directories on one plugin directory: the second run exits 75 naming the plugin lock")
    func oneAgentPerPluginDirectory() throws {
        let site = try AcmePay.site()
        let otherState = site.root + "/other-state"
        let holder = try PluginDirectoryLock.take(
            pluginDirectory: site.pluginDirectory, stateDirectory: otherState, command: "upgrade (test holder)")
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.upgrade(release)
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("plugin directory lock"))
        #expect(result.stderr.contains(otherState))
        #expect(try site.snapshot() == before)
        withExtendedLifetime(holder) {}
        // Once it lets go, the same command goes through.
        _ = consume holder
        #expect(try site.upgrade(release).status == 0)
    }

    @Test("Runs are ordered by the journal's sequence: a run under a clock years ahead does not win")
    func clockAheadDoesNotPickOldBackup() throws {
        let site = try AcmePay.site()
        let v11 = try AcmePay.release(site, version: "1.1.0", format: .zip)
        // First upgrade, then pretend it ran under a clock set years ahead.
        #expect(try site.upgrade(v11).status == 0)
        let journal = try SQLiteConnection(path: site.stateDirectory + "/journal.db", mode: .readWrite)
        try journal.execute("UPDATE backups SET created_at = '2031-01-01T00:00:00.000Z'")
        try journal.execute("UPDATE runs SET started_at = '2031-01-01T00:00:00.000Z'")
        // Back to 1.0.0, new orders, forward again: the newest backup of 1.0.0 holds them.
        #expect(try site.run(["rollback", "--to", "1.0.0", "--restore-tables"]).status == 0)
        let db = try SQLiteConnection(path: site.databasePath, mode: .readWrite)
        try db.execute("INSERT INTO acme_payments (reference, amount, state) VALUES ('P-NEW', 1, 'paid')")
        let rows = try site.query("SELECT count(*) FROM acme_payments")[0][0].intValue
        #expect(try site.upgrade(v11).status == 0)
        let rollback = try site.run(["rollback", "--to", "1.0.0", "--restore-tables"])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try site.query("SELECT count(*) FROM acme_payments")[0][0].intValue == rows)
        #expect(try site.query("SELECT count(*) FROM acme_payments WHERE reference = 'P-NEW'")[0][0].intValue == 1)
    }

    @Test("A FIFO planted in the live tree is reported and left out of the backup, not a permanent block")
    func fifoInLiveTree() throws {
        let site = try AcmePay.site()
        let fifo = site.pluginDirectory + "/src/planted.fifo"
        #expect(mkfifo(fifo, 0o666) == 0)
        let release = try AcmePay.release(site, version: "1.1.0", format: .tarGz)
        let upgrade = try site.upgrade(release)
        #expect(upgrade.status == 0, "\(upgrade.stderr)")
        #expect(try site.installedVersion() == "1.1.0")
        let history = try site.run(["history", "--json"])
        #expect(history.stdout.contains("planted.fifo (FIFO)"), "\(history.stdout)")
        // A manual rollback, which backs the current version up first, is not blocked either.
        let back = try site.run(["rollback", "--to", "1.0.0", "--restore-tables"])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(try site.installedVersion() == "1.0.0")
    }
}

/// Mounts: a state directory on a bind mount of the plugin's filesystem, and a read-only plugin folder.
@Suite("mounts the swap cannot cross",
       .enabled(if: canMountTmpfs, "cannot mount here: \(tmpfsUnavailableReason ?? "")"))
struct MountConfinementTests {
    @Test("A state directory on a bind mount of the plugin's filesystem: the upgrade still swaps")
    func bindMountedStateDirectory() throws {
        let site = try AcmePay.site()
        let real = site.root + "/real-state"
        let state = site.root + "/bound-state"
        for path in [real, state] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        try shell(["mount", "--bind", real, state])
        defer { _ = try? shell(["umount", state]) }
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try runTool(["upgrade", "--archive", release.path, "--sha256", release.sha256,
                                  "--plugin-dir", site.pluginDirectory, "--db", "sqlite://" + site.databasePath,
                                  "--state-dir", state])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try site.installedVersion() == "1.1.0")
    }

    @Test("A read-only mount of the plugins folder is refused before any backup, with what to do")
    func readOnlyPluginsFolder() throws {
        let site = try AcmePay.site()
        let plugins = site.root + "/wp-content/plugins"
        try shell(["mount", "--bind", plugins, plugins])
        defer { _ = try? shell(["umount", plugins]) }
        try shell(["mount", "-o", "remount,bind,ro", plugins])
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.upgrade(release)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("read-only mount"))
        #expect(!FileManager.default.fileExists(atPath: site.stateDirectory + "/backups/acme-pay"))
        #expect(try site.snapshot() == before)
    }

    @Test("A plugin directory that is a mount point of its own is refused before any backup")
    func pluginDirectoryIsAMountPoint() throws {
        let site = try AcmePay.site()
        try shell(["mount", "--bind", site.pluginDirectory, site.pluginDirectory])
        defer { _ = try? shell(["umount", site.pluginDirectory]) }
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try site.upgrade(release)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("mount point"))
        #expect(try site.installedVersion() == "1.0.0")
    }
}
