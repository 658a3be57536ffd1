import Foundation
import MolamArchive
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An archive in memory: the sink keeps what it is given, the source reads it back (seeking only
/// when asked to), both count their calls so tests can see every stream is closed exactly once.
private final class MemorySink: ArchiveByteSink {
    var bytes: [UInt8] = []
    var closes = 0
    /// Once this many bytes are taken, every write fails as a full disk does.
    var capacity = Int.max
    var closeError: ArchiveError?

    func write(_ chunk: UnsafeRawBufferPointer) throws(ArchiveError) {
        guard bytes.count + chunk.count <= capacity else {
            throw ArchiveError(code: -30, message: "Write error", path: "memory", call: "write",
                               errno: ENOSPC)
        }
        bytes.append(contentsOf: chunk)
    }

    func close() throws(ArchiveError) {
        closes += 1
        if let closeError { throw closeError }
    }
}

private final class MemorySource: ArchiveByteSource {
    let bytes: [UInt8]
    let seekable: Bool
    var position = 0
    var closes = 0
    var largestRead = 0

    init(_ bytes: [UInt8], seekable: Bool) {
        self.bytes = bytes
        self.seekable = seekable
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int {
        largestRead = max(largestRead, buffer.count)
        let count = min(buffer.count, bytes.count - position)
        bytes.withUnsafeBytes { raw in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[position..<position + count]))
        }
        position += count
        return count
    }

    var isSeekable: Bool { seekable }

    func seek(to offset: Int64, from origin: ArchiveSeekOrigin) throws(ArchiveError) -> Int64 {
        let base = switch origin {
        case .start: 0
        case .current: position
        case .end: bytes.count
        }
        guard base + Int(offset) >= 0 else {
            throw ArchiveError(code: -30, message: "seek before start", path: "memory", call: "seek",
                               errno: EINVAL)
        }
        position = min(base + Int(offset), bytes.count)
        return Int64(position)
    }

    func close() { closes += 1 }
}

@Suite struct ArchiveStreamTests {
    private func write(
        _ format: ArchiveWriter.Format, _ filter: ArchiveWriter.Filter, into sink: MemorySink
    ) throws {
        let writer = try ArchiveWriter(sink: sink, path: "memory", format: format, filter: filter)
        try writer.addDirectory(path: "plugin/", mode: 0o755)
        let body = [UInt8](repeating: 0x61, count: 300_000)
        try writer.addFile(path: "plugin/big.txt", mode: 0o644, size: Int64(body.count))
        try writer.writeData(body)
        try writer.addSymlink(path: "plugin/link", target: "big.txt")
        try writer.close()
    }

    private func names(_ reader: ArchiveReader) throws -> [String] {
        var names: [String] = []
        while let entry = try reader.nextEntry() {
            names.append(entry.displayPath)
            try reader.skipData()
        }
        return names
    }

    @Test("a tar.zst written to a sink reads back from a source, through one fixed block")
    func tarRoundTrip() throws {
        let sink = MemorySink()
        try write(.paxRestricted, .zstd(level: 3), into: sink)
        #expect(sink.closes == 1)
        let source = MemorySource(sink.bytes, seekable: false)
        do {
            let reader = try ArchiveReader(source: source, path: "memory", formats: [.tar])
            #expect(try names(reader) == ["plugin/", "plugin/big.txt", "plugin/link"])
            #expect(source.closes == 0)
        }
        #expect(source.closes == 1)
        #expect(source.largestRead == 64 * 1024)
    }

    @Test("a zip reads from a source that can seek (its central directory is at the end), not otherwise")
    func zipNeedsSeeking() throws {
        let sink = MemorySink()
        try write(.zip, .none, into: sink)
        let reader = try ArchiveReader(source: MemorySource(sink.bytes, seekable: true), path: "memory")
        #expect(try names(reader) == ["plugin/", "plugin/big.txt", "plugin/link"])
        #expect(reader.isZip)

        let unseekable = MemorySource(sink.bytes, seekable: false)
        #expect(throws: ArchiveError.self) {
            let reader = try ArchiveReader(source: unseekable, path: "memory", formats: [.zip])
            _ = try reader.nextEntry()
        }
        #expect(unseekable.closes == 1)
    }

    @Test("a full sink fails as out of space and is closed once; a sink's close error is thrown as is")
    func sinkFailures() throws {
        let full = MemorySink()
        full.capacity = 20_000
        #expect {
            try write(.paxRestricted, .none, into: full)
        } throws: { error in
            guard let error = error as? ArchiveError else { return false }
            return error.isOutOfSpace && error.message == "Write error"
        }
        #expect(full.closes == 1)

        let failingClose = MemorySink()
        let fsyncError = ArchiveError(
            code: -1, message: "Input/output error", path: "memory", call: "fsync", errno: EIO)
        failingClose.closeError = fsyncError
        #expect {
            try write(.paxRestricted, .zstd(level: 3), into: failingClose)
        } throws: { error in
            let error = error as? ArchiveError
            return error?.call == "fsync" && error?.errno == EIO
        }
        #expect(failingClose.closes == 1)
    }

    @Test("reader and writer let go of their streams: nothing is kept alive after they are gone")
    func streamsAreReleased() throws {
        weak var weakSink: MemorySink?
        weak var weakSource: MemorySource?
        var bytes: [UInt8] = []
        do {
            let sink = MemorySink()
            weakSink = sink
            try write(.paxRestricted, .gzip, into: sink)
            bytes = sink.bytes
        }
        #expect(weakSink == nil)
        do {
            let source = MemorySource(bytes, seekable: true)
            weakSource = source
            let reader = try ArchiveReader(source: source, path: "memory")
            _ = try reader.nextEntry()
        }
        #expect(weakSource == nil)
        do {
            // Refused at open (not an archive): the source is closed and released all the same.
            let source = MemorySource(Array("not an archive at all".utf8), seekable: true)
            weakSource = source
            #expect(throws: ArchiveError.self) { _ = try ArchiveReader(source: source, path: "memory") }
            #expect(source.closes == 1)
        }
        #expect(weakSource == nil)
    }

    @Test("a path that cannot be opened fails with the message archive_read_open_filename gave")
    func missingFile() throws {
        let temp = try TemporaryDirectory()
        let path = temp.sub("absent.tar.gz")
        #expect {
            _ = try ArchiveReader(path: path)
        } throws: { error in
            let error = error as? ArchiveError
            return error?.message == "Failed to open '\(path)'" && error?.errno == ENOENT
        }
    }
}
