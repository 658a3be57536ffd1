/// Finds where statements start in a script and on which line, skipping what SQLite skips
/// before a statement: whitespace, `--` and `/* */` comments, empty statements.
struct ScriptScanner {
    let bytes: [UInt8]
    private var lineAt = (offset: 0, line: 1)

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// Start offset of the next statement at or after `offset`, and its 1-based line.
    mutating func nextStatement(from offset: Int) -> (start: Int, line: Int) {
        let start = Self.skipTrivia(bytes, from: offset)
        // Lines are counted incrementally: scripts are walked front to back.
        var line = lineAt.line
        var index = lineAt.offset
        while index < min(start, bytes.count) {
            if bytes[index] == UInt8(ascii: "\n") { line += 1 }
            index += 1
        }
        lineAt = (index, line)
        return (start, line)
    }

    /// `upTo` nil: up to the next semicolon, the best guess at a statement SQLite could not parse.
    func text(from start: Int, upTo end: Int?) -> String {
        let stop = end ?? (bytes[start...].firstIndex(of: UInt8(ascii: ";")).map { $0 + 1 } ?? bytes.count)
        let slice = bytes[start..<min(max(stop, start), bytes.count)]
        return String(decoding: slice, as: UTF8.self).trimmingSQLWhitespace()
    }

    static func skipTrivia(_ bytes: [UInt8], from offset: Int) -> Int {
        var index = offset
        while index < bytes.count {
            let byte = bytes[index]
            let next: UInt8? = index + 1 < bytes.count ? bytes[index + 1] : nil
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"),
                 0x0c, UInt8(ascii: ";"):
                index += 1
            case UInt8(ascii: "-") where next == UInt8(ascii: "-"):
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "/") where next == UInt8(ascii: "*"):
                index += 2
                while index < bytes.count,
                      !(bytes[index] == UInt8(ascii: "*") && index + 1 < bytes.count
                        && bytes[index + 1] == UInt8(ascii: "/")) {
                    index += 1
                }
                index = min(index + 2, bytes.count)
            default:
                return index
            }
        }
        return index
    }
}

extension String {
    fileprivate func trimmingSQLWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
