/// A failed MySQL/MariaDB call: the server's or client library's error number, the SQLSTATE, the
/// library's own message, and the statement it failed on. Never carries a password.
public struct MySQLError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Server errors are 1000–1999 and 3000+ (1142: command denied, 1146: no such table); client
    /// library errors are 2000–2999 (2002: cannot connect through the socket, 2013: lost).
    public let number: UInt32
    /// Five characters, e.g. "42000" (syntax or access), "42S02" (no such table), "HY000" (other).
    public let sqlState: String
    public let message: String
    /// The statement or script it failed on, abbreviated to about 200 characters on one line.
    public let statement: String?
    /// 1-based position of the failing statement within an `executeScript` script, when known.
    public let statementIndex: Int?

    public init(
        number: UInt32, sqlState: String, message: String, statement: String? = nil,
        statementIndex: Int? = nil
    ) {
        self.number = number
        self.sqlState = sqlState
        self.message = message
        self.statement = statement.map { Self.abbreviate($0) }
        self.statementIndex = statementIndex
    }

    /// One line: `Table 'shop.nope' doesn't exist (error 1146, SQLSTATE 42S02) in statement 2 of
    /// "CREATE TABLE a (id INT); SELECT * FROM nope; …"`.
    public var description: String {
        var text = "\(message) (error \(number), SQLSTATE \(sqlState))"
        switch (statementIndex, statement) {
        case let (index?, statement?): text += " in statement \(index) of \"\(statement)\""
        case let (index?, nil): text += " in statement \(index)"
        case let (nil, statement?): text += " in \"\(statement)\""
        case (nil, nil): break
        }
        return text
    }

    /// Collapses whitespace and cuts long SQL so the error stays one readable line.
    public static func abbreviate(_ sql: String, limit: Int = 200) -> String {
        let oneLine = sql.split(whereSeparator: { $0.isWhitespace || $0.isNewline }).joined(separator: " ")
        guard oneLine.count > limit else { return oneLine }
        return String(oneLine.prefix(limit)) + "…"
    }

    /// The one funnel for what libmariadb reports, from a connection or a statement handle: its
    /// number, SQLSTATE and message, with the statement (never the password: neither the server nor
    /// the library puts it in a message).
    static func reported(
        number: UInt32, sqlState: UnsafePointer<CChar>?, message: UnsafePointer<CChar>?, statement: String?,
        index: Int? = nil
    ) -> MySQLError {
        let text = message.map { String(cString: $0) } ?? ""
        return MySQLError(
            number: number == 0 ? unknownNumber : number,
            sqlState: sqlState.map { String(cString: $0) } ?? "HY000",
            message: text.isEmpty ? "unknown MySQL client error" : text,
            statement: statement, statementIndex: index)
    }

    /// Errors raised by this wrapper itself, numbered like the client library's own (errmsg.h).
    static func client(_ number: UInt32, _ message: String, statement: String? = nil) -> MySQLError {
        MySQLError(number: number, sqlState: "HY000", message: message, statement: statement)
    }

    /// CR_SERVER_GONE_ERROR: the connection was closed by `close()`.
    static let closedNumber: UInt32 = 2006
    /// CR_INVALID_PARAMETER_NO: as many parameters as placeholders are needed.
    static let parameterCountNumber: UInt32 = 2034
    /// CR_UNKNOWN_ERROR.
    static let unknownNumber: UInt32 = 2000
}
