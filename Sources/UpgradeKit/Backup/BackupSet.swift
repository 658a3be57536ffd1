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
    ///
    /// The files and the tables are backed up side by side: the files archive (written, then read
    /// back against its manifest) on a thread of its own, while `prepareTables` (the shadow copies)
    /// and the tables backup run on the calling thread, which alone uses `database`. The tables' copies
    /// leave the site database to live writers after each chunk, so the calling thread sleeps for
    /// much of the copy: the files archive fills those pauses instead of following them.
    static func create(
        pluginDirectory: String, tree: String? = nil, manifest: PluginManifest, tables: [String],
        database: any PluginDatabase, paths: StatePaths, runID: String?, now: Date,
        prepareTables: () throws -> Void = {}
    ) throws -> BackupSet {
        let place = try BackupStore(paths: paths).reserve(
            plugin: manifest.name, version: manifest.version.description, now: now)
        let partial = place.partial
        do {
            let topName = (pluginDirectory as NSString).lastPathComponent
            let filesBackup = FilesBackup(
                tree: tree ?? pluginDirectory, topName: topName, archive: partial.filesArchive,
                manifest: partial.filesManifest)
            let summary: TableBackupSummary
            do {
                try prepareTables()
                try FaultInjection.hit("mid-backup")
                summary = try database.backupTables(tables, to: partial.tables)
                _ = try database.verifyTableBackup(at: partial.tables)
            } catch {
                // The files thread still writes in the partial directory: let it finish before that is
                // removed.
                _ = try? filesBackup.wait()
                throw error
            }
            let fileManifest = try filesBackup.wait()

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

/// The files half of a backup, on a thread of its own: the tree written to a tar.zst with its
/// per-file manifest, then the archive read back and checked against that manifest (a backup that
/// cannot be read back is no backup). `wait()` is called once, by the thread that started it; the
/// semaphore orders the worker's write of `outcome` before that read. The worker touches files in
/// the backup's partial directory only, never the database.
private final class FilesBackup: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private var outcome: Result<TreeManifest, any Error> = .failure(CancellationError())
    private var waited = false

    init(tree: String, topName: String, archive: String, manifest manifestPath: String) {
        Thread.detachNewThread { [self] in
            do {
                let manifest = try TreeArchive.create(from: tree, topName: topName, archivePath: archive)
                try manifest.write(to: manifestPath)
                try TreeArchive.verify(archivePath: archive, expecting: manifest)
                outcome = .success(manifest)
            } catch {
                outcome = .failure(error)
            }
            finished.signal()
        }
    }

    func wait() throws -> TreeManifest {
        precondition(!waited, "FilesBackup.wait called twice")
        waited = true
        finished.wait()
        return try outcome.get()
    }
}

extension BackupSet {
    /// The plugin's own tables in the backup: the migration ledger left out (it is the agent's).
    var pluginTables: [String] {
        record.tables.filter { $0.lowercased() != TableOwnership.ledgerTable }
    }
}
