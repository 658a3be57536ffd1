import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One backup of a plugin version: `<state-dir>/backups/<plugin>/<version>-<UTC timestamp>/` holding
/// the file tree (`files.tar.zst`), its per-file manifest (`files.manifest.json`), the owned tables
/// (`tables.db`) and `meta.json`. Files 0600, directories 0700.
///
/// A backup is written under a `.partial-` name and renamed into place only when complete and
/// synced, so a crash never leaves something that looks like a usable backup but is not.
public struct BackupSet: Sendable, Equatable {
    public static let filesArchiveName = "files.tar.zst"
    public static let filesManifestName = "files.manifest.json"
    public static let tablesName = "tables.db"
    public static let metaName = "meta.json"

    public var directory: String
    public var record: BackupRecord
    /// FIFOs, sockets and devices found in the live tree and left out ("path (FIFO)").
    public var skipped: [String] = []

    /// One line for the step's detail when something was left out, else "".
    var skippedNote: String {
        guard !skipped.isEmpty else { return "" }
        let shown = skipped.prefix(3).joined(separator: ", ") + (skipped.count > 3 ? ", …" : "")
        return "; left out \(skipped.count) special file\(skipped.count == 1 ? "" : "s") no plugin holds: \(shown)"
    }

    public var filesArchive: String { directory + "/" + Self.filesArchiveName }
    public var filesManifest: String { directory + "/" + Self.filesManifestName }
    public var tables: String { directory + "/" + Self.tablesName }

    /// Backs up the live plugin tree and the given tables. `tree` is where the files are read from
    /// when it is not `pluginDirectory` itself (the release a `swap: symlink` link names); the
    /// archive and the record still name the plugin directory.
    static func create(
        pluginDirectory: String, tree: String? = nil, manifest: PluginManifest, tables: [String],
        database: SQLitePluginDatabase, paths: StatePaths, runID: String?, now: Date
    ) throws -> BackupSet {
        let pluginBackups = paths.backups + "/" + manifest.name
        try FileSystem.makeDirectory(pluginBackups, mode: 0o700)
        let stamp = Self.stamp(now)
        var name = "\(manifest.version)-\(stamp)"
        var suffix = 2
        while FileSystem.exists(pluginBackups + "/" + name) {
            name = "\(manifest.version)-\(stamp)-\(suffix)"
            suffix += 1
        }
        let final = pluginBackups + "/" + name
        let partial = pluginBackups + "/.partial-" + name
        try FileSystem.removeTree(partial)
        try FileSystem.makeDirectory(partial, mode: 0o700)
        do {
            let topName = (pluginDirectory as NSString).lastPathComponent
            let fileManifest = try TreeArchive.create(
                from: tree ?? pluginDirectory, topName: topName, archivePath: partial + "/" + filesArchiveName)
            try fileManifest.write(to: partial + "/" + filesManifestName)
            // Checked before it is relied on: a backup that cannot be read back is no backup. The archive
            // is read back on its own thread while the tables are copied, so the check costs no time
            // when the tables are the bigger half.
            let archiveCheck = ArchiveCheck(archive: partial + "/" + filesArchiveName, manifest: fileManifest)
            let summary: TableBackupSummary
            do {
                try FaultInjection.hit("mid-backup")
                summary = try database.backupTables(tables, to: partial + "/" + tablesName)
                _ = try SQLitePluginDatabase.verifyTableBackup(at: partial + "/" + tablesName)
            } catch {
                // The check still reads the partial directory: let it finish before that is removed.
                try? archiveCheck.wait()
                throw error
            }
            try archiveCheck.wait()

            let record = BackupRecord(
                id: "\(manifest.name)/\(name)", plugin: manifest.name, version: manifest.version.description,
                path: final, createdAt: Journal.timestamp(now), sizeBytes: 0, runID: runID,
                fileCount: fileManifest.entries.filter { $0.kind == "file" }.count, tables: tables,
                pluginDirectory: pluginDirectory)
            let meta: [String: Any] = [
                "plugin": manifest.name,
                "version": manifest.version.description,
                "created_at": record.createdAt,
                "plugin_dir": pluginDirectory,
                "tables": tables,
                "tables_missing": summary.missing,
                "table_rows": summary.tables,
                "file_count": record.fileCount,
                "run_id": runID ?? NSNull(),
            ]
            let metaData = try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys])
            try FileSystem.writeAtomically(metaData, to: partial + "/" + metaName)
            try FileSystem.sync(partial)
            try FileSystem.moveNoReplace(partial, to: final)
            var finished = record
            finished.sizeBytes = FileSystem.diskUsage(final)
            return BackupSet(directory: final, record: finished, skipped: fileManifest.skipped ?? [])
        } catch {
            try? FileSystem.removeTree(partial)
            throw error
        }
    }

    static func open(_ record: BackupRecord) -> BackupSet {
        BackupSet(directory: record.path, record: record)
    }

    /// Checks that the backup is whole before it is used for a restore: every part present, the files
    /// archive reading back exactly as its manifest recorded, the tables backup intact.
    func verify() throws {
        for file in [filesArchive, filesManifest, tables] where !FileSystem.exists(file) {
            throw UpgradeError.failed("backup \(directory) is incomplete: \((file as NSString).lastPathComponent) is missing")
        }
        let manifest: TreeManifest
        do {
            manifest = try TreeManifest.read(from: filesManifest)
        } catch {
            throw UpgradeError.failed("backup \(directory): cannot read \(Self.filesManifestName): \(error)")
        }
        try TreeArchive.verify(archivePath: filesArchive, expecting: manifest)
        _ = try SQLitePluginDatabase.verifyTableBackup(at: tables)
    }

    static func stamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }
}

/// `TreeArchive.verify` of a fresh backup archive, run on a thread of its own so that it overlaps the
/// tables backup. `wait()` is called once, by the thread that made the check; the semaphore orders the
/// worker's write of `outcome` before that read.
private final class ArchiveCheck: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private var outcome: Result<Void, TreeArchiveError> = .success(())
    private var waited = false

    init(archive: String, manifest: TreeManifest) {
        Thread.detachNewThread { [self] in
            do throws(TreeArchiveError) {
                try TreeArchive.verify(archivePath: archive, expecting: manifest)
            } catch {
                outcome = .failure(error)
            }
            finished.signal()
        }
    }

    func wait() throws(TreeArchiveError) {
        precondition(!waited, "ArchiveCheck.wait called twice")
        waited = true
        finished.wait()
        try outcome.get()
    }
}
