import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A MySQL or MariaDB plugin database (WooCommerce's own): `mysql://user@host[:port]/dbname`, with
/// `?socket=/path` and `&charset=name`, or the same read from WordPress's `wp-config.php`. The
/// password is never part of it: `credentials` says where to read it, and `password()` reads it
/// only when the database is opened.
public struct MySQLLocation: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    /// "localhost" means the unix socket (`socket`, or the client library's default one), as in
    /// libmariadb and PHP's mysqli; any other host is reached over TCP.
    public var host: String
    public var port: Int?
    /// An absolute path; only with host "localhost" (elsewhere the client library would ignore it).
    public var socket: String?
    public var database: String
    /// `DB_CHARSET` or `?charset=`; nil means utf8mb4.
    public var charset: String?
    public var credentials: MySQLCredentials

    public static let defaultCharset = "utf8mb4"

    public init(
        user: String, host: String = "localhost", port: Int? = nil, socket: String? = nil, database: String,
        charset: String? = nil, credentials: MySQLCredentials = .none
    ) {
        self.user = user
        self.host = host
        self.port = port
        self.socket = socket
        self.database = database
        self.charset = charset
        self.credentials = credentials
    }

    /// The DSN, which `DatabaseLocation.parse` reads back: never a password, whatever `credentials` is.
    public var description: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        var text = "mysql://\(Self.encode(user))@\(hostPart)"
        if let port { text += ":\(port)" }
        text += "/\(Self.encode(database))"
        var query: [String] = []
        if let socket { query.append("socket=\(Self.encode(socket, keeping: "/"))") }
        if let charset { query.append("charset=\(charset)") }
        if !query.isEmpty { text += "?" + query.joined(separator: "&") }
        return text
    }

    /// Reads the password now (when the database is opened, not when the configuration is loaded):
    /// from the password file, which must be private (see `checkPasswordFile`), or from
    /// wp-config.php's `DB_PASSWORD`; nil for `.none`. The password never appears in an error.
    public func password() throws(ConfigurationError) -> String? {
        switch credentials {
        case .none:
            return nil
        case .passwordFile(let path):
            return try Self.readPasswordFile(path)
        case .wpConfig(let path):
            return try WordPressConfig.read(path: path).password
        }
    }

    // MARK: - Password file

    /// The largest password file read; a password is a line, not a document.
    static let passwordFileLimit = 4096

    /// Reads a password file: one line, its trailing newline dropped, no other control character.
    static func readPasswordFile(_ path: String) throws(ConfigurationError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ELOOP {
                throw ConfigurationError("password file \(path) is a symbolic link; name the file itself")
            }
            throw ConfigurationError("password file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ConfigurationError("password file \(path): \(String(cString: strerror(errno)))")
        }
        // Checked on the open descriptor: what is read is what was checked.
        try checkPasswordFile(info, path: path)
        var bytes = [UInt8](repeating: 0, count: passwordFileLimit + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                read(fd, buffer.baseAddress?.advanced(by: count), buffer.count - count)
            }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else {
                throw ConfigurationError("password file \(path): \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }
            count += got
        }
        guard count <= passwordFileLimit else {
            throw ConfigurationError("password file \(path) is larger than \(passwordFileLimit) bytes; it must hold the password on one line")
        }
        var line = bytes[..<count]
        while let last = line.last, last == 0x0a || last == 0x0d { line.removeLast() }
        guard !line.isEmpty else {
            throw ConfigurationError("password file \(path) is empty; for an account without a password leave out password_file")
        }
        guard !line.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
            throw ConfigurationError("password file \(path) holds control characters; it must hold the password on one line")
        }
        guard let password = String(validating: line, as: UTF8.self) else {
            throw ConfigurationError("password file \(path) is not UTF-8 text")
        }
        return password
    }

    /// The checks a password file must pass: a regular file (the link itself was refused by
    /// O_NOFOLLOW), owned by root or by the user the agent runs as (another owner could swap it),
    /// and no permission for group or others (mode 0600 or stricter), like `token_file`.
    static func checkPasswordFile(_ info: stat, path: String, runningUser: uid_t = geteuid()) throws(ConfigurationError) {
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ConfigurationError("password file \(path) is not a regular file")
        }
        guard info.st_uid == 0 || info.st_uid == runningUser else {
            throw ConfigurationError(
                "password file \(path) is owned by uid \(info.st_uid), not by root or the agent's user; "
                    + "run: chown root \(path)")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ConfigurationError(
                "password file \(path) is readable or writable by group or others (mode \(String(mode, radix: 8))); "
                    + "run: chmod 600 \(path)")
        }
    }

    // MARK: - DSN

    /// Parses what follows `mysql://`. Errors never repeat the DSN: it might hold a password.
    static func parse(dsn: String, source: String) throws(ConfigurationError) -> MySQLLocation {
        let form = "mysql://user@host[:port]/dbname[?socket=/path][&charset=name]"
        var rest = Substring(dsn.dropFirst("mysql://".count))
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else {
            throw ConfigurationError("\(source): the mysql:// DSN names no database (expected \(form))")
        }
        let authority = rest[..<slash]
        let path = rest[rest.index(after: slash)...]
        guard let at = authority.lastIndex(of: "@") else {
            throw ConfigurationError("\(source): the mysql:// DSN names no user (expected \(form))")
        }
        let userInfo = authority[..<at]
        guard !userInfo.contains(":") else {
            throw ConfigurationError(
                "\(source): the mysql:// DSN holds a password (user:password@); a password on a command line or "
                    + "in agent.json is readable by others: put it in a 0600 file named by password_file "
                    + "(--db-password-file), or use wp_config (--wp-config)")
        }
        guard let user = percentDecoded(userInfo), !user.isEmpty, isPrintable(user) else {
            throw ConfigurationError("\(source): the mysql:// DSN names no valid user (expected \(form))")
        }
        guard let database = percentDecoded(path), !database.isEmpty, !database.contains("/"), isPrintable(database)
        else {
            throw ConfigurationError("\(source): the mysql:// DSN names no valid database (expected \(form))")
        }
        let (host, port) = try hostAndPort(authority[authority.index(after: at)...], source: source, form: form)
        var location = MySQLLocation(user: user, host: host, port: port, database: database)
        var seen = Set<Substring>()
        for pair in query.split(separator: "&", omittingEmptySubsequences: false) where !query.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0]
            guard key == "socket" || key == "charset" else {
                let shown = key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } ? "'\(key)'" : "in the query"
                throw ConfigurationError(
                    "\(source): unknown mysql:// DSN parameter \(shown); only socket= and charset= are read")
            }
            guard seen.insert(key).inserted else {
                throw ConfigurationError("\(source): the mysql:// DSN gives '\(key)' more than once")
            }
            guard parts.count == 2, let value = percentDecoded(parts[1]), !value.isEmpty else {
                throw ConfigurationError("\(source): the mysql:// DSN's '\(key)' needs a value")
            }
            if key == "socket" { location.socket = value } else { location.charset = value }
        }
        try location.validate(source: source)
        return location
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    private static func hostAndPort(
        _ text: Substring, source: String, form: String
    ) throws(ConfigurationError) -> (String, Int?) {
        var host = text
        var portText: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else {
                throw ConfigurationError("\(source): the mysql:// DSN's IPv6 host lacks its ']' (expected \(form))")
            }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw ConfigurationError("\(source): the mysql:// DSN's host is not valid (expected \(form))")
            }
            host = host[host.index(after: host.startIndex)..<close]
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw ConfigurationError("\(source): the mysql:// DSN's IPv6 host is not valid (expected \(form))")
            }
        } else {
            if let colon = host.firstIndex(of: ":") {
                portText = host[host.index(after: colon)...]
                host = host[..<colon]
            }
            guard isHostName(host) else {
                throw ConfigurationError("\(source): the mysql:// DSN names no valid host (expected \(form))")
            }
        }
        guard let portText else { return (String(host), nil) }
        guard let port = parsePort(portText) else {
            throw ConfigurationError("\(source): the mysql:// DSN's port must be a number from 1 to 65535")
        }
        return (String(host), port)
    }

    /// Rules that hold however the location was given (DSN or wp-config.php).
    func validate(source: String) throws(ConfigurationError) {
        if let socket {
            guard socket.hasPrefix("/"), !socket.contains("\0") else {
                throw ConfigurationError("\(source): the MySQL socket must be an absolute path, e.g. /run/mysqld/mysqld.sock")
            }
            guard host == "localhost" else {
                throw ConfigurationError(
                    "\(source): a MySQL socket is used only with host localhost (with another host the client "
                        + "connects over TCP and ignores it)")
            }
        }
        if let charset {
            guard Self.isCharsetName(charset) else {
                throw ConfigurationError("\(source): the MySQL charset must be a name such as utf8mb4 (letters, digits, _)")
            }
        }
    }

    // MARK: - Pieces

    static func parsePort(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(text), (1...65535).contains(port) else { return nil }
        return port
    }

    static func isHostName(_ text: Substring) -> Bool {
        !text.isEmpty && text.count <= 253 && text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || $0 == "." || $0 == "-" || $0 == "_"
        }
    }

    static func isCharsetName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 64 && text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
        }
    }

    /// No control characters (a NUL would cut the C string short).
    static func isPrintable(_ text: String) -> Bool {
        !text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
    }

    /// `%XX` decoded; nil for a malformed escape or bytes that are not UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let first = utf8.index(after: index)
                guard first != utf8.endIndex else { return nil }
                let second = utf8.index(after: first)
                guard second != utf8.endIndex,
                      let high = hexValue(utf8[first]), let low = hexValue(utf8[second]) else { return nil }
                bytes.append(high << 4 | low)
                index = utf8.index(after: second)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Percent-encodes all but unreserved characters (and `keeping`), so the description parses back.
    static func encode(_ text: String, keeping: String = "") -> String {
        var out = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            let unreserved = byte < 0x80 && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                || "-._~".unicodeScalars.contains(scalar) || keeping.unicodeScalars.contains(scalar))
            out += unreserved ? String(scalar) : String(format: "%%%02X", byte)
        }
        return out
    }
}

/// Where a MySQL password comes from.
public enum MySQLCredentials: Sendable, Equatable {
    /// An account without a password (unix_socket authentication, as root on Debian's MariaDB).
    case none
    /// A file holding the password on one line, private to root (`password_file`).
    case passwordFile(String)
    /// WordPress's wp-config.php, whose `DB_PASSWORD` is read as text (`wp_config`).
    case wpConfig(String)
}
