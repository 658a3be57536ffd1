import Foundation

/// Caps on what a release archive may make us write. The sizes headers declare are checked before
/// extracting, as an early refusal; the bytes actually written are checked again while extracting,
/// since declared sizes are the attacker's word.
public struct ExtractionLimits: Sendable {
    public var maxTotalBytes: Int64
    public var maxEntries: Int
    /// Bytes written per compressed byte read, checked once more than 1 MiB has been written.
    public var maxRatio: Double
    public var maxPathBytes: Int
    public var maxComponentBytes: Int
    public var maxDepth: Int
    /// Bytes of distinct paths, implied directories included, the header pass may hold in memory:
    /// without it 100,000 entries of 4 KiB names, each in its own directories, would cost gigabytes
    /// before a byte is written. A 5,000-file plugin needs well under 1 MiB.
    public var maxNameBytes: Int

    public init(
        maxTotalBytes: Int64 = 1 << 30, maxEntries: Int = 100_000, maxRatio: Double = 200,
        maxPathBytes: Int = 4096, maxComponentBytes: Int = 255, maxDepth: Int = 64, maxNameBytes: Int = 8 << 20
    ) {
        self.maxTotalBytes = maxTotalBytes
        self.maxEntries = maxEntries
        self.maxRatio = maxRatio
        self.maxPathBytes = maxPathBytes
        self.maxComponentBytes = maxComponentBytes
        self.maxDepth = maxDepth
        self.maxNameBytes = maxNameBytes
    }

    public static let `default` = ExtractionLimits()

    /// Written bytes below which the ratio is not checked: small files compress well legitimately.
    static let ratioGrace: Int64 = 1 << 20
}

/// Why a release archive was refused. Each description is one line naming the archive and the entry.
public enum ArchiveRefusal: Error, CustomStringConvertible, Sendable {
    /// Corrupt, truncated or of an unknown format (libarchive's message).
    case unreadable(archive: String, reason: String)
    case empty(archive: String)
    /// Absolute, '..', backslash, empty or '.' components, invalid UTF-8, control characters, too long
    /// or too deep.
    case unsafePath(archive: String, entry: String, reason: String)
    /// Symlink, hard link, device, FIFO or socket.
    case forbiddenEntry(archive: String, entry: String, kind: String)
    /// Exact or case-insensitive duplicate, or a file/directory clash.
    case duplicate(archive: String, entry: String)
    case notSingleTopDirectory(archive: String, found: [String])
    case limitExceeded(archive: String, limit: String)
    /// Two zip entries whose bytes overlap: the construction of non-recursive zip bombs (David
    /// Fifield, "A better zip bomb", 2019), where many entries share one compressed kernel.
    case overlappingEntries(archive: String, entry: String, other: String)
    /// Headers that contradict each other: a zip entry without a local header where the central
    /// directory says, or running into the central directory; an archive that reads differently the
    /// second time.
    case inconsistent(archive: String, entry: String, reason: String)
    case io(SystemError)

    public var description: String {
        switch self {
        case .unreadable(let archive, let reason):
            return "release archive \(archive): cannot be read: \(reason)"
        case .empty(let archive):
            return "release archive \(archive): contains no entries"
        case .unsafePath(let archive, let entry, let reason):
            return "release archive \(archive): entry '\(entry)' \(reason)"
        case .forbiddenEntry(let archive, let entry, let kind):
            return "release archive \(archive): entry '\(entry)' is a \(kind); "
                + "only regular files and directories are allowed"
        case .duplicate(let archive, let entry):
            return "release archive \(archive): entry '\(entry)' clashes with an earlier entry "
                + "(same path, same path in another case, or file versus directory)"
        case .notSingleTopDirectory(let archive, let found):
            let names = found.map { "'\($0)'" }.joined(separator: ", ")
            return "release archive \(archive): must hold exactly one top directory, found \(names)"
        case .limitExceeded(let archive, let limit):
            return "release archive \(archive): refused, \(limit)"
        case .overlappingEntries(let archive, let entry, let other):
            return "release archive \(archive): zip entry '\(entry)' overlaps entry '\(other)' "
                + "(overlapping entries are how zip bombs multiply their output)"
        case .inconsistent(let archive, let entry, let reason):
            return "release archive \(archive): entry '\(entry)' \(reason)"
        case .io(let error):
            if error.isOutOfSpace {
                return "no space left on the filesystem of \(error.path ?? "the destination") "
                    + "(\(error.call)): free space and retry"
            }
            return error.description
        }
    }
}

/// The plugin directory a successful extraction produced.
public struct ExtractedTree: Sendable, Equatable {
    /// Absolute path of the top directory.
    public let root: String
    public let topName: String
    public let fileCount: Int
    public let directoryCount: Int
    public let bytesWritten: Int64
}

/// "1 GiB", "512 KiB", or plain bytes, for limit messages.
func formatBytes(_ count: Int64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where count >= (1 << shift) {
        if count % (1 << shift) == 0 { return "\(count >> shift) \(unit)" }
    }
    return "\(count) bytes"
}
