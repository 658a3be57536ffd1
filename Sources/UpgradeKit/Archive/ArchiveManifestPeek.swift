import Foundation
import MolamArchive

extension SafeExtractor {
    /// The bytes of `<top>/<relativePath>` (e.g. "molam-plugin.json") in a release archive, without
    /// extracting anything, or nil if the archive has no such regular file.
    ///
    /// Every header read on the way is held to the same rules as `extract` (kinds, names, one top
    /// directory, duplicates), so `check` and `--dry-run` refuse what `stage` would refuse up to that
    /// member. The scan stops at the member; entries after it are checked by `extract`.
    public static func readMember(
        named relativePath: String, fromArchive archive: String, maxBytes: Int = 1 << 20
    ) throws(ArchiveRefusal) -> Data? {
        let reader: ArchiveReader
        do { reader = try ArchiveReader(path: archive) } catch {
            throw .unreadable(archive: archive, reason: error.message)
        }
        let wanted = relativePath.split(separator: "/").map(String.init)
        var checker = EntryChecker(archive: archive, limits: .default)
        while true {
            let next: ArchiveEntryInfo?
            do { next = try reader.nextEntry() } catch {
                throw .unreadable(archive: archive, reason: error.message)
            }
            guard let info = next else { break }
            let components = try checker.admit(info, isZip: reader.isZip)
            guard info.kind == .file, Array(components.dropFirst()) == wanted else { continue }
            return try readAll(reader, entry: info.displayPath, archive: archive, maxBytes: maxBytes)
        }
        if checker.topName == nil { throw .empty(archive: archive) }
        return nil
    }

    private static func readAll(
        _ reader: ArchiveReader, entry: String, archive: String, maxBytes: Int
    ) throws(ArchiveRefusal) -> Data {
        var data = Data()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let count: Int
            do { count = try reader.readData(into: chunk) } catch {
                throw .unreadable(archive: archive, reason: "entry '\(entry)': \(error.message)")
            }
            if count == 0 { return data }
            data.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[..<count]))
            if data.count > maxBytes {
                let limit = "entry '\(entry)' is over \(formatBytes(Int64(maxBytes)))"
                throw .limitExceeded(archive: archive, limit: limit)
            }
        }
    }
}
