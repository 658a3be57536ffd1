import Foundation
import MolamMySQL

/// The second connection of the cut-over: it issues the `RENAME TABLE` on a thread of its own, where
/// it waits behind the first connection's lock.
final class Renamer: @unchecked Sendable {
    private let endpoint: MySQLEndpoint
    private let lockWaitSeconds: Int
    private let condition = NSCondition()
    private var connectionID: Int64?
    private var result: Result<Void, MySQLError>?
    private var thread: Thread?

    init(endpoint: MySQLEndpoint, lockWaitSeconds: Int) {
        self.endpoint = endpoint
        self.lockWaitSeconds = lockWaitSeconds
    }

    func start(_ statement: String) throws {
        let endpoint = self.endpoint, wait = lockWaitSeconds
        let thread = Thread { [self] in
            do {
                let connection = try MySQLConnection(endpoint)
                defer { connection.close() }
                try connection.execute("SET SESSION lock_wait_timeout = \(wait)")
                let id = try connection.query("SELECT CONNECTION_ID()").first?[0].intValue ?? -1
                condition.lock()
                connectionID = id
                condition.broadcast()
                condition.unlock()
                try connection.execute(statement)
                finish(.success(()))
            } catch let error as MySQLError {
                finish(.failure(error))
            } catch {
                finish(.failure(MySQLError(number: 0, sqlState: "HY000", message: "\(error)", statement: statement, statementIndex: nil)))
            }
        }
        self.thread = thread
        thread.start()
    }

    private func finish(_ outcome: Result<Void, MySQLError>) {
        condition.lock()
        result = outcome
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the server shows the rename waiting for the lock (or it already failed).
    func waitUntilBlocked(observer: MySQLConnection, seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        while connectionID == nil && result == nil {
            guard condition.wait(until: deadline) else { break }
        }
        let id = connectionID, early = result
        condition.unlock()
        if case .failure(let error)? = early { throw error }
        guard let id else { throw MySQLError(number: 0, sqlState: "HY000", message: "the rename connection did not start", statement: nil, statementIndex: nil) }
        while Date() < deadline {
            let state = try observer.query(
                "SELECT state FROM information_schema.processlist WHERE id = ?", [.int(id)]).first?[0].stringValue ?? ""
            if state.lowercased().contains("metadata lock") { return }
            condition.lock()
            let failed = result
            _ = condition.wait(until: Date().addingTimeInterval(0.002))
            condition.unlock()
            if case .failure(let error)? = failed { throw error }
        }
        throw MySQLError(number: 0, sqlState: "HY000", message: "the rename never waited for the lock", statement: nil, statementIndex: nil)
    }

    /// Waits for the rename to end, and says how it went.
    func finish(seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while result == nil {
            guard condition.wait(until: deadline) else {
                throw MySQLError(number: 0, sqlState: "HY000", message: "the rename did not finish in \(Int(seconds)) s", statement: nil, statementIndex: nil)
            }
        }
        if case .failure(let error)? = result { throw error }
    }

    /// The lock is gone without the sentries dropped: the rename fails on its own; nothing to wait for.
    func abandon() {}
}
