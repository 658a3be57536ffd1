import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The entries a zip's central directory lists: what `unzip -l`, reviewers and most tools see, and
/// where each entry's bytes lie.
///
/// libarchive 3.6.2's seekable zip reader walks the central directory but reports each entry's name
/// from its local header, so a zip whose two copies disagree would show a reviewer one name and make
/// us write another. Release extraction therefore checks every name libarchive reports against this
/// list. It also checks the layout libarchive trusts blindly: every entry's local header must be
/// where the central directory says, and no two entries' bytes may overlap or run into the central
/// directory. Overlapping entries are how a 42 KB zip expands to gigabytes without nesting (David
/// Fifield, "A better zip bomb", WOOT 2019); an honest writer never produces them.
/// (APPNOTE.TXT 4.3.7, 4.3.12, 4.3.14-16 and 4.5.3 for the records parsed here.)
struct ZipCentralDirectory {
    enum Problem: Error {
        /// The end record or the central directory cannot be parsed.
        case malformed(String)
        /// The end record declares more entries than the limit; nothing else was read.
        case tooManyEntries(declared: UInt64)
        /// One entry's local header is missing or out of place.
        case entry(name: [UInt8], reason: String)
        /// Two entries' spans overlap.
        case overlap(name: [UInt8], other: [UInt8])
    }

    struct Entry {
        /// Raw name bytes as the central directory stores them.
        let name: [UInt8]
        let localHeaderOffset: UInt64
        let compressedSize: UInt64
        /// The `S_IFMT` bits of the external attributes when the zip was made on a Unix-like host
        /// (which is when they hold st_mode, APPNOTE 4.4.2 and 4.4.15), 0 when they say nothing.
        let unixFileType: UInt32
    }

    /// In central-directory order, with multiplicity: duplicates are the entry checker's business.
    let entries: [Entry]
    var names: [[UInt8]] { entries.map(\.name) }

    /// Reads and checks the central directory of the zip at `path`. `maxEntries` is checked against
    /// the end record before the directory itself is read.
    static func read(path: String, maxEntries: Int) throws(Problem) -> ZipCentralDirectory {
        let file = try ZipFile(path: path)
        let size = file.size
        // The end record is 22 bytes plus a comment of at most 65535 bytes.
        let tailStart = size > 65_557 ? size - 65_557 : 0
        let tail = try file.read(at: tailStart, count: Int(size - tailStart))
        guard tail.count >= 22, let end = lastIndex(of: 0x0605_4b50, in: tail) else {
            throw .malformed("no end of central directory record")
        }
        var count = UInt64(le16(tail, end + 10))
        var directorySize = UInt64(le32(tail, end + 12))
        var offset = UInt64(le32(tail, end + 16))
        if count == 0xffff || directorySize == 0xffff_ffff || offset == 0xffff_ffff {
            // Zip64: the locator sits just before the end record and points at the zip64 end record.
            guard end >= 20, le32(tail, end - 20) == 0x0706_4b50 else {
                throw .malformed("zip64 locator missing")
            }
            let record = try file.read(at: le64(tail, end - 20 + 8), count: 56)
            guard record.count == 56, le32(record, 0) == 0x0606_4b50 else {
                throw .malformed("zip64 end record missing")
            }
            count = le64(record, 32)
            directorySize = le64(record, 40)
            offset = le64(record, 48)
        }
        if count > UInt64(maxEntries) { throw .tooManyEntries(declared: count) }
        // Compared without adding: hostile zip64 values could overflow the sum.
        guard offset <= size, directorySize <= size - offset, directorySize <= 256 << 20 else {
            throw .malformed("central directory out of bounds")
        }
        let directory = try file.read(at: offset, count: Int(directorySize))
        var entries: [Entry] = []
        var at = 0
        while at + 46 <= directory.count {
            guard le32(directory, at) == 0x0201_4b50 else { throw .malformed("bad central header") }
            let nameLength = Int(le16(directory, at + 28))
            let extraLength = Int(le16(directory, at + 30))
            let commentLength = Int(le16(directory, at + 32))
            guard at + 46 + nameLength + extraLength <= directory.count else {
                throw .malformed("central header out of bounds")
            }
            let name = Array(directory[(at + 46)..<(at + 46 + nameLength)])
            // Host 3 is Unix, 19 is OS X; both store st_mode in the high half of the external attributes.
            let host = directory[at + 5]
            let unixFileType = host == 3 || host == 19 ? (le32(directory, at + 38) >> 16) & 0o170000 : 0
            var compressedSize = UInt64(le32(directory, at + 20))
            var localOffset = UInt64(le32(directory, at + 42))
            if compressedSize == 0xffff_ffff || localOffset == 0xffff_ffff {
                let extra = Array(directory[(at + 46 + nameLength)..<(at + 46 + nameLength + extraLength)])
                let uncompressed32 = le32(directory, at + 24)
                guard let values = zip64Values(in: extra, uncompressedIs64: uncompressed32 == 0xffff_ffff,
                                               compressedIs64: compressedSize == 0xffff_ffff,
                                               offsetIs64: localOffset == 0xffff_ffff) else {
                    throw .entry(name: name, reason: "lacks the zip64 extra field its sizes call for")
                }
                compressedSize = values.compressed ?? compressedSize
                localOffset = values.offset ?? localOffset
            }
            entries.append(Entry(name: name, localHeaderOffset: localOffset, compressedSize: compressedSize,
                                 unixFileType: unixFileType))
            at += 46 + nameLength + extraLength + commentLength
        }
        guard UInt64(entries.count) == count else {
            throw .malformed("central directory lists \(entries.count) entries, end record says \(count)")
        }
        try checkLayout(entries, directoryStart: offset, file: file)
        return ZipCentralDirectory(entries: entries)
    }

    /// Each entry spans [local header, end of its compressed data); the spans must be disjoint and end
    /// before the central directory. (A data descriptor after the data is not counted: leaving it out
    /// can only shorten a span, so no overlap is hidden that would otherwise be missed.)
    private static func checkLayout(
        _ entries: [Entry], directoryStart: UInt64, file: ZipFile
    ) throws(Problem) {
        var spans: [(start: UInt64, end: UInt64, index: Int)] = []
        spans.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            let offset = entry.localHeaderOffset
            guard offset < directoryStart else {
                throw .entry(name: entry.name, reason: "has its local header at offset \(offset), "
                             + "inside or past the central directory")
            }
            let header = try file.read(at: offset, count: 30)
            guard header.count == 30, le32(header, 0) == 0x0403_4b50 else {
                throw .entry(name: entry.name, reason: "has no local header at offset \(offset), "
                             + "where the central directory points")
            }
            let headerLength = 30 + UInt64(le16(header, 26)) + UInt64(le16(header, 28))
            // Checked without overflowing: sizes are attacker-controlled 64-bit values.
            let room = directoryStart - offset
            guard headerLength <= room, entry.compressedSize <= room - headerLength else {
                throw .entry(name: entry.name, reason: "runs into the central directory")
            }
            spans.append((offset, offset + headerLength + entry.compressedSize, index))
        }
        spans.sort { $0.start < $1.start }
        var widest: (end: UInt64, index: Int)?
        for span in spans {
            if let widest, span.start < widest.end {
                let (first, second) = span.index > widest.index ? (widest.index, span.index)
                                                                : (span.index, widest.index)
                throw .overlap(name: entries[second].name, other: entries[first].name)
            }
            if widest == nil || span.end > (widest?.end ?? 0) { widest = (span.end, span.index) }
        }
    }

    /// The zip64 extended information extra field (header ID 0x0001, APPNOTE 4.5.3): it holds only
    /// the values whose 32-bit field is 0xFFFFFFFF, in a fixed order. Nil when it is missing or short.
    private static func zip64Values(
        in extra: [UInt8], uncompressedIs64: Bool, compressedIs64: Bool, offsetIs64: Bool
    ) -> (compressed: UInt64?, offset: UInt64?)? {
        var at = 0
        while at + 4 <= extra.count {
            let id = le16(extra, at)
            let length = Int(le16(extra, at + 2))
            guard at + 4 + length <= extra.count else { return nil }
            if id == 0x0001 {
                var field = at + 4
                let fieldEnd = at + 4 + length
                func next() -> UInt64? {
                    guard field + 8 <= fieldEnd else { return nil }
                    defer { field += 8 }
                    return le64(extra, field)
                }
                if uncompressedIs64 { guard next() != nil else { return nil } }
                var compressed: UInt64?
                var offset: UInt64?
                if compressedIs64 {
                    guard let value = next() else { return nil }
                    compressed = value
                }
                if offsetIs64 {
                    guard let value = next() else { return nil }
                    offset = value
                }
                return (compressed, offset)
            }
            at += 4 + length
        }
        return nil
    }

    private static func lastIndex(of signature: UInt32, in bytes: [UInt8]) -> Int? {
        var index = bytes.count - 22
        while index >= 0 {
            if le32(bytes, index) == signature { return index }
            index -= 1
        }
        return nil
    }

    private static func le16(_ bytes: [UInt8], _ at: Int) -> UInt16 {
        UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
    }

    private static func le32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(le16(bytes, at)) | UInt32(le16(bytes, at + 2)) << 16
    }

    private static func le64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
        UInt64(le32(bytes, at)) | UInt64(le32(bytes, at + 4)) << 32
    }
}

/// The zip opened read-only for positioned reads (pread(2)), closed in `deinit`.
private final class ZipFile {
    let fd: Int32
    let path: String
    let size: UInt64

    init(path: String) throws(ZipCentralDirectory.Problem) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .malformed("cannot open: \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw .malformed("cannot stat: \(message)")
        }
        self.fd = fd
        self.path = path
        self.size = UInt64(max(info.st_size, 0))
    }

    deinit { close(fd) }

    /// Up to `count` bytes at `offset`; fewer only at the end of the file.
    func read(at offset: UInt64, count: Int) throws(ZipCentralDirectory.Problem) -> [UInt8] {
        guard offset < size, count > 0 else { return [] }
        let wanted = Int(min(UInt64(count), size - offset))
        var bytes = [UInt8](repeating: 0, count: wanted)
        var done = 0
        while done < wanted {
            let got = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return pread(fd, base + done, wanted - done, off_t(offset) + off_t(done))
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw .malformed("cannot read: \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }
            done += got
        }
        return done == wanted ? bytes : Array(bytes[..<done])
    }
}
