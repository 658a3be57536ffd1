import Foundation
import MolamArchive
import MolamSQLite
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

    // MARK: verify: the archive read back against its manifest

    /// Backs `live` up into `b.tar.zst` in `temp`.
    private func backUp(_ live: String, in temp: TemporaryDirectory) throws -> TreeManifest {
        try TreeArchive.create(from: live, topName: "molam-form", archivePath: temp.sub("b.tar.zst"))
    }

    @Test("verify reads a fresh backup back in full and writes nothing")
    func verifyFresh() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        let manifest = try backUp(live, in: temp)
        let before = Tree.listing(temp.path)
        try TreeArchive.verify(archivePath: temp.sub("b.tar.zst"), expecting: manifest)
        #expect(Tree.listing(temp.path) == before)
        // The root is recorded, with the live root's mode.
        #expect(manifest.root?.mode == Tree.mode(live))
    }

    @Test("verify finds an archive rewritten with one file's bytes changed, an entry dropped or repeated",
          arguments: [
            ("change", "'run.sh' has different content"),
            ("drop", "'lib/deep/er/code.php' is missing"),
            ("twice", "'run.sh' is in the archive more than once"),
          ])
    func verifyRewrittenArchive(edit: String, expected: String) throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        let manifest = try backUp(live, in: temp)
        try rewrite(temp.sub("b.tar.zst"), to: temp.sub("edited.tar.zst")) { name in
            switch (edit, name) {
            // Same length, other bytes: only the hash can tell.
            case ("change", "molam-form/run.sh"): .replace(Array("#!/bin/bash".utf8.dropLast()))
            case ("drop", "molam-form/lib/deep/er/code.php"): .drop
            case ("twice", "molam-form/run.sh"): .twice
            default: .keep
            }
        }
        let before = Tree.listing(temp.path)
        #expect {
            try TreeArchive.verify(archivePath: temp.sub("edited.tar.zst"), expecting: manifest)
        } throws: { error in
            guard case .mismatch(_, let differences) = error as? TreeArchiveError else { return false }
            return differences == [expected] && !"\(error)".contains("\n") && "\(error)".contains(expected)
        }
        #expect(Tree.listing(temp.path) == before)
    }

    @Test("verify finds a manifest edited after the backup")
    func verifyEditedManifest() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        let manifest = try backUp(live, in: temp)
        func differences(_ edit: (inout TreeManifest) -> Void) -> [String] {
            var edited = manifest
            edit(&edited)
            do {
                try TreeArchive.verify(archivePath: temp.sub("b.tar.zst"), expecting: edited)
                return []
            } catch {
                guard case .mismatch(_, let differences) = error else { return ["unexpected \(error)"] }
                return differences
            }
        }
        func index(_ path: String) -> Int { manifest.entries.firstIndex { $0.path == path } ?? -1 }
        #expect(differences { $0.entries[index("run.sh")].mode = 0o4755 }
            == ["'run.sh' has mode 755, expected 4755"])
        #expect(differences { $0.entries[index("molam-plugin.json")].size += 1 }
            == ["'molam-plugin.json' has different content"])
        #expect(differences { $0.entries[index("current.php")].target = "/etc/shadow" }
            == ["'current.php' has different content"])
        #expect(differences { $0.entries[index("empty")].kind = "file" }
            == ["'empty' is a directory, expected a file"])
        #expect(differences { $0.entries.remove(at: index("run.sh")) } == ["'run.sh' is unexpected"])
        #expect(differences { $0.entries.append(.init(path: "gone.php", kind: "file", mode: 0o644, size: 0)) }
            == ["'gone.php' is missing"])
        #expect(differences { $0.entries.append($0.entries[index("run.sh")]) }
            == ["'run.sh' is in the manifest more than once"])
        #expect(differences { $0.root?.mode = 0o700 } == ["the top directory has mode 755, expected 700"])
        // Owners are not in the archive's headers, so verify leaves them to the restore.
        #expect(differences { $0.entries[index("run.sh")].uid = 4242 } == [])
    }

    @Test("verify refuses a truncated archive and writes nothing")
    func verifyTruncated() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        let manifest = try backUp(live, in: temp)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: temp.sub("b.tar.zst")))
        for length in [bytes.count / 2, bytes.count - 8, 0] {
            try bytes.prefix(length).write(to: URL(fileURLWithPath: temp.sub("cut.tar.zst")))
            let before = Tree.listing(temp.path)
            #expect(throws: TreeArchiveError.self, "\(length) bytes") {
                try TreeArchive.verify(archivePath: temp.sub("cut.tar.zst"), expecting: manifest)
            }
            #expect(Tree.listing(temp.path) == before)
        }
    }

    @Test("BackupSet checks its archive: a fresh backup verifies, one altered afterwards does not")
    func backupSetVerify() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        try Tree.write(live + "/molam-plugin.json", #"{"name":"molam-form","version":"3.9.0","tables":["t"]}"#,
                       mode: 0o644)
        let databasePath = temp.sub("site.db")
        let connection = try SQLiteConnection(path: databasePath, mode: .readWriteCreate)
        try connection.executeScript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);")
        let backup = try BackupSet.create(
            pluginDirectory: live, manifest: try PluginManifest.load(pluginDirectory: live), tables: ["t"],
            database: try SQLitePluginDatabase(path: databasePath), paths: StatePaths(root: temp.sub("state")),
            runID: nil, now: Date())
        #expect(!backup.directory.contains(".partial-"))
        #expect(Set(Tree.listing(backup.directory)) == [
            BackupFiles.filesArchiveName, BackupFiles.filesManifestName, BackupFiles.tablesName, BackupFiles.metaName,
        ])
        try backup.verify(database: try SQLitePluginDatabase(path: databasePath))

        try rewrite(backup.filesArchive, to: temp.sub("edited.tar.zst")) { name in
            name == "molam-form/run.sh" ? .replace(Array("#!/bin/ls\n".utf8)) : .keep
        }
        #expect(rename(temp.sub("edited.tar.zst"), backup.filesArchive) == 0)
        #expect {
            try backup.verify(database: try SQLitePluginDatabase(path: databasePath))
        } throws: { error in
            guard case .mismatch(_, let differences) = error as? TreeArchiveError else { return false }
            return differences == ["'run.sh' has different content"]
        }
    }

    // MARK: owners

    @Test("owners are recorded and a restore as root gives them back, links and setuid bits included",
          .enabled(if: geteuid() == 0, "chown(2) to other users needs root"))
    func ownersRoundTrip() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        #expect(chown(live, 65534, 65534) == 0)
        #expect(chown(live + "/lib", 65534, 0) == 0)
        #expect(chown(live + "/run.sh", 33, 33) == 0)
        #expect(chmod(live + "/run.sh", 0o6755) == 0)
        #expect(lchown(live + "/current.php", 1234, 4321) == 0)
        let manifest = try backUp(live, in: temp)
        func owner(_ path: String) -> String? {
            manifest.entries.first { $0.path == path }.map { "\($0.uid ?? 0):\($0.gid ?? 0)" }
        }
        #expect(owner("run.sh") == "33:33")
        #expect(owner("current.php") == "1234:4321")
        #expect(owner("lib") == "65534:0")
        #expect(owner("molam-plugin.json") == "0:0")
        #expect(manifest.root?.uid == 65534 && manifest.root?.gid == 65534)
        try manifest.write(to: temp.sub("manifest.json"))
        #expect(try TreeManifest.read(from: temp.sub("manifest.json")) == manifest)

        let root = try TreeArchive.restore(
            archivePath: temp.sub("b.tar.zst"), into: try temp.directory("restore"), expecting: manifest)
        // scan reads owners with lstat: equal manifests mean equal owners, modes and bytes.
        #expect(try TreeManifest.scan(directory: root) == manifest)
        #expect(Tree.mode(root + "/run.sh") == 0o6755)
        var info = stat()
        #expect(lstat(root + "/current.php", &info) == 0 && info.st_uid == 1234 && info.st_gid == 4321)
        // The link was given away, not its target.
        #expect(lstat(root + "/lib/deep/er/code.php", &info) == 0 && info.st_uid == 0)
    }

    @Test("a manifest written before owners were recorded still reads, and restores as the current user")
    func manifestWithoutOwners() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        let manifest = try backUp(live, in: temp)
        // Written by the older agent: no uid, gid or root.
        let entries = manifest.entries.map { entry -> [String: Any] in
            var object: [String: Any] = [
                "path": entry.path, "kind": entry.kind, "mode": entry.mode, "size": entry.size,
            ]
            if let sha256 = entry.sha256 { object["sha256"] = sha256 }
            if let target = entry.target { object["target"] = target }
            return object
        }
        let json = try JSONSerialization.data(withJSONObject: ["entries": entries])
        try json.write(to: URL(fileURLWithPath: temp.sub("old.json")))
        let old = try TreeManifest.read(from: temp.sub("old.json"))
        #expect(old.root == nil)
        #expect(old.entries.allSatisfy { $0.uid == nil && $0.gid == nil })
        #expect(old.entries.map(\.path) == manifest.entries.map(\.path))

        try TreeArchive.verify(archivePath: temp.sub("b.tar.zst"), expecting: old)
        let root = try TreeArchive.restore(
            archivePath: temp.sub("b.tar.zst"), into: try temp.directory("restore"), expecting: old)
        var info = stat()
        #expect(lstat(root + "/run.sh", &info) == 0 && info.st_uid == geteuid())
    }

    private enum Edit {
        case keep, drop, twice
        case replace([UInt8])
    }

    /// Copies a backup archive entry by entry through libarchive, letting `edit` drop, repeat or
    /// change entries: a backup altered after the fact that is still a well-formed tar.zst.
    private func rewrite(_ source: String, to destination: String, edit: (String) -> Edit) throws {
        let reader = try ArchiveReader(path: source, formats: [.tar])
        let writer = try ArchiveWriter(path: destination, format: .paxRestricted, filter: .zstd(level: 3))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while let info = try reader.nextEntry() {
            var data: [UInt8] = []
            while info.kind == .file {
                let count = try reader.readData(into: buffer)
                if count == 0 { break }
                data += buffer[..<count]
            }
            let name = String(decoding: info.pathBytes, as: UTF8.self)
            let action = edit(name)
            var copies = 1
            switch action {
            case .keep: break
            case .drop: copies = 0
            case .twice: copies = 2
            case .replace(let bytes): data = bytes
            }
            for _ in 0..<copies {
                switch info.kind {
                case .directory:
                    try writer.addDirectory(path: name, mode: info.mode)
                case .symlink:
                    let target = String(decoding: info.symlinkTarget ?? [], as: UTF8.self)
                    try writer.addSymlink(path: name, target: target, mode: info.mode)
                default:
                    try writer.addFile(path: name, mode: info.mode, size: Int64(data.count))
                    try writer.writeData(data)
                }
            }
        }
        try writer.close()
    }

    @Test("a streamed manifest reads back whole: odd names, owners, root and skipped included")
    func manifestJSONStreamed() throws {
        let temp = try TemporaryDirectory()
        let names = ["plain.php", "quote\"d", "back\\slash", "new\nline", "tab\tcr\r", "bell\u{07}",
                     "caf\u{E9}/\u{1F600}.txt", "a/b/c"]
        var manifest = TreeManifest(
            entries: names.enumerated().map { position, name in
                .init(path: name, kind: position % 2 == 0 ? "file" : "symlink", mode: 0o4755, size: Int64(position),
                      sha256: position % 2 == 0 ? String(repeating: "ab", count: 32) : nil,
                      target: position % 2 == 0 ? nil : "../" + name, uid: position == 3 ? nil : 33, gid: 0)
            },
            root: .init(path: "", kind: "directory", mode: 0o755, size: 0, uid: 1, gid: 2))
        manifest.skipped = ["fifo (FIFO)"]
        try manifest.write(to: temp.sub("streamed.json"))
        // `read` keeps entries and root (what a restore uses); the decoder sees everything.
        let reread = try TreeManifest.read(from: temp.sub("streamed.json"))
        #expect(reread.entries == manifest.entries && reread.root == manifest.root)
        let decoded = try JSONDecoder().decode(
            TreeManifest.self, from: Data(contentsOf: URL(fileURLWithPath: temp.sub("streamed.json"))))
        #expect(decoded == manifest)
        // What JSONEncoder wrote for the whole manifest decodes to the same, and so does a plain one.
        let plain = TreeManifest(entries: [.init(path: "lib/a.php", kind: "file", mode: 0o644, size: 3,
                                                 sha256: "00", uid: 0, gid: 0)])
        try plain.write(to: temp.sub("plain.json"))
        #expect(try JSONDecoder().decode(TreeManifest.self, from: Data(contentsOf: URL(fileURLWithPath: temp.sub("plain.json"))))
            == JSONDecoder().decode(TreeManifest.self, from: JSONEncoder().encode(plain)))
        let empty = TreeManifest(entries: [])
        try empty.write(to: temp.sub("empty.json"))
        #expect(try TreeManifest.read(from: temp.sub("empty.json")) == empty)
    }

    @Test("verify finds entries whose manifest records sort apart from their archive order")
    func verifyUnsortedManifest() throws {
        let temp = try TemporaryDirectory()
        let live = try makeTree(in: temp)
        var manifest = try backUp(live, in: temp)
        manifest.entries.reverse()
        try TreeArchive.verify(archivePath: temp.sub("b.tar.zst"), expecting: manifest)
        manifest.entries.removeFirst()
        #expect(throws: TreeArchiveError.self) {
            try TreeArchive.verify(archivePath: temp.sub("b.tar.zst"), expecting: manifest)
        }
    }
}
