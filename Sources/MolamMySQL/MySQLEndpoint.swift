/// Where and as whom a `MySQLConnection` connects. The password is kept for `mysql_real_connect`
/// only: `description`, errors and logs never show it.
public struct MySQLEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// "localhost" means the unix socket, by libmariadb's rule; any other name or address is TCP.
    public var host: String
    /// nil: the library default (3306).
    public var port: Int?
    /// The unix socket's path; nil: the library default.
    public var socket: String?
    public var user: String
    public var password: String?
    public var database: String
    /// Sent as `MYSQL_SET_CHARSET_NAME`: the connection's character set for queries and results.
    public var charset: String
    public var connectTimeoutSeconds: Int
    /// `MYSQL_OPT_READ_TIMEOUT` and `MYSQL_OPT_WRITE_TIMEOUT`; nil: the library default.
    public var readTimeoutSeconds: Int?

    public init(
        host: String = "localhost", port: Int? = nil, socket: String? = nil, user: String,
        password: String? = nil, database: String, charset: String = "utf8mb4",
        connectTimeoutSeconds: Int = 10, readTimeoutSeconds: Int? = nil
    ) {
        self.host = host
        self.port = port
        self.socket = socket
        self.user = user
        self.password = password
        self.database = database
        self.charset = charset
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.readTimeoutSeconds = readTimeoutSeconds
    }

    /// `mysql://user@host:port/db?socket=/path`, port and socket only when set; never the password.
    public var description: String {
        var text = "mysql://\(user)@\(host)"
        if let port { text += ":\(port)" }
        text += "/\(database)"
        if let socket { text += "?socket=\(socket)" }
        return text
    }
}

extension MySQLEndpoint: CustomReflectable {
    /// What `dump` and debuggers show: every field but the password, which is only said to be set.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "host": host, "port": port as Any, "socket": socket as Any, "user": user,
            "password": password == nil ? "(none)" : "(set)", "database": database, "charset": charset,
            "connectTimeoutSeconds": connectTimeoutSeconds, "readTimeoutSeconds": readTimeoutSeconds as Any,
        ], displayStyle: .struct)
    }
}
