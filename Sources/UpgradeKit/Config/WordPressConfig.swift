import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The database settings of WordPress's `wp-config.php` (`DB_NAME`, `DB_USER`, `DB_PASSWORD`,
/// `DB_HOST`, `DB_CHARSET`, `$table_prefix`), read as text and never executed: running the site's
/// PHP as root would hand the web server's user the agent's privileges.
///
/// Only quoted literals are taken. A value set by an expression (`getenv()`, a constant,
/// concatenation, `"$interpolation"`) is refused, naming the key and line: guessing it would connect
/// to the wrong database. As in PHP, the first `define` of a constant wins, and the last assignment
/// of `$table_prefix`. No error repeats the file's content (the file might be /etc/shadow under
/// another name), and the description leaves the password out.
public struct WordPressConfig: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    public var path: String
    /// The database, with `.wpConfig(path)` credentials: the password is read again when opened.
    public var location: MySQLLocation
    /// `DB_PASSWORD`; may be empty (an account without a password).
    public var password: String
    /// `$table_prefix`, checked with `SiteConfiguration.validateTablePrefix`; nil when not set.
    public var tablePrefix: String?

    /// wp-config.php is a page of settings; anything larger is not one.
    public static let sizeLimit = 1 << 20

    public var description: String {
        "wp-config \(path): \(location)" + (tablePrefix.map { ", table prefix \($0)" } ?? "")
    }

    /// The password stays out of `dump()` and test failure messages too.
    public var customMirror: Mirror {
        Mirror(self, children: ["path": path, "location": location, "tablePrefix": tablePrefix as Any])
    }

    /// Reads `path`: a regular file (a symbolic link to one is fine: some hosts keep wp-config.php
    /// outside the document root), at most `sizeLimit` bytes, text.
    public static func read(path: String) throws(ConfigurationError) -> WordPressConfig {
        // O_NONBLOCK: a FIFO planted at the path must not hang the agent before fstat refuses it.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw ConfigurationError("\(path): cannot read wp-config.php: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ConfigurationError("\(path): cannot read wp-config.php: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ConfigurationError("\(path): is not a regular file; wp_config must name WordPress's wp-config.php")
        }
        guard info.st_size <= sizeLimit else {
            throw ConfigurationError("\(path): is larger than 1 MiB; it is not a wp-config.php")
        }
        var bytes = [UInt8](repeating: 0, count: sizeLimit + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(fd, buffer.baseAddress?.advanced(by: count), buffer.count - count)
            }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else {
                throw ConfigurationError("\(path): cannot read wp-config.php: \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }
            count += got
        }
        // It may have grown since fstat.
        guard count <= sizeLimit else {
            throw ConfigurationError("\(path): is larger than 1 MiB; it is not a wp-config.php")
        }
        bytes.removeSubrange(count...)
        return try parse(bytes, path: path)
    }

    /// Reads the settings from the file's bytes; `path` is for messages and the credentials.
    public static func parse(_ bytes: [UInt8], path: String) throws(ConfigurationError) -> WordPressConfig {
        guard !bytes.contains(0) else {
            throw ConfigurationError("\(path): is not a text file (it holds NUL bytes); it is not a wp-config.php")
        }
        var lexer = PHPLexer(bytes: bytes)
        let tokens: [PHPLexer.Lexeme]
        do {
            tokens = try lexer.tokens()
        } catch {
            throw ConfigurationError("\(path): line \(error.line): \(error.reason); it cannot be read as wp-config.php")
        }
        var settings = Settings(path: path)
        for index in tokens.indices {
            try settings.take(tokens, at: index)
        }
        return try settings.config()
    }

    /// WordPress's `DB_HOST` forms (`wpdb::parse_db_host`): `host`, `host:port`, `host:/socket`,
    /// `host:port:/socket`, `[v6]:port`, `:/socket`; an empty host is localhost. Nil when malformed.
    public static func parseHost(_ text: String) -> (host: String, port: Int?, socket: String?)? {
        var rest = Substring(text)
        var socket: String?
        if let mark = rest.range(of: ":/") {
            socket = String(rest[rest.index(after: mark.lowerBound)...])
            rest = rest[..<mark.lowerBound]
        }
        var host: Substring
        var portText: Substring?
        if rest.filter({ $0 == ":" }).count > 1 {
            // IPv6: "::1", "[::1]" or "[::1]:3306".
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { return nil }
                host = rest[rest.index(after: rest.startIndex)..<close]
                let after = rest[rest.index(after: close)...]
                if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
            } else {
                host = rest
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            host = rest
            if let colon = rest.firstIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            }
            guard host.isEmpty || MySQLLocation.isHostName(host) else { return nil }
        }
        var port: Int?
        if let portText {
            guard let number = MySQLLocation.parsePort(portText) else { return nil }
            port = number
        }
        return (host.isEmpty ? "localhost" : String(host), port, socket)
    }
}

// MARK: - The settings, from the tokens

extension WordPressConfig {
    /// The constants this reader takes; every other `define` is ignored.
    static let constants: Set<String> = ["DB_NAME", "DB_USER", "DB_PASSWORD", "DB_HOST", "DB_CHARSET"]

    private struct Setting {
        let value: [UInt8]
        let line: Int
    }

    private struct Settings {
        let path: String
        var defined: [String: Setting] = [:]
        var tablePrefix: Setting?

        init(path: String) { self.path = path }

        mutating func take(_ tokens: [PHPLexer.Lexeme], at index: Int) throws(ConfigurationError) {
            switch tokens[index].token {
            case .word(let word) where word.lowercased() == "define":
                try takeDefine(tokens, at: index)
            case .variable("table_prefix"):
                try takeTablePrefix(tokens, at: index)
            default:
                break
            }
        }

        /// `define ( 'NAME' , 'value' [, …] )`, not a method or a function declaration named define.
        private mutating func takeDefine(_ tokens: [PHPLexer.Lexeme], at index: Int) throws(ConfigurationError) {
            if index > 0 {
                switch tokens[index - 1].token {
                case .other(UInt8(ascii: ">")), .other(UInt8(ascii: ":")): return
                case .word(let word) where word.lowercased() == "function": return
                default: break
                }
            }
            guard token(tokens, index + 1) == .other(UInt8(ascii: "(")),
                  case .string(let nameBytes, nil)? = token(tokens, index + 2),
                  let name = String(validating: nameBytes, as: UTF8.self),
                  WordPressConfig.constants.contains(name),
                  defined[name] == nil else { return }
            let line = tokens[index + 2].line
            guard token(tokens, index + 3) == .other(UInt8(ascii: ",")) else {
                throw notLiteral(name, line: line)
            }
            guard case .string(let value, let dynamic)? = token(tokens, index + 4),
                  [.other(UInt8(ascii: ")")), .other(UInt8(ascii: ","))].contains(token(tokens, index + 5)) else {
                throw notLiteral(name, line: line)
            }
            if let dynamic { throw notLiteral(name, line: line, because: dynamic) }
            defined[name] = Setting(value: value, line: line)
        }

        /// `$table_prefix = 'value' ;`; a read of the variable is ignored, any other write refused.
        private mutating func takeTablePrefix(_ tokens: [PHPLexer.Lexeme], at index: Int) throws(ConfigurationError) {
            let line = tokens[index].line
            let next = token(tokens, index + 1)
            let assignment = next == .other(UInt8(ascii: "=")) && token(tokens, index + 2) != .other(UInt8(ascii: "="))
            guard assignment else {
                // `.=`, `??=`, and the like change it by an expression.
                if case .other(let byte)? = next, Array(".?+-*/%|&^<>".utf8).contains(byte),
                   token(tokens, index + 2) == .other(UInt8(ascii: "=")) {
                    throw notLiteral("$table_prefix", line: line)
                }
                return
            }
            guard case .string(let value, let dynamic)? = token(tokens, index + 2),
                  [.other(UInt8(ascii: ";")), .closeTag].contains(token(tokens, index + 3)) else {
                throw notLiteral("$table_prefix", line: line)
            }
            if let dynamic { throw notLiteral("$table_prefix", line: line, because: dynamic) }
            tablePrefix = Setting(value: value, line: line)
        }

        private func token(_ tokens: [PHPLexer.Lexeme], _ index: Int) -> PHPLexer.Token? {
            index < tokens.count ? tokens[index].token : nil
        }

        private func notLiteral(
            _ key: String, line: Int, because dynamic: PHPLexer.Dynamic? = nil
        ) -> ConfigurationError {
            let what = switch dynamic {
            case .interpolation: "a double-quoted string with $ interpolation"
            case .heredoc: "a heredoc"
            case .backtick: "a shell command (backticks)"
            case nil: "an expression, not a quoted string (getenv(), a constant, concatenation…)"
            }
            return ConfigurationError(
                "\(path): line \(line): \(key) is set by \(what); wp-config.php is read as text and never run, so "
                    + "write the value there as a plain quoted string, or give db and password_file instead")
        }

        /// The value of a constant as text; a value that is not UTF-8 or holds control characters
        /// (only NUL, for a password: C strings end there) is refused without being shown.
        private func text(_ key: String) throws(ConfigurationError) -> (String, Int)? {
            guard let setting = defined[key] else { return nil }
            let allowed = key == "DB_PASSWORD" ? !setting.value.contains(0) : MySQLLocation.isPrintable(
                String(decoding: setting.value, as: UTF8.self))
            guard let text = String(validating: setting.value, as: UTF8.self), allowed else {
                throw ConfigurationError(
                    "\(path): line \(setting.line): \(key) is not valid text (control characters or not UTF-8)")
            }
            return (text, setting.line)
        }

        private func required(_ key: String) throws(ConfigurationError) -> (String, Int) {
            guard let value = try text(key) else {
                throw ConfigurationError(
                    "\(path): \(key) is not defined (as define( '\(key)', '…' );); is this WordPress's wp-config.php?")
            }
            return value
        }

        func config() throws(ConfigurationError) -> WordPressConfig {
            let (name, nameLine) = try required("DB_NAME")
            let (user, userLine) = try required("DB_USER")
            let (password, _) = try required("DB_PASSWORD")
            let (hostText, hostLine) = try required("DB_HOST")
            guard !name.isEmpty else { throw ConfigurationError("\(path): line \(nameLine): DB_NAME is empty") }
            guard !user.isEmpty else { throw ConfigurationError("\(path): line \(userLine): DB_USER is empty") }
            guard let endpoint = WordPressConfig.parseHost(hostText) else {
                throw ConfigurationError(
                    "\(path): line \(hostLine): DB_HOST is not a host, host:port, host:/socket or [IPv6]:port")
            }
            var location = MySQLLocation(
                user: user, host: endpoint.host, port: endpoint.port, socket: endpoint.socket, database: name,
                credentials: .wpConfig(path))
            try location.validate(source: "\(path): line \(hostLine): DB_HOST")
            if let charset = try text("DB_CHARSET"), !charset.0.isEmpty {
                location.charset = charset.0
                try location.validate(source: "\(path): line \(charset.1): DB_CHARSET")
            }
            var prefix: String?
            if let setting = tablePrefix {
                // The message of validateTablePrefix would repeat the value: file content.
                guard let text = String(validating: setting.value, as: UTF8.self),
                      (try? SiteConfiguration.validateTablePrefix(text, source: path)) != nil else {
                    throw ConfigurationError(
                        "\(path): line \(setting.line): $table_prefix must be letters, digits and '_' (at most 64), e.g. wp_")
                }
                prefix = text
            }
            return WordPressConfig(path: path, location: location, password: password, tablePrefix: prefix)
        }
    }
}

// MARK: - Tokens

/// Just enough of PHP's lexer to find `define(…)` calls and `$table_prefix` assignments, and not to
/// be fooled by comments, strings, heredocs or text outside `<?php … ?>`.
struct PHPLexer {
    enum Token: Equatable {
        case word(String)
        case variable(String)
        /// A string literal's value, its escapes decoded; `Dynamic` when PHP would compute it.
        case string([UInt8], Dynamic?)
        case number
        case other(UInt8)
        /// `?>`: ends a statement like `;`.
        case closeTag
    }

    enum Dynamic: Equatable { case interpolation, heredoc, backtick }

    struct Lexeme {
        let token: Token
        let line: Int
    }

    struct Failure: Error {
        let line: Int
        let reason: String
    }

    let bytes: [UInt8]
    var index = 0
    var line = 1

    init(bytes: [UInt8]) { self.bytes = bytes }

    private func peek(_ offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    private mutating func advance() {
        if bytes[index] == UInt8(ascii: "\n") { line += 1 }
        index += 1
    }

    private func starts(with text: String, caseInsensitive: Bool = false) -> Bool {
        let wanted = Array(text.utf8)
        guard index + wanted.count <= bytes.count else { return false }
        for (offset, byte) in wanted.enumerated() {
            var have = bytes[index + offset]
            if caseInsensitive, (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(have) { have += 32 }
            if have != byte { return false }
        }
        return true
    }

    private static func isNameStart(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || byte == UInt8(ascii: "_") || byte >= 0x80
    }

    private static func isName(_ byte: UInt8) -> Bool {
        isNameStart(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    mutating func tokens() throws(Failure) -> [Lexeme] {
        var out: [Lexeme] = []
        skipHTML()
        while let byte = peek() {
            let start = line
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), 0x0b, 0x0c:
                advance()
            case UInt8(ascii: "#") where peek(1) != UInt8(ascii: "["):
                skipLineComment()
            case UInt8(ascii: "/") where peek(1) == UInt8(ascii: "/"):
                skipLineComment()
            case UInt8(ascii: "/") where peek(1) == UInt8(ascii: "*"):
                advance(); advance()
                // PHP reads an unterminated comment to the end of the file (with a warning).
                while index < bytes.count, !starts(with: "*/") { advance() }
                if index < bytes.count { advance(); advance() }
            case UInt8(ascii: "?") where peek(1) == UInt8(ascii: ">"):
                advance(); advance()
                out.append(Lexeme(token: .closeTag, line: start))
                skipHTML()
            case UInt8(ascii: "'"):
                out.append(Lexeme(token: try singleQuoted(), line: start))
            case UInt8(ascii: "\""), UInt8(ascii: "`"):
                out.append(Lexeme(token: try doubleQuoted(), line: start))
            case UInt8(ascii: "<") where starts(with: "<<<"):
                if let heredoc = try heredoc() {
                    out.append(Lexeme(token: heredoc, line: start))
                } else {
                    advance()
                    out.append(Lexeme(token: .other(byte), line: start))
                }
            case UInt8(ascii: "$") where peek(1).map(Self.isNameStart) == true:
                advance()
                out.append(Lexeme(token: .variable(name()), line: start))
            case _ where Self.isNameStart(byte):
                out.append(Lexeme(token: .word(name()), line: start))
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                while let next = peek(), Self.isName(next) || next == UInt8(ascii: ".") { advance() }
                out.append(Lexeme(token: .number, line: start))
            default:
                advance()
                out.append(Lexeme(token: .other(byte), line: start))
            }
        }
        return out
    }

    private mutating func name() -> String {
        let start = index
        while let byte = peek(), Self.isName(byte) { advance() }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// Text before `<?php` (or `<?`, `<?=`) is output, not code.
    private mutating func skipHTML() {
        while index < bytes.count {
            if starts(with: "<?php", caseInsensitive: true) {
                for _ in 0..<5 { advance() }
                return
            }
            if starts(with: "<?") {
                advance(); advance()
                if peek() == UInt8(ascii: "=") { advance() }
                return
            }
            advance()
        }
    }

    /// `//` and `#` comments end at the line's end or at `?>`.
    private mutating func skipLineComment() {
        while let byte = peek(), byte != UInt8(ascii: "\n"), !starts(with: "?>") { advance() }
    }

    /// `'…'`: only `\\` and `\'` are escapes.
    private mutating func singleQuoted() throws(Failure) -> Token {
        let start = line
        advance()
        var value: [UInt8] = []
        while let byte = peek() {
            advance()
            switch byte {
            case UInt8(ascii: "'"):
                return .string(value, nil)
            case UInt8(ascii: "\\") where peek() == UInt8(ascii: "\\") || peek() == UInt8(ascii: "'"):
                value.append(bytes[index])
                advance()
            default:
                value.append(byte)
            }
        }
        throw Failure(line: start, reason: "a quoted string is never closed")
    }

    /// `"…"` with PHP's escapes (and `` `…` ``, a shell command); `$name` or `{$` makes it dynamic.
    private mutating func doubleQuoted() throws(Failure) -> Token {
        let start = line
        let quote = bytes[index]
        advance()
        var value: [UInt8] = []
        var dynamic: Dynamic? = quote == UInt8(ascii: "`") ? .backtick : nil
        while let byte = peek() {
            advance()
            switch byte {
            case quote:
                return .string(value, dynamic)
            case UInt8(ascii: "$") where peek().map(Self.isNameStart) == true:
                dynamic = dynamic ?? .interpolation
                value.append(byte)
            case UInt8(ascii: "{") where peek() == UInt8(ascii: "$"):
                dynamic = dynamic ?? .interpolation
                try skipInterpolation(start: start)
            case UInt8(ascii: "\\"):
                guard let next = peek() else { continue }
                value += escape(after: next)
            default:
                value.append(byte)
            }
        }
        throw Failure(line: start, reason: "a quoted string is never closed")
    }

    /// The body of `{$…}` up to its `}`, quoted strings inside included.
    private mutating func skipInterpolation(start: Int) throws(Failure) {
        var depth = 1
        while let byte = peek() {
            switch byte {
            case UInt8(ascii: "{"):
                depth += 1
                advance()
            case UInt8(ascii: "}"):
                depth -= 1
                advance()
                if depth == 0 { return }
            case UInt8(ascii: "'"):
                _ = try singleQuoted()
            case UInt8(ascii: "\""):
                _ = try doubleQuoted()
            default:
                advance()
            }
        }
        throw Failure(line: start, reason: "a quoted string is never closed")
    }

    /// The bytes an escape after `\` stands for; the cursor is on `next`. PHP keeps an unknown
    /// escape as written, backslash included.
    private mutating func escape(after next: UInt8) -> [UInt8] {
        let simple: [UInt8: UInt8] = [
            UInt8(ascii: "n"): 0x0a, UInt8(ascii: "t"): 0x09, UInt8(ascii: "r"): 0x0d, UInt8(ascii: "v"): 0x0b,
            UInt8(ascii: "e"): 0x1b, UInt8(ascii: "f"): 0x0c, UInt8(ascii: "\\"): UInt8(ascii: "\\"),
            UInt8(ascii: "$"): UInt8(ascii: "$"), UInt8(ascii: "\""): UInt8(ascii: "\""),
            UInt8(ascii: "`"): UInt8(ascii: "`"),
        ]
        if let byte = simple[next] {
            advance()
            return [byte]
        }
        if (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(next) {
            var value = 0
            for _ in 0..<3 {
                guard let digit = peek(), (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(digit) else { break }
                value = value * 8 + Int(digit - UInt8(ascii: "0"))
                advance()
            }
            return [UInt8(value & 0xff)]
        }
        if next == UInt8(ascii: "x"), let first = peek(1), let high = Self.hex(first) {
            advance(); advance()
            var value = high
            if let second = peek(), let low = Self.hex(second) {
                value = value << 4 | low
                advance()
            }
            return [value]
        }
        if next == UInt8(ascii: "u"), peek(1) == UInt8(ascii: "{") {
            var offset = 2
            var scalarValue: UInt32 = 0
            while let digit = peek(offset), let nibble = Self.hex(digit), offset < 10 {
                scalarValue = scalarValue << 4 | UInt32(nibble)
                offset += 1
            }
            if offset > 2, peek(offset) == UInt8(ascii: "}"), let scalar = Unicode.Scalar(scalarValue) {
                for _ in 0...offset { advance() }
                return Array(String(Character(scalar)).utf8)
            }
        }
        return [UInt8(ascii: "\\")]
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// `<<<ID` / `<<<"ID"` / `<<<'ID'` up to the line whose first non-blank text is `ID`; nil when
    /// `<<<` does not start one. Never taken as a literal.
    private mutating func heredoc() throws(Failure) -> Token? {
        let start = line
        var offset = 3
        while peek(offset) == UInt8(ascii: " ") || peek(offset) == UInt8(ascii: "\t") { offset += 1 }
        var quote: UInt8?
        if let byte = peek(offset), byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
            quote = byte
            offset += 1
        }
        var label: [UInt8] = []
        while let byte = peek(offset), Self.isName(byte) {
            label.append(byte)
            offset += 1
        }
        if let quote {
            guard peek(offset) == quote else { return nil }
            offset += 1
        }
        if peek(offset) == UInt8(ascii: "\r") { offset += 1 }
        guard let first = label.first, Self.isNameStart(first), peek(offset) == UInt8(ascii: "\n") else { return nil }
        for _ in 0...offset { advance() }
        // Body lines until one starting (after blanks) with the label not followed by a name byte.
        while index < bytes.count {
            while peek() == UInt8(ascii: " ") || peek() == UInt8(ascii: "\t") { advance() }
            if index + label.count <= bytes.count, Array(bytes[index..<index + label.count]) == label,
               peek(label.count).map(Self.isName) != true {
                for _ in 0..<label.count { advance() }
                return .string([], .heredoc)
            }
            while let byte = peek(), byte != UInt8(ascii: "\n") { advance() }
            if index < bytes.count { advance() }
        }
        throw Failure(line: start, reason: "a heredoc is never closed")
    }
}
