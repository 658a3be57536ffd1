import Foundation

/// A backup's `meta.json`: what it holds, and the format it was written in, so that a later
/// molam-upgrade can still read it and an older one refuses what it does not know.
///
/// Format 1 is the layout of `BackupFiles` (files.tar.zst, files.manifest.json, tables.db). The
/// versions before the field existed wrote that same layout, so a meta.json without `format` is
/// format 1.
public struct BackupMeta: Sendable, Equatable {
    /// The format this build writes, and the highest it reads.
    public static let currentFormat = 1

    public var format: Int = BackupMeta.currentFormat
    public var plugin: String
    public var version: String
    public var createdAt: String
    public var pluginDirectory: String
    public var tables: [String]
    /// Owned tables that did not exist when the backup was taken.
    public var tablesMissing: [String]
    /// Rows per backed-up table.
    public var tableRows: [String: Int]
    public var fileCount: Int
    public var runID: String?

    /// Pretty-printed with sorted keys: people read it too.
    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads `path`, refusing a format newer than this build knows before looking at anything else.
    public static func read(from path: String) throws(BackupMetaError) -> BackupMeta {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        let decoder = JSONDecoder()
        let format: Int
        do { format = try decoder.decode(FormatOnly.self, from: data).format ?? 1 } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
        guard format <= currentFormat else { throw .newerFormat(path: path, format: format) }
        guard format >= 1 else { throw .unreadable(path: path, reason: "format \(format) does not exist") }
        do { return try decoder.decode(BackupMeta.self, from: data) } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
    }

    private struct FormatOnly: Decodable {
        var format: Int?
    }
}

extension BackupMeta: Codable {
    private enum CodingKeys: String, CodingKey {
        case format, plugin, version, tables
        case createdAt = "created_at"
        case pluginDirectory = "plugin_dir"
        case tablesMissing = "tables_missing"
        case tableRows = "table_rows"
        case fileCount = "file_count"
        case runID = "run_id"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        format = try container.decodeIfPresent(Int.self, forKey: .format) ?? 1
        plugin = try container.decode(String.self, forKey: .plugin)
        version = try container.decode(String.self, forKey: .version)
        createdAt = try container.decode(String.self, forKey: .createdAt)
        pluginDirectory = try container.decode(String.self, forKey: .pluginDirectory)
        tables = try container.decodeIfPresent([String].self, forKey: .tables) ?? []
        tablesMissing = try container.decodeIfPresent([String].self, forKey: .tablesMissing) ?? []
        tableRows = try container.decodeIfPresent([String: Int].self, forKey: .tableRows) ?? [:]
        fileCount = try container.decodeIfPresent(Int.self, forKey: .fileCount) ?? 0
        runID = try container.decodeIfPresent(String.self, forKey: .runID)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(format, forKey: .format)
        try container.encode(plugin, forKey: .plugin)
        try container.encode(version, forKey: .version)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(pluginDirectory, forKey: .pluginDirectory)
        try container.encode(tables, forKey: .tables)
        try container.encode(tablesMissing, forKey: .tablesMissing)
        try container.encode(tableRows, forKey: .tableRows)
        try container.encode(fileCount, forKey: .fileCount)
        // Written as null, as before, rather than left out.
        try container.encode(runID, forKey: .runID)
    }
}

/// Why a backup's meta.json cannot be used.
public enum BackupMetaError: Error, CustomStringConvertible, Sendable, Equatable {
    case unreadable(path: String, reason: String)
    /// Written by a newer molam-upgrade, in a layout this one does not know.
    case newerFormat(path: String, format: Int)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "backup metadata \(path) cannot be read: \(reason)"
        case .newerFormat(let path, let format):
            return "backup metadata \(path) is in backup format \(format), but this molam-upgrade reads "
                + "format \(BackupMeta.currentFormat) at most: use the newer molam-upgrade that wrote it"
        }
    }
}
