import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Buffered reads from one socket, with limits so a confused client cannot exhaust memory.
struct ConnectionReader {
    let fd: Int32
    private var buffer: [UInt8] = []
    private static let maxHeadBytes = 64 * 1024

    init(fd: Int32) { self.fd = fd }

    /// Appends what the socket has; false at end of stream or on error (timeouts included).
    private mutating func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return false }
            buffer.append(contentsOf: chunk[..<count])
            return true
        }
    }

    /// Bytes up to the blank line ending the head, without it.
    mutating func readHead() -> [UInt8]? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var searchFrom = 0
        while true {
            if buffer.count >= 4 {
                for index in searchFrom...(buffer.count - 4)
                where buffer[index..<index + 4].elementsEqual(terminator) {
                    let head = Array(buffer[..<index])
                    buffer.removeFirst(index + 4)
                    return head
                }
                searchFrom = buffer.count - 3
            }
            guard buffer.count <= Self.maxHeadBytes, fill() else { return nil }
        }
    }

    mutating func readExactly(_ count: Int) -> Data? {
        while buffer.count < count {
            guard fill() else { return nil }
        }
        let data = Data(buffer[..<count])
        buffer.removeFirst(count)
        return data
    }

    mutating func readLine() -> String? {
        while true {
            if let index = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<index], as: UTF8.self)
                buffer.removeFirst(index + 1)
                return line.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard buffer.count <= Self.maxHeadBytes, fill() else { return nil }
        }
    }

    /// RFC 9112 §7.1 chunked body; extensions and trailers are read and ignored.
    mutating func readChunkedBody() -> Data? {
        var body = Data()
        while true {
            guard let sizeLine = readLine() else { return nil }
            let hex = sizeLine.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
            guard let size = Int(hex.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                return nil
            }
            if size == 0 {
                while let trailer = readLine(), !trailer.isEmpty {}
                return body
            }
            guard let chunk = readExactly(size), readLine() != nil else { return nil }
            body.append(chunk)
        }
    }
}
