// TEMPORARY: signatures of the helpers' APIs, only so this branch type-checks until they merge.
import Foundation

public enum OpenMode { case readOnly, readWrite, readWriteCreate }
public enum TransactionKind { case deferred, immediate, exclusive }
public enum SQLiteValue: Sendable, Equatable, Hashable {
    case null, integer(Int64), real(Double), text(String), blob([UInt8])
    public var stringValue: String? { nil }
    public var intValue: Int64? { nil }
}
public struct SQLiteRow {
    public subscript(_ column: String) -> SQLiteValue { .null }
}
public final class SQLiteConnection {
    public init(path: String, mode: OpenMode = .readWriteCreate) throws {}
    public func execute(_ sql: String) throws {}
    public func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws {}
    public func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> [SQLiteRow] { [] }
    public func scalar(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> SQLiteValue? { nil }
    public func transaction<T>(_ kind: TransactionKind = .immediate, _ body: () throws -> T) throws -> T { try body() }
    public var lastInsertRowID: Int64 { 0 }
}
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String
    public let downSQL: String?
    public let checksum: String
    public let file: String
    public static func load(from directory: String) throws(PluginDatabaseError) -> [Migration] { [] }
}
public struct TableBackupSummary: Sendable, Equatable { public var tables: [String: Int]; public var missing: [String]; public var bytes: Int64 }
public struct TableRestoreSummary: Sendable, Equatable { public var restored: [String]; public var dropped: [String] }
public enum PluginDatabaseError: Error, CustomStringConvertible, Sendable {
    case missingDatabase(path: String)
    public var description: String { "" }
}
public final class SQLitePluginDatabase {
    public init(path: String) throws(PluginDatabaseError) { self.path = path }
    public let path: String
    public func backupTables(_ tables: [String], to backupPath: String) throws(PluginDatabaseError) -> TableBackupSummary { fatalError() }
    public static func verifyTableBackup(at backupPath: String) throws(PluginDatabaseError) -> TableBackupSummary { fatalError() }
    public func restoreTables(from backupPath: String, alsoDrop: [String] = []) throws(PluginDatabaseError) -> TableRestoreSummary { fatalError() }
    public func pendingMigrations(_ all: [Migration]) throws(PluginDatabaseError) -> [Migration] { [] }
    public func applyMigrations(_ pending: [Migration], now: Date, onApplied: (Migration) -> Void = { _ in }) throws(PluginDatabaseError) {}
    public func smokeQuery(_ sql: String, timeoutSeconds: Double) throws(PluginDatabaseError) -> String { "" }
}
public struct ExtractionLimits: Sendable { public static let `default` = ExtractionLimits() }
public enum ArchiveRefusal: Error, CustomStringConvertible, Sendable {
    case io(SystemError)
    public var description: String { "" }
}
public struct ExtractedTree: Sendable { public let root: String; public let topName: String; public let fileCount: Int; public let directoryCount: Int; public let bytesWritten: Int64 }
public enum SafeExtractor {
    public static func extract(archive: String, into destination: String, limits: ExtractionLimits = .default) throws(ArchiveRefusal) -> ExtractedTree { fatalError() }
}
public enum ArchivePeek {
    public static func readMember(named relativePath: String, fromArchive: String, maxBytes: Int = 1 << 20) throws(ArchiveRefusal) -> Data? { nil }
}
public struct TreeManifest: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable { public var path: String; public var kind: String; public var mode: UInt32; public var size: Int64; public var sha256: String?; public var target: String? }
    public var entries: [Entry]
    public static func scan(directory: String) throws(SystemError) -> TreeManifest { fatalError() }
    public func write(to path: String) throws {}
    public static func read(from path: String) throws -> TreeManifest { fatalError() }
}
public enum TreeArchive {
    public static func create(from directory: String, topName: String, archivePath: String) throws -> TreeManifest { fatalError() }
    public static func restore(archivePath: String, into destination: String, expecting manifest: TreeManifest) throws -> String { "" }
}
