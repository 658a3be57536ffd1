import Foundation
import MolamCrypto
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

@Suite struct HashingCopyTests {
    private struct TooLarge: Error, Equatable {}

    @Test("a copy writes every byte once and hashes exactly what it wrote")
    func copiesAndHashes() throws {
        let temp = try TemporaryDirectory()
        let text = String(repeating: "molam ", count: 50_000)
        try Tree.write(temp.sub("in"), text, mode: 0o644)
        let fd = open(temp.sub("in"), O_RDONLY)
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        let copy = HashingCopy(hasher: try SHA256())
        var written: [UInt8] = []
        var offsets: [Int64] = []
        try copy.copy(from: fd, path: temp.sub("in"), through: buffer) { chunk in
            offsets.append(copy.byteCount)
            written.append(contentsOf: chunk)
        }
        #expect(written == Array(text.utf8))
        #expect(copy.byteCount == Int64(text.utf8.count))
        #expect(offsets.first == 0 && offsets.dropFirst().first == 4096)
        #expect(copy.finalizeHex() == (try SHA256.hexDigest(of: Data(text.utf8))))
    }

    @Test("the chunk that would pass maxBytes is refused before it is hashed or written")
    func limit() throws {
        let copy = HashingCopy(hasher: try SHA256(), maxBytes: 10) { TooLarge() }
        var written = 0
        let bytes = [UInt8](repeating: 1, count: 6)
        try bytes.withUnsafeBytes { chunk in
            try copy.pass(chunk) { written += $0.count }
            #expect(throws: TooLarge()) { try copy.pass(chunk) { written += $0.count } }
        }
        #expect(written == 6)
        #expect(copy.byteCount == 6)
        #expect(copy.finalizeHex() == (try SHA256.hexDigest(of: Data(bytes))))
    }

    @Test("a restart forgets what came before")
    func restart() throws {
        let copy = HashingCopy(hasher: try SHA256())
        try Array("partial".utf8).withUnsafeBytes { try copy.pass($0) { _ in } }
        copy.restart(hasher: try SHA256())
        try Array("whole".utf8).withUnsafeBytes { try copy.pass($0) { _ in } }
        #expect(copy.byteCount == 5)
        #expect(copy.finalizeHex() == (try SHA256.hexDigest(of: Data("whole".utf8))))
    }
}
