import Foundation
import MolamSQLite
import Testing
import UpgradeKit

@Suite("journal")
struct JournalTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID())").path

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    @Test("A new journal is in WAL mode at the current schema version, and runs read back with their steps")
    func roundTrip() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/journal.db"
        let journal = try Journal(path: path)
        let now = Date()
        let run = try journal.beginRun(
            command: .upgrade, trigger: .manual, plugin: "molam-form", pluginDirectory: "/p", fromVersion: "3.9.0",
            toVersion: nil, dryRun: false, now: now)
        let step = try journal.startStep(run: run, .backup, now: now)
        #expect(try journal.unfinishedRuns().map(\.id) == [run])
        try journal.finishStep(step, status: .done, detail: "ok", now: now.addingTimeInterval(0.25))
        var state = RunState()
        state.stagedTree = "/w/stage/p"
        try journal.saveState(run: run, state)
        try journal.finishRun(run: run, status: .succeeded, rollbackStatus: .notRequired, error: nil, exitCode: 0,
                              now: now)
        #expect(try journal.unfinishedRuns().isEmpty)
        let record = try #require(try journal.run(id: run))
        #expect(record.status == .succeeded)
        #expect(record.state.stagedTree == "/w/stage/p")
        let steps = try journal.steps(run: run)
        #expect(steps.map(\.name) == ["backup"])
        #expect(steps.first?.durationMilliseconds == 250)

        let raw = try SQLiteConnection(path: path, mode: .readOnly)
        #expect(try raw.scalar("PRAGMA journal_mode")?.stringValue == "wal")
        #expect(try raw.userVersion == Journal.schemaVersion)
    }

    @Test("A journal written by a newer molam-upgrade is refused with a clear message")
    func newerSchema() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/journal.db"
        let raw = try SQLiteConnection(path: path, mode: .readWriteCreate)
        try raw.setUserVersion(99)
        #expect {
            _ = try Journal(path: path)
        } throws: { error in
            "\(error)".contains("newer than this molam-upgrade understands")
        }
    }

    @Test("Stats count rollbacks of the last day and failed ones of the last week")
    func stats() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try Journal(path: directory + "/journal.db")
        let now = Date()
        for (status, age) in [(RunStatus.succeeded, 0.0), (.rolledBack, 3600), (.rolledBack, 3 * 86_400)] {
            let run = try journal.beginRun(
                command: .upgrade, trigger: .scheduled, plugin: "p", pluginDirectory: "/p", fromVersion: "1.0.0",
                toVersion: "1.1.0", dryRun: false, now: now.addingTimeInterval(-age))
            if status == .rolledBack {
                let rollback = try journal.startRollback(
                    run: run, trigger: .automatic, reason: "smoke", from: "1.1.0", to: "1.0.0",
                    now: now.addingTimeInterval(-age))
                try journal.finishRollback(
                    rollback, success: age < 86_400, durationMilliseconds: 40, filesRestored: true,
                    databaseRestored: true, now: now.addingTimeInterval(-age))
            }
            try journal.finishRun(run: run, status: status, rollbackStatus: nil, error: nil, exitCode: 0, now: now)
        }
        let stats = try journal.stats(now: now)
        #expect(stats.plugins.first?.upgrades == 3)
        #expect(stats.plugins.first?.successRate == 1.0 / 3.0)
        #expect(stats.rollbacksLast24Hours == 1)
        #expect(stats.failedRollbacksLast7Days == 1)
        #expect(stats.averageRollbackMilliseconds == 40)
    }
    @Test("UTC timestamps read as RFC 3339 and the basic format, milliseconds truncated, and parse back")
    func utcTimestamps() throws {
        // 2024-02-29T23:59:59.9996Z
        let date = Date(timeIntervalSince1970: 1_709_251_199.9996)
        #expect(UTCTimestamp.string(date, milliseconds: true) == "2024-02-29T23:59:59.999Z")
        #expect(UTCTimestamp.string(date, milliseconds: false) == "2024-02-29T23:59:59Z")
        #expect(UTCTimestamp.compact(date) == "20240229T235959Z")
        #expect(Journal.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        let parsed = try #require(Journal.date("2024-02-29T23:59:59.250Z"))
        #expect(parsed.timeIntervalSince1970 == 1_709_251_199.25)
        #expect(Journal.date(Journal.timestamp(date)).map { Journal.timestamp($0) } == Journal.timestamp(date))
        for bad in ["", "2024-02-30T00:00:00.000Z", "2024-02-29T23:59:59Z", "2024-02-29 23:59:59.000Z",
                    "2024-13-01T00:00:00.000Z", "2024-02-29T23:59:59.000+01:00", "2024-02-29T23:5a:59.000Z"] {
            #expect(Journal.date(bad) == nil, "\(bad)")
        }
    }
}
