import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The entry names a zip's central directory lists: what `unzip -l`, reviewers and most tools see.
///
/// libarchive 3.6.2's seekable zip reader walks the central directory but reports each entry's name
/// from its local header, so a zip whose two copies disagree would show a reviewer one name and make
/// us write another. Release extraction therefore checks every name libarchive reports against this
/// list (APPNOTE.TXT 4.3.12, 4.3.14-16 for the records parsed here).
struct ZipCentralDirectory {
    enum Problem: Error {
        case malformed(String)
    }

    /// Raw names, with multiplicity: duplicates are the entry checker's business.
    let names: [[UInt8]]

    static func read(path: String) throws(Problem) -> ZipCentralDirectory {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .malformed("cannot open") }
        defer { try? handle.close() }
        do {
            let size = try handle.seekToEnd()
            // The end record is 22 bytes plus a comment of at most 65535 bytes.
            let tailStart = size > 65_557 ? size - 65_557 : 0
            try handle.seek(toOffset: tailStart)
            let tail = [UInt8](try handle.readToEnd() ?? Data())
            guard tail.count >= 22, let end = lastIndex(of: 0x0605_4b50, in: tail) else {
                throw Problem.malformed("no end of central directory record")
            }
            var count = UInt64(le16(tail, end + 10))
            var directorySize = UInt64(le32(tail, end + 12))
            var offset = UInt64(le32(tail, end + 16))
            if count == 0xffff || directorySize == 0xffff_ffff || offset == 0xffff_ffff {
                // Zip64: the locator sits just before the end record and points at the zip64 end record.
                guard end >= 20, le32(tail, end - 20) == 0x0706_4b50 else {
                    throw Problem.malformed("zip64 locator missing")
                }
                try handle.seek(toOffset: le64(tail, end - 20 + 8))
                let record = [UInt8](try handle.read(upToCount: 56) ?? Data())
                guard record.count == 56, le32(record, 0) == 0x0606_4b50 else {
                    throw Problem.malformed("zip64 end record missing")
                }
                count = le64(record, 32)
                directorySize = le64(record, 40)
                offset = le64(record, 48)
            }
            // Compared without adding: hostile zip64 values could overflow the sum.
            guard offset <= size, directorySize <= size - offset, directorySize <= 256 << 20 else {
                throw Problem.malformed("central directory out of bounds")
            }
            try handle.seek(toOffset: offset)
            let directory = [UInt8](try handle.read(upToCount: Int(directorySize)) ?? Data())
            var names: [[UInt8]] = []
            var at = 0
            while at + 46 <= directory.count {
                guard le32(directory, at) == 0x0201_4b50 else {
                    throw Problem.malformed("bad central header")
                }
                let nameLength = Int(le16(directory, at + 28))
                let extraLength = Int(le16(directory, at + 30))
                let commentLength = Int(le16(directory, at + 32))
                guard at + 46 + nameLength <= directory.count else {
                    throw Problem.malformed("name out of bounds")
                }
                names.append(Array(directory[(at + 46)..<(at + 46 + nameLength)]))
                at += 46 + nameLength + extraLength + commentLength
            }
            guard UInt64(names.count) == count else {
                let message = "central directory lists \(names.count) entries, end record says \(count)"
                throw Problem.malformed(message)
            }
            return ZipCentralDirectory(names: names)
        } catch let problem as Problem {
            throw problem
        } catch {
            throw .malformed("\(error)")
        }
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
