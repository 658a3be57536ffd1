import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One backup of a plugin version, laid out by `BackupStore` (`<state-dir>/backups/<plugin>/
/// <version>-<UTC timestamp>/`): the file tree, its per-file manifest, the owned tables and
/// `meta.json`, each reached through `files`. Files 0600, directories 0700.
///
/// A backup is written under a `.partial-` name and renamed into place only when complete and
/// synced, so a crash never leaves something that looks like a usable backup but is not.
public struct BackupSet: Sendable, Equatable {

    public var directory: String
    public var record: BackupRecord
    /// FIFOs, sockets and devices found in the live tree and left out ("path (FIFO)").
    public var skipped: [String] = []
    /// Tables that did not exist when the backup was taken (the migration ledger of a first
    /// migration among them): a table restore drops them.
    public var tablesMissing: [String] = []

    /// One line for the step's detail when something was left out, else "".
    var skippedNote: String {
        guard !skipped.isEmpty else { return "" }
        let shown = skipped.prefix(3).joined(separator: ", ") + (skipped.count > 3 ? ", …" : "")
        return "; left out \(skipped.count) special file\(skipped.count == 1 ? "" : "s") no plugin holds: \(shown)"
    }

    /// The backup's parts, by name.
    public var files: BackupFiles { BackupFiles(directory: directory) }
    public var filesArchive: String { files.filesArchive }
    public var filesManifest: String { files.filesManifest }
    public var tables: String { files.tables }
    public var meta: String { files.meta }

    /// Backs up the live plugin tree and the given tables. `tree` is where the files are read from
    /// when it is not `pluginDirectory` itself (the release a `swap: symlink` link names); the
    /// archive and the record still name the plugin directory.
    static func create(
        pluginDirectory: String, tree: String? = nil, manifest: PluginManifest, tables: [String],
        database: any PluginDatabase, paths: StatePaths, runID: String?, now: Date
    ) throws -> BackupSet {
        let place = try BackupStore(paths: paths).reserve(
            plugin: manifest.name, version: manifest.version.description, now: now)
        let partial = place.partial
        do {
            let topName = (pluginDirectory as NSString).lastPathComponent
            let fileManifest = try TreeArchive.create(
                from: tree ?? pluginDirectory, topName: topName, archivePath: partial.filesArchive)
            try fileManifest.write(to: partial.filesManifest)
            // Checked before it is relied on: a backup that cannot be read back is no backup. The archive
            // is read back on its own thread while the tables are copied, so the check costs no time
            // when the tables are the bigger half.
            let archiveCheck = ArchiveCheck(archive: partial.filesArchive, manifest: fileManifest)
            let summary: TableBackupSummary
            do {
                try FaultInjection.hit("mid-backup")
                summary = try database.backupTables(tables, to: partial.tables)
                _ = try database.verifyTableBackup(at: partial.tables)
            } catch {
                // The check still reads the partial directory: let it finish before that is removed.
                try? archiveCheck.wait()
                throw error
            }
            try archiveCheck.wait()

            let record = BackupRecord(
                id: "\(manifest.name)/\(place.name)", plugin: manifest.name,
                version: manifest.version.description, path: place.final.directory,
                createdAt: Journal.timestamp(now), sizeBytes: 0, runID: runID,
                fileCount: fileManifest.entries.filter { $0.kind == "file" }.count, tables: tables,
                pluginDirectory: pluginDirectory)
            let meta = BackupMeta(
                plugin: manifest.name, version: manifest.version.description, createdAt: record.createdAt,
                pluginDirectory: pluginDirectory, tables: tables, tablesMissing: summary.missing,
                tableRows: summary.tables, fileCount: record.fileCount, runID: runID)
            try FileSystem.writeAtomically(try meta.encoded(), to: partial.meta)
            try FileSystem.sync(partial.directory)
            try FileSystem.moveNoReplace(partial.directory, to: place.final.directory)
            var finished = record
            finished.sizeBytes = FileSystem.diskUsage(place.final.directory)
            return BackupSet(
                directory: place.final.directory, record: finished, skipped: fileManifest.skipped ?? [],
                tablesMissing: summary.missing)
        } catch {
            try? FileSystem.removeTree(partial.directory)
            throw error
        }
    }

    static func open(_ record: BackupRecord) -> BackupSet {
        BackupSet(directory: record.path, record: record)
    }

    /// Checks that the backup is whole before it is used for a restore: every part present, its
    /// format one this build reads, the files archive reading back exactly as its manifest recorded,
    /// the tables backup intact.
    func verify(database: any PluginDatabase) throws {
        for file in files.all where !FileSystem.exists(file) {
            throw UpgradeError.failed("backup \(directory) is incomplete: \((file as NSString).lastPathComponent) is missing")
        }
        do {
            _ = try BackupMeta.read(from: files.meta)
        } catch {
            throw UpgradeError.failed(error.description)
        }
        let manifest: TreeManifest
        do {
            manifest = try TreeManifest.read(from: filesManifest)
        } catch {
            throw UpgradeError.failed("backup \(directory): cannot read \(BackupFiles.filesManifestName): \(error)")
        }
        try TreeArchive.verify(archivePath: filesArchive, expecting: manifest)
        _ = try database.verifyTableBackup(at: tables)
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

extension BackupSet {
    /// The plugin's own tables in the backup: the migration ledger left out (it is the agent's).
    var pluginTables: [String] {
        record.tables.filter { $0.lowercased() != TableOwnership.ledgerTable }
    }
}
