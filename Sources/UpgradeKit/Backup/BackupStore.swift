import Foundation

/// Where a state directory keeps its backups, and the one place that knows their names:
/// `<state-dir>/backups/<plugin>/<version>-<UTC stamp>[-N]/`, each written first as
/// `.partial-<name>` and renamed into place once complete and synced (DESIGN.md, Backups).
/// Directories 0700, files 0600.
public struct BackupStore: Sendable, Equatable {
    /// The prefix of a backup still being written, or one a crash interrupted: never used.
    public static let partialPrefix = ".partial-"

    /// `<state-dir>/backups`.
    public let root: String

    public init(paths: StatePaths) { root = paths.backups }

    /// The folder holding every backup of `plugin`.
    public func pluginFolder(_ plugin: String) -> String { root + "/" + plugin }

    /// Whether an entry of a plugin folder is an unfinished backup.
    public static func isPartial(_ entryName: String) -> Bool { entryName.hasPrefix(partialPrefix) }

    /// A new backup's place: the first free `<version>-<stamp>[-N]` name, and its `.partial-` twin
    /// created empty (0700; a leftover of a crash is removed first).
    struct Reservation: Sendable {
        /// `<version>-<stamp>[-N]`, the second half of the backup's id.
        let name: String
        /// Where the backup is written.
        let partial: BackupFiles
        /// Where it is renamed to when complete.
        let final: BackupFiles
    }

    func reserve(plugin: String, version: String, now: Date) throws -> Reservation {
        let folder = pluginFolder(plugin)
        try FileSystem.makeDirectory(folder, mode: 0o700)
        let stamp = Self.stamp(now)
        var name = "\(version)-\(stamp)"
        var suffix = 2
        while FileSystem.exists(folder + "/" + name) {
            name = "\(version)-\(stamp)-\(suffix)"
            suffix += 1
        }
        let partial = folder + "/" + Self.partialPrefix + name
        try FileSystem.removeTree(partial)
        try FileSystem.makeDirectory(partial, mode: 0o700)
        return Reservation(
            name: name, partial: BackupFiles(directory: partial),
            final: BackupFiles(directory: folder + "/" + name))
    }

    /// `20240131T235959Z`: UTC, sortable, no characters a path or a shell would mind.
    static func stamp(_ date: Date) -> String {
        UTCTimestamp.compact(date)
    }
}

/// The parts of one backup directory, by name. Callers ask for a part here instead of joining names
/// to a directory themselves.
public struct BackupFiles: Sendable, Hashable {
    public static let filesArchiveName = "files.tar.zst"
    public static let filesManifestName = "files.manifest.json"
    public static let tablesName = "tables.db"
    public static let metaName = "meta.json"

    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// The plugin's file tree (pax tar, zstd).
    public var filesArchive: String { part(Self.filesArchiveName) }
    /// Each file's path, kind, mode, owner, size and SHA-256 (`TreeManifest`).
    public var filesManifest: String { part(Self.filesManifestName) }
    /// The owned tables, in the database engine's own backup format.
    public var tables: String { part(Self.tablesName) }
    /// What the backup holds and its format (`BackupMeta`).
    public var meta: String { part(Self.metaName) }

    /// Every part a complete backup has.
    public var all: [String] { [filesArchive, filesManifest, tables, meta] }

    private func part(_ name: String) -> String { directory + "/" + name }
}
