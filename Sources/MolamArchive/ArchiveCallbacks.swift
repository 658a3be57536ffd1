internal import CArchive

// The Swift side of `archive_read_open2` and `archive_write_open2` (archive_read_open(3),
// archive_write_open(3)). libarchive gets the stream object as its client data, unretained: the
// `ArchiveReader` or `ArchiveWriter` holds the stream in a stored property, and its `deinit` frees
// the handle before that property is released, so the object outlives every callback and nothing is
// left to release by hand when an open fails half way. Callbacks never throw across C: a stream
// error becomes libarchive's error (`archive_set_error`), which the funnel in ArchiveError.swift reads.

/// The reading side: the source, and one fixed block libarchive reads from. A block only has to stay
/// valid until the next read callback, so one buffer serves the whole archive, whatever its size.
final class ReadStream {
    static let blockSize = 64 * 1024

    let source: ArchiveByteSource
    private let block: UnsafeMutableRawBufferPointer
    private var closed = false

    init(_ source: ArchiveByteSource) {
        self.source = source
        block = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.blockSize, alignment: 16)
    }

    deinit {
        close()
        block.deallocate()
    }

    /// Closes the source once, whether libarchive's close callback got here first or not.
    func close() {
        guard !closed else { return }
        closed = true
        source.close()
    }

    /// Installs the callbacks and opens. The seek callback only for a source that can seek; the
    /// seekable zip reader needs it to find the central directory (archive_read_format(3)).
    func open(_ handle: OpaquePointer) -> Int32 {
        if source.isSeekable {
            let status = archive_read_set_seek_callback(handle) { archive, data, offset, whence in
                guard let stream = ReadStream.from(data) else { return Int64(ARCHIVE_FATAL) }
                let origin: ArchiveSeekOrigin =
                    whence == SEEK_SET ? .start : whence == SEEK_END ? .end : .current
                do throws(ArchiveError) { return try stream.source.seek(to: offset, from: origin) } catch {
                    report(error, on: archive)
                    return Int64(ARCHIVE_FATAL)
                }
            }
            guard status == ARCHIVE_OK else { return status }
        }
        let data = Unmanaged.passUnretained(self).toOpaque()
        return archive_read_open2(handle, data, nil, { archive, data, block in
            guard let stream = ReadStream.from(data), let block else { return -1 }
            do throws(ArchiveError) {
                let count = try stream.source.read(into: stream.block)
                precondition(count <= stream.block.count, "ArchiveByteSource.read returned more than asked")
                block.pointee = UnsafeRawPointer(stream.block.baseAddress)
                return count
            } catch {
                report(error, on: archive)
                return -1
            }
        }, { archive, data, request in
            guard let stream = ReadStream.from(data) else { return -1 }
            do throws(ArchiveError) { return try stream.source.skip(request) } catch {
                report(error, on: archive)
                return -1
            }
        }, { _, data in
            ReadStream.from(data)?.close()
            return ARCHIVE_OK
        })
    }

    static func from(_ data: UnsafeMutableRawPointer?) -> ReadStream? {
        data.map { Unmanaged<ReadStream>.fromOpaque($0).takeUnretainedValue() }
    }
}

/// The writing side: the sink, and what went wrong in it. libarchive calls the close callback even
/// after a failed write, and ignores what it returns, so the sink's own close error is kept here for
/// `ArchiveWriter.close` to throw as it is (a failed fsync must not pass for success).
final class WriteStream {
    let sink: ArchiveByteSink
    private(set) var closeFailure: ArchiveError?
    /// A write was refused: that error, already libarchive's, is the one to report.
    private(set) var writeFailed = false
    private var closed = false

    init(_ sink: ArchiveByteSink) { self.sink = sink }

    deinit { close() }

    /// Closes the sink once; the first close records its error.
    func close() {
        guard !closed else { return }
        closed = true
        do throws(ArchiveError) { try sink.close() } catch { closeFailure = error }
    }

    func open(_ handle: OpaquePointer) -> Int32 {
        let data = Unmanaged.passUnretained(self).toOpaque()
        return archive_write_open2(handle, data, nil, { archive, data, bytes, count in
            guard let stream = WriteStream.from(data) else { return -1 }
            do throws(ArchiveError) {
                try stream.sink.write(UnsafeRawBufferPointer(start: bytes, count: count))
                return count
            } catch {
                stream.writeFailed = true
                report(error, on: archive)
                return -1
            }
        }, { _, data in
            guard let stream = WriteStream.from(data) else { return ARCHIVE_FATAL }
            stream.close()
            return stream.closeFailure == nil ? ARCHIVE_OK : ARCHIVE_FATAL
        }, nil)
    }

    static func from(_ data: UnsafeMutableRawPointer?) -> WriteStream? {
        data.map { Unmanaged<WriteStream>.fromOpaque($0).takeUnretainedValue() }
    }
}

/// Hands a stream's error to libarchive, which returns it from the call that was running.
private func report(_ error: ArchiveError, on archive: OpaquePointer?) {
    guard let archive else { return }
    carchive_set_error(archive, error.errno, error.message)
}
