import Foundation
import MolamSQLite
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

@Suite struct BackupStoreTests {
    /// A real backup of a two-file plugin and one table, in a fresh state directory.
    private func makeBackup(in temp: TemporaryDirectory, now: Date = Date()) throws -> BackupSet {
        let live = temp.sub("live/molam-form")
        if !FileManager.default.fileExists(atPath: live) {
            try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
            let manifest = #"{"name":"molam-form","version":"3.9.0","tables":["t"]}"#
            try Tree.write(live + "/molam-plugin.json", manifest, mode: 0o644)
            try Tree.write(live + "/index.php", "<?php echo 1;\n", mode: 0o644)
            let connection = try SQLiteConnection(path: temp.sub("site.db"), mode: .readWriteCreate)
            try connection.executeScript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);")
        }
        return try BackupSet.create(
            pluginDirectory: live, manifest: try PluginManifest.load(pluginDirectory: live), tables: ["t"],
            database: try SQLitePluginDatabase(path: temp.sub("site.db")),
            paths: StatePaths(root: temp.sub("state")), runID: "run-1", now: now)
    }

    private func metaObject(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func writeMeta(_ object: [String: Any], to path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }

    @Test("a backup sits at backups/<plugin>/<version>-<UTC stamp>, a second one in the same second gets -2")
    func layout() throws {
        let temp = try TemporaryDirectory()
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let first = try makeBackup(in: temp, now: now)
        let second = try makeBackup(in: temp, now: now)
        let folder = BackupStore(paths: StatePaths(root: temp.sub("state"))).pluginFolder("molam-form")
        #expect(first.directory == folder + "/3.9.0-20231114T221320Z")
        #expect(second.directory == folder + "/3.9.0-20231114T221320Z-2")
        #expect(second.record.id == "molam-form/3.9.0-20231114T221320Z-2")
        #expect(first.files == BackupFiles(directory: first.directory))
        #expect(first.files.all == [first.filesArchive, first.filesManifest, first.tables, first.meta])
        #expect(Set(Tree.listing(first.directory)) == [
            "files.tar.zst", "files.manifest.json", "tables.db", "meta.json",
        ])
        #expect(Tree.mode(first.directory) == 0o700)
        #expect(Tree.listing(folder).allSatisfy { !BackupStore.isPartial($0) })
    }

    @Test("meta.json is written with format 1 and reads back as written")
    func metaFormatWritten() throws {
        let temp = try TemporaryDirectory()
        let backup = try makeBackup(in: temp)
        let object = try metaObject(backup.meta)
        #expect(object["format"] as? Int == 1)
        #expect(object["run_id"] as? String == "run-1")
        let meta = try BackupMeta.read(from: backup.meta)
        #expect(meta.format == 1)
        #expect(meta.plugin == "molam-form")
        #expect(meta.version == "3.9.0")
        #expect(meta.tableRows == ["t": 2])
        #expect(meta.fileCount == 2)
        #expect(meta.runID == "run-1")
    }

    @Test("a meta.json without format (as earlier versions wrote it) is format 1; the backup still verifies")
    func metaWithoutFormat() throws {
        let temp = try TemporaryDirectory()
        let backup = try makeBackup(in: temp)
        var object = try metaObject(backup.meta)
        object["format"] = nil
        object["run_id"] = NSNull()
        try writeMeta(object, to: backup.meta)
        let meta = try BackupMeta.read(from: backup.meta)
        #expect(meta.format == 1)
        #expect(meta.runID == nil)
        #expect(meta.plugin == "molam-form")
        try backup.verify(database: try SQLitePluginDatabase(path: temp.sub("site.db")))
    }

    @Test("a meta.json of a newer format is refused with one error naming the file and the format")
    func metaNewerFormat() throws {
        let temp = try TemporaryDirectory()
        let backup = try makeBackup(in: temp)
        // A newer format may change anything else too: only `format` is read before refusing.
        try writeMeta(["format": 2, "layout": "something new"], to: backup.meta)
        #expect(throws: BackupMetaError.newerFormat(path: backup.meta, format: 2)) {
            try BackupMeta.read(from: backup.meta)
        }
        let expected = "backup metadata \(backup.meta) is in backup format 2, but this molam-upgrade reads "
            + "format 1 at most: use the newer molam-upgrade that wrote it"
        #expect(BackupMetaError.newerFormat(path: backup.meta, format: 2).description == expected)
        #expect {
            try backup.verify(database: try SQLitePluginDatabase(path: temp.sub("site.db")))
        } throws: { error in
            "\(error)" == expected
        }
    }

    @Test("a backup missing its meta.json is incomplete")
    func metaMissing() throws {
        let temp = try TemporaryDirectory()
        let backup = try makeBackup(in: temp)
        #expect(unlink(backup.meta) == 0)
        #expect {
            try backup.verify(database: try SQLitePluginDatabase(path: temp.sub("site.db")))
        } throws: { error in
            "\(error)".contains("is incomplete: meta.json is missing")
        }
    }
}
