import Foundation
import MolamSQLite
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT, SIGTERM and SIGHUP sent to the real binary while an upgrade is paused at a fault point
/// (or waiting on its smoke command): before the swap the run stops with nothing changed, after it
/// the run is rolled back; past verify it commits. Always one line on stderr, a finished journal,
/// no smoke command left running, and nothing for `recover` to do.
@Suite("signals")
struct SignalTests {
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// Where the signal comes: a fault point paused with `sleep:`, or the smoke command of verify.
    enum Moment: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case beforeStage = "before-stage", beforeBackup = "before-backup", afterSwap = "after-swap"
        case afterMigrate = "after-migrate", beforeVerify = "before-verify", smoke = "during-smoke"
        var testDescription: String { rawValue }

        var step: String {
            switch self {
            case .beforeStage: "stage"
            case .beforeBackup: "backup"
            case .afterSwap: "swap"
            case .afterMigrate: "migrate"
            case .beforeVerify, .smoke: "verify"
            }
        }
        var changedSite: Bool { ![.beforeStage, .beforeBackup].contains(self) }
    }

    @Test("a signal stops the upgrade: one line, exit 1, the old version, run finished, no smoke left",
          arguments: signals, Moment.allCases)
    func stops(signal: Int32, moment: Moment) throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", variant: .hangingSmoke, format: .tarGz)
        let marker = site.root + "/smoke.pid"
        let faults = moment == .smoke ? nil : "\(moment.rawValue)=sleep:30"
        let tool = try Self.startUpgrade(site, release, faults: faults)
        let reached = waitUntil(timeout: 30) {
            switch moment {
            case .smoke: FileManager.default.fileExists(atPath: marker)
            case .afterSwap: (try? site.installedVersion()) == "1.1.0"
            case .afterMigrate: (try? site.query("SELECT max(version) AS v FROM molam_schema_migrations"))?
                .first?["v"].intValue == 3
            default: Self.stepStarted(site, moment.step)
            }
        }
        #expect(reached, "\(moment)")
        let smokePID = moment == .smoke ? Self.pid(in: marker) : nil
        tool.kill(signal)
        let result = try tool.wait()

        let name = Signals.name(signal)
        let outcome = moment.changedSite ? "rolled back to acme-pay 1.0.0" : "stopped, nothing was changed"
        #expect(result.status == 1, "\(result.stderr)")
        let line = "molam-upgrade: interrupted by \(name) during \(moment.step): \(outcome)"
        #expect(result.stderrLines == [line])
        try Self.expectUnchanged(site, since: before)

        let run = try Self.lastRun(site)
        #expect(run.status == (moment.changedSite ? "rolled_back" : "aborted"))
        #expect(run.error.contains("interrupted by \(name) during \(moment.step)"), "\(run.error)")
        if let smokePID {
            // The smoke command died with the run: SIGTERM to its group, SIGKILL after the grace.
            #expect(kill(smokePID, 0) != 0 && errno == ESRCH, "smoke pid \(smokePID) still there")
        } else {
            #expect(!FileManager.default.fileExists(atPath: marker))
        }
        let recovered = try site.run(["recover"])
        #expect(recovered.status == 0)
        #expect(recovered.stdout.contains("nothing to recover"), "\(recovered.stdout)")
        #expect(recovered.stderr.isEmpty)
    }

    @Test("a signal once verify passed lets the commit finish: exit 0, the new version, one line saying so",
          arguments: signals, ["before-commit", "after-commit"])
    func commitFinishes(signal: Int32, point: String) throws {
        let site = try AcmePay.site()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let tool = try Self.startUpgrade(site, release, faults: "\(point)=sleep:30")
        #expect(waitUntil(timeout: 30) { Self.stepStarted(site, "commit") })
        tool.kill(signal)
        let result = try tool.wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("upgraded acme-pay 1.0.0 → 1.1.0"), "\(result.stdout)")
        #expect(result.stderrLines == [
            "molam-upgrade: \(Signals.name(signal)) received during commit: the run was finished first"])
        #expect(try site.installedVersion() == "1.1.0")
        #expect(try Self.lastRun(site).status == "succeeded")
        #expect(try site.run(["recover"]).stdout.contains("nothing to recover"))
    }

    @Test("signals during an automatic rollback are noted only: it runs to its end, exit 1, the old version")
    func rollbackIsNotCutShort() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", variant: .failingSmoke, format: .zip)
        let tool = try Self.startUpgrade(site, release, faults: "mid-rollback=sleep:30")
        #expect(waitUntil(timeout: 30) { Self.stepStarted(site, "rollback") })
        tool.kill(SIGTERM)
        tool.kill(SIGTERM)
        let result = try tool.wait()
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("failed and was rolled back to 1.0.0"))
        #expect(result.stderr.contains("(SIGTERM received during rollback: the run was finished first)"))
        try Self.expectUnchanged(site, since: before)
        #expect(try Self.lastRun(site).status == "rolled_back")
    }

    @Test("a signal during recover: the recovery finishes, exit 0, one line saying so")
    func recoverFinishes() throws {
        let site = try AcmePay.site()
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", variant: .failingSmoke, format: .zip)
        // A run killed (SIGKILL) mid-rollback, then a `recover` paused in its own rollback of it.
        let killed = try Self.startUpgrade(site, release, faults: "mid-rollback=kill").wait()
        #expect(killed.status == 128 + SIGKILL)
        let tool = try startTool(
            ["recover"] + site.siteOptions,
            environment: [FaultInjection.environmentVariable: "mid-rollback=sleep:30"])
        #expect(waitUntil(timeout: 30) { Self.stepCount(site, "rollback") >= 2 })
        tool.kill(SIGINT)
        let result = try tool.wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderrLines == [
            "molam-upgrade: SIGINT received during rollback: the run was finished first"])
        try Self.expectUnchanged(site, since: before)
        #expect(try site.run(["recover"]).stdout.contains("nothing to recover"))
    }

    static func startUpgrade(
        _ site: TestSite, _ release: (path: String, sha256: String), faults: String?
    ) throws -> StartedTool {
        try startTool(
            ["upgrade", "--archive", release.path, "--sha256", release.sha256] + site.siteOptions,
            environment: faults.map { [FaultInjection.environmentVariable: $0] } ?? [:])
    }

    /// The tree and the tables exactly as before (the database file's bytes may differ: SQLite pages).
    static func expectUnchanged(_ site: TestSite, since before: SiteSnapshot) throws {
        let after = try site.snapshot()
        #expect(after.tree == before.tree)
        #expect(after.databaseDump == before.databaseDump)
    }

    // MARK: Reading the journal while the agent writes it (WAL: readers never block the writer)

    static func stepStarted(_ site: TestSite, _ step: String) -> Bool { stepCount(site, step) > 0 }

    static func stepCount(_ site: TestSite, _ step: String) -> Int {
        let journal = site.stateDirectory + "/journal.db"
        guard FileManager.default.fileExists(atPath: journal),
              let db = try? SQLiteConnection(path: journal, mode: .readOnly),
              let count = try? db.scalar("SELECT count(*) FROM steps WHERE name = ?", [.text(step)])?.intValue
        else { return 0 }
        return Int(count)
    }

    static func lastRun(_ site: TestSite) throws -> (status: String, error: String) {
        let db = try SQLiteConnection(path: site.stateDirectory + "/journal.db", mode: .readOnly)
        let row = try db.query("SELECT status, error FROM runs ORDER BY rowid DESC LIMIT 1").first
        return (row?["status"].stringValue ?? "", row?["error"].stringValue ?? "")
    }

    static func pid(in marker: String) -> pid_t? {
        (try? String(contentsOfFile: marker, encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}
