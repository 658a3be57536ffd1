import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command, returning its exit status and stdout; stderr is discarded. For commands whose
/// failure is the point (`runuser -u nobody -- cat …`) or whose output is checked (`zstd -dc`).
private func capture(_ arguments: [String]) throws -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, data)
}

/// Files outside the plugin that the web user points symlinks at: a directory holding a secret and a
/// secret file, with owners and modes of their own.
private struct Outside {
    let root: String
    let directorySecret = "db-password-" + UUID().uuidString
    let fileSecret = "wp-config-secret-" + UUID().uuidString
    var secretDirectory: String { root + "/secrets" }
    var secretFile: String { root + "/wp-config.php" }

    init(site: TestSite) throws {
        root = site.root + "/outside"
        try FileManager.default.createDirectory(atPath: root + "/secrets", withIntermediateDirectories: true)
        try Data(directorySecret.utf8).write(to: URL(fileURLWithPath: secretDirectory + "/db-password.txt"))
        try Data(fileSecret.utf8).write(to: URL(fileURLWithPath: secretFile))
        guard chmod(secretDirectory, 0o700) == 0, chown(secretDirectory, 1234, 1234) == 0,
              chmod(secretDirectory + "/db-password.txt", 0o600) == 0,
              chown(secretDirectory + "/db-password.txt", 1234, 1234) == 0,
              chmod(secretFile, 0o640) == 0, chown(secretFile, 0, 33) == 0
        else { throw TestFailure("setting up \(root): \(String(cString: strerror(errno)))") }
    }

    /// Paths, kinds, modes, bytes, owners and modification times: anything written through a link shows.
    func state() throws -> [String: String] {
        var entries = try TreeSnapshot.takeWithOwners(root).entries
        for (relative, description) in entries {
            var info = stat()
            guard lstat(relative.isEmpty ? root : root + "/" + relative, &info) == 0 else {
                throw TestFailure("lstat \(relative)")
            }
            entries[relative] = description + " mtime \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }
        return entries
    }

    /// Plants `public/uploads` (absolute, to the secret directory) and `config.php` (relative, to the
    /// secret file) in the live plugin tree, owned by the web user who planted them.
    func plantLinks(in plugin: String) throws {
        guard symlink(secretDirectory, plugin + "/public/uploads") == 0,
              symlink("../../../outside/wp-config.php", plugin + "/config.php") == 0,
              lchown(plugin + "/public/uploads", 65534, 65534) == 0,
              lchown(plugin + "/config.php", 65534, 65534) == 0
        else { throw TestFailure("planting links in \(plugin): \(String(cString: strerror(errno)))") }
        // They do lead outside: reading through them gets the secrets.
        #expect(FileManager.default.contents(atPath: plugin + "/config.php") == Data(fileSecret.utf8))
        #expect(FileManager.default.contents(atPath: plugin + "/public/uploads/db-password.txt")
            == Data(directorySecret.utf8))
    }

    /// Every backup archive of the site, decompressed by the real zstd: the links are in them as links
    /// (their targets are there), the secrets' bytes are not.
    func expectNotInBackups(_ site: TestSite, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let backups = site.stateDirectory + "/backups/" + site.pluginName
        let names = try FileManager.default.contentsOfDirectory(atPath: backups)
        #expect(!names.isEmpty, sourceLocation: sourceLocation)
        var linksSeen = false
        for name in names {
            let (status, tar) = try capture(["zstd", "-dc", backups + "/" + name + "/files.tar.zst"])
            #expect(status == 0, "zstd -dc \(name)", sourceLocation: sourceLocation)
            #expect(tar.count > 1024, sourceLocation: sourceLocation)
            #expect(tar.range(of: Data(directorySecret.utf8)) == nil, "\(name)", sourceLocation: sourceLocation)
            #expect(tar.range(of: Data(fileSecret.utf8)) == nil, "\(name)", sourceLocation: sourceLocation)
            if tar.range(of: Data(secretDirectory.utf8)) != nil { linksSeen = true }
        }
        #expect(linksSeen, "no backup holds the planted links", sourceLocation: sourceLocation)
    }
}

/// The kept trees of finished runs under `<state>/work` (or the hidden work area next to the plugin).
private func keptTrees(_ site: TestSite) -> [String] {
    site.workLeftovers().map { $0 + "/stage/" + site.pluginName }
        .filter { FileManager.default.fileExists(atPath: $0 + "/molam-plugin.json") }
}

/// A host where the web server's user can write the plugin directory: what it plants there must not
/// reach outside the plugin through the agent, and what the agent keeps must stay out of its reach.
@Suite("hostile host", .enabled(if: geteuid() == 0, "needs root: files are given to the web user, read as it"))
struct HostileHostTests {
    @Test("Planted symlinks come back as the same links after an automatic rollback; nothing goes through them")
    func plantedLinksAutomaticRollback() throws {
        let site = try AcmePay.site()
        let outside = try Outside(site: site)
        try outside.plantLinks(in: site.pluginDirectory)
        let outsideBefore = try outside.state()
        let before = try site.snapshotWithOwners()

        let release = try AcmePay.release(site, version: "1.1.0", variant: .failingSmoke, format: .tarGz)
        let result = try site.upgrade(release)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("gateway refused a test charge"))
        let after = try site.snapshotWithOwners()
        #expect(after.tree == before.tree)
        #expect(after.databaseDump == before.databaseDump)
        #expect(after.tree.entries["config.php"] == "link ../../../outside/wp-config.php 65534:65534")
        #expect(try outside.state() == outsideBefore)
        try outside.expectNotInBackups(site)
    }

    @Test("Planted symlinks come back as the same links from the backup archive; nothing goes through them")
    func plantedLinksRestoredFromArchive() throws {
        let site = try AcmePay.site()
        let outside = try Outside(site: site)
        try outside.plantLinks(in: site.pluginDirectory)
        let outsideBefore = try outside.state()
        let before = try site.snapshotWithOwners()

        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let upgraded = try site.upgrade(release)
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        // Without the kept tree, the rollback has only the backup archive.
        let kept = keptTrees(site)
        #expect(kept.count == 1)
        for run in site.workLeftovers() { try FileSystem.removeTree(run) }
        let rolledBack = try site.run(["rollback", "--restore-tables"])
        #expect(rolledBack.status == 0, "\(rolledBack.stderr)")

        let after = try site.snapshotWithOwners()
        #expect(after.tree == before.tree)
        #expect(after.databaseDumpWithoutQuarantine == before.databaseDump)
        var info = stat()
        #expect(lstat(site.pluginDirectory + "/public/uploads", &info) == 0 && info.st_mode & S_IFMT == S_IFLNK)
        #expect(try outside.state() == outsideBefore)
        try outside.expectNotInBackups(site)
    }

    @Test("A tree owned by the web user gets its owners back after a rollback and after a restore from the backup")
    func ownersComeBack() throws {
        let site = try AcmePay.site()
        try shell(["chown", "-R", "65534:65534", site.pluginDirectory])
        try shell(["chown", "33:33", site.pluginDirectory + "/bin/smoke"])
        try shell(["chown", "0:65534", site.pluginDirectory + "/public"])
        let before = try site.snapshotWithOwners()
        #expect(before.tree.entries[""]?.hasSuffix(" 65534:65534") == true)
        #expect(before.tree.entries["bin/smoke"]?.hasSuffix(" 33:33") == true)

        let failing = try AcmePay.release(site, version: "1.1.0", variant: .failingSmoke, format: .tarZst)
        let failed = try site.upgrade(failing)
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(try site.snapshotWithOwners().tree == before.tree)

        let good = try AcmePay.release(site, version: "1.1.0", format: .tarZst)
        let upgraded = try site.upgrade(good)
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        #expect(!keptTrees(site).isEmpty)
        for run in site.workLeftovers() { try FileSystem.removeTree(run) }
        let rolledBack = try site.run(["rollback", "--restore-tables"])
        #expect(rolledBack.status == 0, "\(rolledBack.stderr)")
        let after = try site.snapshotWithOwners()
        #expect(after.tree == before.tree)
        #expect(after.databaseDumpWithoutQuarantine == before.databaseDump)
    }

    /// What `cat` as the web user (nobody) can read of the kept tree and of the backup.
    private func expectKeptTreeUnreadable(_ site: TestSite) throws {
        // The control: the web user can read the live plugin, so a refusal below is the agent's doing.
        #expect(try capture(["runuser", "-u", "nobody", "--", "cat", site.pluginDirectory + "/acme-pay.php"])
            .status == 0)
        let release = try AcmePay.release(site, version: "1.1.0", format: .tarGz)
        let upgraded = try site.upgrade(release)
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        let kept = try #require(keptTrees(site).first)
        let file = kept + "/acme-pay.php"
        #expect(try String(contentsOfFile: file, encoding: .utf8).contains("Version: 1.0.0"))
        #expect(try capture(["runuser", "-u", "nobody", "--", "cat", file]).status != 0)
        #expect(try capture(["runuser", "-u", "nobody", "--", "ls", kept]).status != 0)
        let backups = site.stateDirectory + "/backups/acme-pay"
        let backup = try #require(try FileManager.default.contentsOfDirectory(atPath: backups).first)
        #expect(try capture(["runuser", "-u", "nobody", "--", "cat", backups + "/" + backup + "/files.tar.zst"])
            .status != 0)
    }

    @Test("The kept previous tree cannot be read by the web user (kept in the state directory)")
    func keptTreeUnreadable() throws {
        let site = try AcmePay.site()
        try shell(["chown", "-R", "65534:65534", site.pluginDirectory])
        try expectKeptTreeUnreadable(site)
        #expect(keptTrees(site).allSatisfy { $0.hasPrefix(site.stateDirectory + "/work/") })
    }

    @Test("The kept previous tree cannot be read by the web user (kept next to the plugin)",
          .enabled(if: canMountTmpfs, "cannot mount tmpfs here: \(tmpfsUnavailableReason ?? "")"))
    func keptTreeNextToPluginUnreadable() throws {
        let site = try AcmePay.site()
        // Another filesystem than the state directory's: the work area moves next to the plugin.
        let plugins = try site.movePluginsOntoTmpfs(size: 16 << 20)
        defer { plugins.unmount() }
        try shell(["chown", "-R", "65534:65534", site.pluginDirectory])
        try expectKeptTreeUnreadable(site)
        #expect(keptTrees(site).allSatisfy { $0.contains("/wp-content/plugins/.molam-upgrade-work/") })
    }

    @Test("A plugin directory replaced by a symlink is refused: exit 2, one line, nothing changed in either place")
    func pluginDirectoryIsSymlink() throws {
        let site = try AcmePay.site()
        let elsewhere = site.root + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: site.pluginDirectory, toPath: elsewhere + "/acme-pay")
        #expect(symlink(elsewhere + "/acme-pay", site.pluginDirectory) == 0)
        let plugins = site.root + "/wp-content/plugins"
        let pluginsBefore = try TreeSnapshot.takeWithOwners(plugins)
        let elsewhereBefore = try TreeSnapshot.takeWithOwners(elsewhere)
        let databaseBefore = try dump(site.databasePath)
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)

        let result = try site.upgrade(release)
        let pluginsAfter = try TreeSnapshot.takeWithOwners(plugins)
        let elsewhereAfter = try TreeSnapshot.takeWithOwners(elsewhere)
        let databaseAfter = try dump(site.databasePath)
        let backupsAfter = (try? FileManager.default.contentsOfDirectory(atPath: site.stateDirectory + "/backups"))
            ?? []
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains(site.pluginDirectory))
        #expect(result.stderr.contains("symbolic link"))
        #expect(pluginsAfter == pluginsBefore)
        #expect(elsewhereAfter == elsewhereBefore)
        #expect(databaseAfter == databaseBefore)
        #expect(site.workLeftovers().isEmpty)
        #expect(backupsAfter.isEmpty)
    }

    @Test("A backup archive altered after the upgrade is refused before the rollback changes anything")
    func alteredBackupRefused() throws {
        let site = try AcmePay.site()
        let release = try AcmePay.release(site, version: "1.1.0", format: .tarGz)
        let upgraded = try site.upgrade(release)
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        let backups = site.stateDirectory + "/backups/acme-pay"
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: backups).first)
        let backup = backups + "/" + name
        // Same length, other bytes: the tar stays well-formed, only the manifest's hash can tell.
        var tar = try capture(["zstd", "-dc", backup + "/files.tar.zst"]).output
        let original = Data("Version: 1.0.0".utf8)
        let range = try #require(tar.range(of: original))
        tar.replaceSubrange(range, with: Data("Version: 6.6.6".utf8))
        try tar.write(to: URL(fileURLWithPath: site.root + "/altered.tar"))
        try shell(["zstd", "-q", "-f", site.root + "/altered.tar", "-o", backup + "/files.tar.zst"])
        let before = try site.snapshot()

        let result = try site.run(["rollback"])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("does not match its manifest"))
        #expect(result.stderr.contains("'acme-pay.php' has different content"))
        #expect(try site.snapshot() == before)
        #expect(try site.installedVersion() == "1.1.0")
    }
}
