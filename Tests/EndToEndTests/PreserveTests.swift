import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The merchant's paths (`preserve`) across an upgrade: carried from the live tree, never replaced
/// by the release's copy, never followed when they are links.
@Suite("preserved paths, end to end")
struct PreserveTests {
    @Test("certs/ and config.local.php survive an upgrade; a symlink under certs/ is not followed or carried")
    func carriedAcrossUpgrade() throws {
        let site = try TestSite.molamForm()
        let live = site.pluginDirectory
        let fm = FileManager.default
        try fm.createDirectory(atPath: live + "/certs", withIntermediateDirectories: true)
        try "merchant key\n".write(toFile: live + "/certs/key.pem", atomically: false, encoding: .utf8)
        try "<?php $merchant = true;\n".write(toFile: live + "/config.local.php", atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: live + "/certs/passwd", withDestinationPath: "/etc/passwd")
        // A preserved path that is itself a link in the live tree: skipped, the release's copy stays.
        try fm.createSymbolicLink(atPath: live + "/secret.php", withDestinationPath: "/etc/shadow")
        chmod(live + "/certs", 0o750)
        chmod(live + "/certs/key.pem", 0o640)
        // setuid and world-write must not be carried.
        chmod(live + "/config.local.php", 0o4646)
        let asRoot = geteuid() == 0
        if asRoot { chown(live + "/certs/key.pem", 33, 33) }

        let parent = site.root + "/build-\(UUID().uuidString)"
        try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let tree = parent + "/molam-form"
        try shell(["cp", "-a", TestSite.fixturePlugin("4.0.0"), tree])
        try fm.createDirectory(atPath: tree + "/certs", withIntermediateDirectories: true)
        try "release readme\n".write(toFile: tree + "/certs/README", atomically: false, encoding: .utf8)
        try "<?php $merchant = false;\n".write(toFile: tree + "/config.local.php", atomically: false, encoding: .utf8)
        try "<?php // release default\n".write(toFile: tree + "/secret.php", atomically: false, encoding: .utf8)
        let manifestPath = tree + "/" + PluginManifest.fileName
        let text = try String(contentsOfFile: manifestPath, encoding: .utf8)
        let preserve = #""preserve": ["certs/", "config.local.php", "secret.php"],"#
        try text.replacing("\"namespace\"", with: preserve + "\n  \"namespace\"")
            .write(toFile: manifestPath, atomically: false, encoding: .utf8)
        let release = try site.release(from: tree, format: .tarGz)

        let result = try site.upgrade(release)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try site.installedVersion() == "4.0.0")
        #expect(try String(contentsOfFile: live + "/config.local.php", encoding: .utf8).contains("true"))
        #expect(try String(contentsOfFile: live + "/certs/key.pem", encoding: .utf8) == "merchant key\n")
        // The release's copy of a preserved directory is replaced as a whole.
        #expect(!fm.fileExists(atPath: live + "/certs/README"))
        var info = stat()
        #expect(lstat(live + "/certs/passwd", &info) != 0, "the symlink was carried")
        #expect(try String(contentsOfFile: live + "/secret.php", encoding: .utf8) == "<?php // release default\n")
        #expect(lstat(live + "/config.local.php", &info) == 0 && info.st_mode & 0o7777 == 0o644)
        #expect(lstat(live + "/certs", &info) == 0 && info.st_mode & 0o7777 == 0o750)
        #expect(lstat(live + "/certs/key.pem", &info) == 0 && info.st_mode & 0o7777 == 0o640)
        if asRoot { #expect(info.st_uid == 33 && info.st_gid == 33) }

        // Copied, not moved: the kept 3.9.0 tree still holds the merchant's files and its link.
        let status = try site.run(["status", "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let kept = try #require(json["kept_tree"] as? String)
        #expect(fm.fileExists(atPath: kept + "/certs/key.pem"))
        #expect(lstat(kept + "/certs/passwd", &info) == 0 && info.st_mode & S_IFMT == S_IFLNK)

        // A manual rollback carries the merchant's current files back too.
        try "<?php $merchant = 'v2';\n".write(toFile: live + "/config.local.php", atomically: false, encoding: .utf8)
        let rolledBack = try site.run(["rollback", "--to", "3.9.0"])
        #expect(rolledBack.status == 0, "\(rolledBack.stderr)")
        #expect(try String(contentsOfFile: live + "/config.local.php", encoding: .utf8).contains("v2"))
    }
}
