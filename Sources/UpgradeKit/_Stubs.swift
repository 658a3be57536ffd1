// TEMPORARY: signatures of the helpers' APIs, only so this branch type-checks until they merge.
import Foundation

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
