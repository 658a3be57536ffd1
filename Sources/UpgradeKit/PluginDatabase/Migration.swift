import Foundation
import MolamCrypto

/// One schema migration of a plugin release: `migrations/NNNN_name.sql`, with an optional
/// `NNNN_name.down.sql`.
public struct Migration: Sendable, Equatable {
    /// NNNN from the file name, e.g. 2 for 0002_add_refunds.sql.
    public let version: Int
    /// "add_refunds".
    public let name: String
    public let sql: String
    public let downSQL: String?
    /// SHA-256 hex of the up file's bytes: an applied migration whose file changed is an error.
    public let checksum: String
    /// Path of the up file, for error messages.
    public let file: String

    public init(
        version: Int, name: String, sql: String, downSQL: String? = nil, checksum: String, file: String
    ) {
        self.version = version
        self.name = name
        self.sql = sql
        self.downSQL = downSQL
        self.checksum = checksum
        self.file = file
    }

    /// The migrations in `directory`, sorted by version; a missing directory has none. Files not
    /// ending in `.sql` (README, editor backups) and hidden files are ignored.
    public static func load(from directory: String) throws(PluginDatabaseError) -> [Migration] {
        let entries: [String]
        do {
            guard let listed = try DatabaseFileIO.listDirectory(directory) else { return [] }
            entries = listed
        } catch {
            throw .io(error)
        }
        var ups: [Int: [(name: String, file: String)]] = [:]
        var downs: [Int: (name: String, file: String)] = [:]
        for entry in entries.sorted() where entry.hasSuffix(".sql") && !entry.hasPrefix(".") {
            let file = directory + "/" + entry
            guard let parsed = parseFileName(entry) else { throw .invalidMigrationName(file: file) }
            if parsed.isDown {
                downs[parsed.version] = (parsed.name, file)
            } else {
                ups[parsed.version, default: []].append((parsed.name, file))
            }
        }
        for (version, down) in downs where ups[version]?.first?.name != down.name {
            // A down file without its up file is a misnamed file, not something to skip quietly.
            throw .invalidMigrationName(file: down.file)
        }
        var migrations: [Migration] = []
        for (version, candidates) in ups.sorted(by: { $0.key < $1.key }) {
            guard candidates.count == 1, let up = candidates.first else {
                throw .duplicateMigrationVersion(version, files: candidates.map(\.file))
            }
            let bytes = try read(up.file)
            let downSQL = try downs[version].map { down throws(PluginDatabaseError) in
                String(decoding: try read(down.file), as: UTF8.self)
            }
            migrations.append(Migration(
                version: version, name: up.name, sql: String(decoding: bytes, as: UTF8.self),
                downSQL: downSQL, checksum: try checksum(of: bytes, file: up.file), file: up.file
            ))
        }
        return migrations
    }

    /// The migration with `{prefix}` in its SQL (up and down) replaced by the site's table prefix; the
    /// checksum stays the file's, the same on every site.
    public func resolvingPrefix(_ prefix: String) -> Migration {
        Migration(
            version: version, name: name, sql: sql.replacing("{prefix}", with: prefix),
            downSQL: downSQL?.replacing("{prefix}", with: prefix), checksum: checksum, file: file)
    }

    /// "0002_add_refunds.sql": what error messages call a migration.
    public var fileName: String { DatabaseFileIO.baseName(file) }

    static func paddedVersion(_ version: Int) -> String {
        let digits = String(version)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// `NNNN_name.sql` or `NNNN_name.down.sql`: at least four digits, then [a-z0-9_]+.
    static func parseFileName(_ entry: String) -> (version: Int, name: String, isDown: Bool)? {
        let isDown = entry.hasSuffix(".down.sql")
        let stem = entry.dropLast(isDown ? ".down.sql".count : ".sql".count)
        guard let underscore = stem.firstIndex(of: "_") else { return nil }
        let digits = stem[..<underscore]
        let name = stem[stem.index(after: underscore)...]
        guard digits.count >= 4, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let version = Int(digits),
              !name.isEmpty,
              name.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
        else { return nil }
        return (version, String(name), isDown)
    }

    private static func read(_ file: String) throws(PluginDatabaseError) -> [UInt8] {
        do { return try DatabaseFileIO.readFile(file) } catch { throw .io(error) }
    }

    private static func checksum(of bytes: [UInt8], file: String) throws(PluginDatabaseError) -> String {
        do {
            return try SHA256.hexDigest(of: Data(bytes))
        } catch {
            // libcrypto fails here only when it cannot allocate a digest context.
            throw .io(SystemError(call: "EVP_Digest", path: file, errno: ENOMEM))
        }
    }
}

/// A row of `molam_schema_migrations`.
public struct AppliedMigration: Sendable, Equatable {
    public var version: Int
    public var name: String
    public var checksum: String
    public var appliedAt: String

    public init(version: Int, name: String, checksum: String, appliedAt: String) {
        self.version = version
        self.name = name
        self.checksum = checksum
        self.appliedAt = appliedAt
    }
}
