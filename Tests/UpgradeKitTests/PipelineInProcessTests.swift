import Foundation
import MolamHTTP
import MolamSQLite
import Testing
@testable import UpgradeKit

/// `upgrade`, `rollback` and `recover` driven in-process through the context's seams: real files,
/// a real SQLite database and real archives, but no network, no sleeping and a clock of the test's
/// own. Whatever the test did not expect the run to reach fails it (`Services.failing`).
@Suite("The pipeline in process")
struct PipelineInProcessTests {
    static let upgradeSteps = [
        "lock:done", "recover:done", "resolve:done", "eligibility:skipped", "download:done", "stage:done",
        "backup:done", "swap:done", "migrate:done", "verify:done", "commit:done",
    ]

    @Test("upgrade from a local release: every step in DESIGN.md's order, the tables migrated, no network")
    func upgrade() throws {
        let site = try InProcessSite()
        let outcome = try site.upgrade("4.0.0")
        #expect(outcome.status == .succeeded, "\(outcome.message)")
        #expect(outcome.exitCode == .ok)
        #expect(outcome.rollbackStatus == .notRequired)
        #expect(try site.installedVersion() == "4.0.0")
        #expect(try site.tables().contains("wp_molam_refunds"))
        #expect(try site.steps(of: outcome.runID) == Self.upgradeSteps)
        #expect(site.reached.first == "before-recover")
        #expect(site.reached.contains("before-tidy"))
    }

    @Test("a failure after migrate walks the undos: old tree, old tables, exit 1", arguments: ["after-migrate", "before-verify"])
    func failureRollsBack(point: String) throws {
        let site = try InProcessSite()
        let before = try site.tables()
        site.onFault = { if $0 == point { throw UpgradeError.failed("injected at \(point)") } }
        let outcome = try site.upgrade("4.0.0")
        #expect(outcome.status == .rolledBack, "\(outcome.message)")
        #expect(outcome.exitCode == .rolledBack)
        #expect(outcome.rollbackStatus == .success)
        #expect(outcome.rollback?.filesRestored == true)
        #expect(outcome.rollback?.databaseRestored == true)
        #expect(outcome.rollback?.trigger == .automatic)
        #expect(try site.installedVersion() == "3.9.0")
        #expect(try site.tables() == before)
        #expect(try site.steps(of: outcome.runID).last == "rollback:done")
    }

    @Test("a release refused at stage changes nothing and ends exit 4")
    func refusedAtStage() throws {
        let site = try InProcessSite()
        let release = try site.release("4.0.0")
        var options = Pipeline.UpgradeOptions(archive: release.path, sha256: release.sha256)
        options.expectedVersion = SemanticVersion("4.0.2")
        let outcome = try Pipeline.upgrade(options, context: site.context())
        #expect(outcome.status == .refused)
        #expect(outcome.exitCode == .refused)
        #expect(outcome.message.contains("not the requested 4.0.2"), "\(outcome.message)")
        #expect(try site.installedVersion() == "3.9.0")
        #expect(!site.reached.contains("before-backup"))
    }

    @Test("power cut right after the swap: recover puts the old version back from what is on disk")
    func powerCutThenRecover() throws {
        let site = try InProcessSite()
        let before = try site.tables()
        try site.upgradeCut(at: "after-swap")
        let outcomes = try Recovery.run(context: site.context())
        #expect(outcomes.count == 1)
        #expect(outcomes.first?.status == .rolledBack, "\(outcomes.first?.message ?? "")")
        #expect(outcomes.first?.rollback?.trigger == .recovery)
        #expect(try site.installedVersion() == "3.9.0")
        #expect(try site.tables() == before)
        #expect(try Recovery.run(context: site.context()).isEmpty)
    }

    @Test("operator rollback after a successful upgrade restores the backup of the previous version")
    func manualRollback() throws {
        let site = try InProcessSite()
        let upgraded = try site.upgrade("4.0.0")
        #expect(upgraded.status == .succeeded)
        let outcome = try Pipeline.rollback(Pipeline.RollbackOptions(), context: site.context())
        #expect(outcome.status == .succeeded, "\(outcome.message)")
        #expect(outcome.command == "rollback")
        #expect(outcome.fromVersion == "4.0.0")
        #expect(outcome.toVersion == "3.9.0")
        #expect(try site.installedVersion() == "3.9.0")
        #expect(!(try site.tables().contains("wp_molam_refunds")))
    }

    @Test("dry run: migrations checked on a scratch copy, nothing changed")
    func dryRun() throws {
        let site = try InProcessSite()
        let before = try site.tables()
        let outcome = try site.upgrade("4.0.0", dryRun: true)
        #expect(outcome.status == .dryRun, "\(outcome.message)")
        #expect(outcome.message.contains("apply cleanly"))
        #expect(try site.installedVersion() == "3.9.0")
        #expect(try site.tables() == before)
    }

    @Test("from the central API through the transport seam: no rollout means skipped, one request")
    func centralAPISeam() throws {
        let site = try InProcessSite()
        let token = site.temp.sub("token")
        try "secret\n".write(toFile: token, atomically: true, encoding: .utf8)
        chmod(token, 0o600)
        var context = site.context()
        context.agent.apiURL = "https://api.example.invalid"
        context.agent.tokenFile = token
        let transport = ScriptedTransport { request in
            HTTPResponse(status: 404, headers: [:], body: Data("{}".utf8), bytesReceived: 2)
        }
        context.services.httpTransport = { () throws(HTTPError) in transport }
        let outcome = try Pipeline.upgrade(Pipeline.UpgradeOptions(trigger: .scheduled), context: context)
        #expect(outcome.status == .skipped, "\(outcome.message)")
        #expect(outcome.exitCode == .ok)
        #expect(transport.requests == ["GET https://api.example.invalid/api/plugins/rollouts/molam-form"])
        #expect(try site.installedVersion() == "3.9.0")
    }
}

@Suite("Recovery from what is on disk")
struct RecoveryFromDiskTests {
    @Test("power cut after the swap and the journal lost: recover finds the run in its work directory and rolls back")
    func journalLost() throws {
        let site = try InProcessSite()
        let tablesBefore = try site.tables()
        try site.upgradeCut(at: "after-swap")
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: site.state + "/journal.db" + suffix) }
        let outcomes = try Recovery.run(context: site.context())
        #expect(outcomes.count == 1)
        #expect(outcomes.first?.status == .rolledBack, "\(outcomes.first?.message ?? "")")
        #expect(try site.installedVersion() == "3.9.0")
        #expect(try site.tables() == tablesBefore)
        // And the next upgrade starts from the old version, not from a half-upgraded baseline.
        let again = try site.upgrade("4.0.0")
        #expect(again.status == .succeeded, "\(again.message)")
    }
}

@Suite("A rollback that failed on a lock")
struct LockedRollbackTests {
    @Test("the site holds the write lock through the rollback: exit 3; recover retries, waiting longer, and repairs")
    func lockedThenRetried() throws {
        let site = try InProcessSite()
        let schemaBefore = try RowsKeptTests.schema(site.database)
        var holder: SQLiteConnection?
        site.onFault = { point in
            if point == "after-migrate" {
                let connection = try SQLiteConnection(path: site.database, mode: .readWrite)
                try connection.execute("BEGIN IMMEDIATE")
                holder = connection
                throw UpgradeError.failed("injected at \(point)")
            }
        }
        var context = site.context()
        context.rollbackBusyTimeout = 0.3
        let outcome = try site.upgrade("4.0.0", context: context)
        #expect(outcome.exitCode == .rollbackFailed, "\(outcome.message)")
        // The tables could not go back, so the files did not either: the site stays whole on 4.0.0.
        #expect(outcome.rollback?.filesRestored == false)
        #expect(outcome.rollback?.databaseRestored == false)
        #expect(try site.installedVersion() == "4.0.0")
        try holder?.execute("ROLLBACK")
        holder = nil
        site.onFault = { _ in }
        let recovered = try Recovery.run(context: context)
        #expect(recovered.count == 1)
        #expect(recovered.first?.status == .rolledBack, "\(recovered.first?.message ?? "")")
        #expect(try RowsKeptTests.schema(site.database) == schemaBefore)
        #expect(try site.installedVersion() == "3.9.0")
        #expect(try Recovery.run(context: context).isEmpty)
    }
}
