import Foundation
import MolamArchive
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

@Suite struct TreeArchiveTests {
    /// Nested directories, 0640/0750/0755 modes, an empty directory, a read-only directory and a symlink.
    private func makeTree(in temp: TemporaryDirectory) throws -> String {
        let root = try temp.directory("live/molam-form")
        try FileManager.default.createDirectory(atPath: root + "/lib/deep/er",
                                                withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        try Tree.write(root + "/molam-plugin.json", #"{"name":"molam-form"}"#, mode: 0o640)
        try Tree.write(root + "/lib/deep/er/code.php", String(repeating: "<?php echo 1; ", count: 40_000),
                       mode: 0o644)
        try Tree.write(root + "/run.sh", "#!/bin/sh\n", mode: 0o755)
        #expect(chmod(root + "/lib", 0o750) == 0)
        #expect(chmod(root + "/lib/deep/er", 0o555) == 0)
        #expect(symlink("lib/deep/er/code.php", root + "/current.php") == 0)
        return root
    }

    @Test("a backed-up tree restores identically, symlinks and modes included")
    func roundTrip() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        let manifest = try TreeArchive.create(from: live, topName: "molam-form",
                                              archivePath: temp.sub("b.tar.zst"))
        #expect(manifest == (try TreeManifest.scan(directory: live)))
        #expect(Tree.mode(temp.sub("b.tar.zst")) == 0o600)
        #expect(manifest.entries.map(\.path) == [
            "current.php", "empty", "lib", "lib/deep", "lib/deep/er", "lib/deep/er/code.php",
            "molam-plugin.json", "run.sh",
        ])
        #expect(manifest.entries.first?.target == "lib/deep/er/code.php")

        try manifest.write(to: temp.sub("manifest.json"))
        #expect(Tree.mode(temp.sub("manifest.json")) == 0o600)
        let reread = try TreeManifest.read(from: temp.sub("manifest.json"))
        #expect(reread == manifest)

        let started = Int(Date().timeIntervalSince1970)
        let restoreInto = try temp.directory("restore")
        let root = try TreeArchive.restore(archivePath: temp.sub("b.tar.zst"), into: restoreInto,
                                           expecting: reread)
        #expect(root == restoreInto + "/molam-form")
        #expect(try TreeManifest.scan(directory: root) == manifest)
        #expect(Tree.mode(root) == Tree.mode(live))
        #expect(Tree.mtime(root + "/run.sh") >= started)
        var info = stat()
        #expect(lstat(root + "/current.php", &info) == 0 && info.st_mode & S_IFMT == S_IFLNK)
    }

    @Test("a manifest that does not match the archive fails the restore and leaves nothing")
    func tamperedManifest() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        var manifest = try TreeArchive.create(from: live, topName: "molam-form",
                                              archivePath: temp.sub("b.tar.zst"))
        let index = try #require(manifest.entries.firstIndex { $0.path == "run.sh" })
        manifest.entries[index].sha256 = String(repeating: "0", count: 64)
        let restoreInto = try temp.directory("restore")
        #expect {
            try TreeArchive.restore(archivePath: temp.sub("b.tar.zst"), into: restoreInto,
                                    expecting: manifest)
        } throws: { error in
            guard case .mismatch(_, let differences) = error as? TreeArchiveError else { return false }
            return differences == ["'run.sh' has different content"]
        }
        #expect(Tree.listing(restoreInto).isEmpty)
    }

    @Test("an archive altered after the backup fails the restore against the original manifest")
    func tamperedArchive() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        let manifest = try TreeArchive.create(from: live, topName: "molam-form",
                                              archivePath: temp.sub("b.tar.zst"))
        // Someone swaps the archive for one with a changed mode and an extra file.
        #expect(chmod(live + "/run.sh", 0o700) == 0)
        try Tree.write(live + "/backdoor.php", "<?php system($_GET['c']);", mode: 0o644)
        _ = try TreeArchive.create(from: live, topName: "molam-form", archivePath: temp.sub("evil.tar.zst"))
        let restoreInto = try temp.directory("restore")
        #expect {
            try TreeArchive.restore(archivePath: temp.sub("evil.tar.zst"), into: restoreInto,
                                    expecting: manifest)
        } throws: { error in
            guard case .mismatch(_, let differences) = error as? TreeArchiveError else { return false }
            return differences.contains("'run.sh' has mode 700, expected 755")
                && differences.contains("'backdoor.php' is unexpected")
        }
        #expect(Tree.listing(restoreInto).isEmpty)

        // A corrupted archive is refused too.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: temp.sub("b.tar.zst")))
        bytes[bytes.count / 2] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: temp.sub("b.tar.zst")))
        #expect(throws: (any Error).self) {
            try TreeArchive.restore(archivePath: temp.sub("b.tar.zst"), into: restoreInto,
                                    expecting: manifest)
        }
        #expect(Tree.listing(restoreInto).isEmpty)
    }

    @Test("a backup refuses to overwrite an existing archive")
    func existingArchive() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        try Tree.write(temp.sub("b.tar.zst"), "keep me", mode: 0o600)
        #expect(throws: (any Error).self) {
            try TreeArchive.create(from: live, topName: "molam-form", archivePath: temp.sub("b.tar.zst"))
        }
        #expect((try? String(contentsOfFile: temp.sub("b.tar.zst"), encoding: .utf8)) == "keep me")
    }
}
