import Foundation
import MolamSQLite

public struct JournalError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ context: String, _ error: any Error) { description = "journal \(context): \(error)" }
    init(_ description: String) { self.description = description }
}

/// The local journal: `<state-dir>/journal.db`, SQLite in WAL mode with `synchronous=FULL`, so a
/// step recorded as done is on disk before the next step starts (sqlite.org/wal.html: in WAL mode
/// FULL syncs the WAL on every commit). Intent is written before each step, outcome after.
///
/// Not Sendable: one connection, used from the thread that opened it.
public final class Journal {
    public static let schemaVersion = 2
    public let path: String
    let db: SQLiteConnection

    public init(path: String) throws(JournalError) {
        self.path = path
        do {
            db = try SQLiteConnection(path: path, mode: .readWriteCreate)
            try db.execute("PRAGMA journal_mode=WAL")
            try db.execute("PRAGMA synchronous=FULL")
            try db.execute("PRAGMA foreign_keys=ON")
            try migrate()
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError("\(path)", error)
        }
    }

    // MARK: Time

    /// UTC with milliseconds, fixed width, so text order is time order.
    public static func timestamp(_ date: Date) -> String {
        UTCTimestamp.string(date, milliseconds: true)
    }

    public static func date(_ timestamp: String) -> Date? {
        UTCTimestamp.date(timestamp)
    }

    // MARK: Plumbing

    static func optionalText(_ value: String?) -> SQLiteValue {
        value.map { .text($0) } ?? .null
    }

    func write<T>(_ context: String, _ body: () throws -> T) throws(JournalError) -> T {
        do {
            return try body()
        } catch {
            throw JournalError(context, error)
        }
    }

    func read<T>(_ context: String, _ body: () throws -> T) throws(JournalError) -> T {
        try write(context, body)
    }
}
