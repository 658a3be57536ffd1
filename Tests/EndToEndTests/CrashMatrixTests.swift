import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The crash matrix: the real binary SIGKILLs itself at every fault point (MOLAM_UPGRADE_FAULTS), during
/// an upgrade that would succeed and during one that would roll back; then the next command runs.
/// Whatever the point, the site must be exactly the old version or exactly the new one, the journal
/// must say which, and nothing half-done may be left on disk.
@Suite("crash matrix")
struct CrashMatrixTests {
    enum Scenario: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case succeeding, rollingBack = "rolling-back"
        var testDescription: String { rawValue }
    }

    /// Every point but the step boundaries of steps an `--archive` upgrade never runs.
    static let points = FaultInjection.pointNames.filter { !["before-eligibility", "after-eligibility"].contains($0) }
    /// Points only a rollback reaches.
    static let rollbackOnly: Set<String> = ["before-rollback", "after-rollback", "mid-rollback", "mid-restore"]
    /// Points only an upgrade whose verify passes reaches.
    static let commitOnly: Set<String> = ["after-verify", "before-commit", "after-commit"]

    @Test("the matrix covers every fault point an upgrade reaches")
    func size() {
        let cases = Self.points.count * Scenario.allCases.count
        let reached = Self.points.count * 2 - Self.rollbackOnly.count - Self.commitOnly.count
        print("crash matrix: \(Self.points.count) fault points × \(Scenario.allCases.count) scenarios = \(cases) "
              + "kills, \(reached) of them at a point the scenario reaches")
        #expect(Set(Self.points).isSuperset(of: ["after-swap", "mid-extract", "between-migrations", "mid-rollback",
                                                 "mid-restore", "mid-backup", "before-tidy", "fsync"]))
        #expect(Self.points.count >= 28)
    }

    @Test("kill -9 at a fault point, then the next command: exactly one version, journal agrees, nothing left",
          arguments: Scenario.allCases, points)
    func killAt(scenario: Scenario, point: String) throws {
        let crash = try CrashSite(scenario: scenario)
        let killed = try crash.upgrade(faults: "\(point)=kill")
        let reachable = scenario == .succeeding ? !Self.rollbackOnly.contains(point) : !Self.commitOnly.contains(point)
        #expect(killed.status == (reachable ? 128 + SIGKILL : (scenario == .succeeding ? 0 : 1)),
                "\(point): \(killed.stderr)")

        // The next command: recovery finishes whatever the kill interrupted.
        let recovered = try crash.site.run(["recover"])
        #expect(recovered.status == 0, "\(point): \(recovered.stderr)")
        let version = try crash.checkExactlyOneVersion(context: "\(scenario) killed at \(point)")
        if scenario == .rollingBack { #expect(version == .old, "\(point)") }

        if scenario == .succeeding {
            // Nothing is wedged: the cron's next run finishes the upgrade.
            let again = try crash.upgrade(faults: nil)
            #expect(again.status == 0, "\(point): \(again.stderr)")
            #expect(try crash.checkExactlyOneVersion(context: "upgrade after \(point)") == .new)
        }
    }

    @Test("a second kill while recovery finishes the rollback, then a third command: still exactly the old version",
          arguments: ["before-rollback", "mid-rollback", "mid-restore", "after-rollback", "before-tidy"])
    func killTwice(point: String) throws {
        let crash = try CrashSite(scenario: .rollingBack)
        // Killed before the rollback did anything, so that the second run reaches every point of it.
        #expect(try crash.upgrade(faults: "before-rollback=kill").status == 128 + SIGKILL)
        let second = try runTool(["recover"] + crash.site.siteOptions, environment: [FaultInjection.environmentVariable: "\(point)=kill"])
        #expect(second.status == 128 + SIGKILL, "\(point): \(second.stderr)")
        #expect(try crash.site.run(["recover"]).status == 0)
        #expect(try crash.checkExactlyOneVersion(context: "killed twice, at before-rollback then \(point)") == .old)
    }

    @Test("every fsync the agent makes, failed in turn: the run stops, the site is exactly one version, journal agrees")
    func everyFsyncFails() throws {
        let crash = try CrashSite(scenario: .succeeding)
        var failures = 0
        for occurrence in 1...400 {
            let result = try crash.upgrade(faults: "fsync=error@\(occurrence)")
            let version = try crash.checkExactlyOneVersion(context: "fsync #\(occurrence) failed")
            if result.status == 0 {
                #expect(version == .new)
                print("fsync failures: each of the \(occurrence - 1) fsyncs of an upgrade failed in turn; "
                      + "every run stopped with the site exactly on the old version")
                break
            }
            failures += 1
            #expect(version == .old, "fsync #\(occurrence)")
            // Exit 2 only when the state directory itself cannot be made (the very first fsync).
            #expect([1, 4].contains(result.status) || (result.status == 2 && result.stderr.contains("state directory")),
                    "fsync #\(occurrence): \(result.status) \(result.stderr)")
            #expect(result.stderrLines.count == 1, "fsync #\(occurrence): \(result.stderr)")
            #expect(result.stderr.contains("Input/output error"), "fsync #\(occurrence): \(result.stderr)")
        }
        #expect(failures >= 10)
    }

    @Test("MOLAM_UPGRADE_FAULTS is checked: a typo is one line and exit 2, sleep and @N work")
    func specificationIsChecked() throws {
        let crash = try CrashSite(scenario: .succeeding)
        for bad in ["after-swapp=kill", "after-swap=explode", "after-swap", "after-swap=kill@0", "after-swap=sleep:x"] {
            let result = try crash.upgrade(faults: bad)
            #expect(result.status == 2, "\(bad): \(result.stderr)")
            #expect(result.stderrLines.count == 1)
            #expect(result.stderr.contains("MOLAM_UPGRADE_FAULTS"))
            #expect(try crash.checkExactlyOneVersion(context: bad) == .old)
        }
        // The third file extracted fails: a refusal, nothing changed; errors name the point.
        let third = try crash.upgrade(faults: "mid-extract=error@3, after-swap=sleep:0")
        #expect(third.status == 1, "\(third.stderr)")
        #expect(try crash.checkExactlyOneVersion(context: "mid-extract error") == .old)
        let migration = try crash.upgrade(faults: "between-migrations=error@2")
        #expect(migration.status == 1, "\(migration.stderr)")
        #expect(migration.stderr.contains("between-migrations"))
        #expect(try crash.checkExactlyOneVersion(context: "migration error") == .old)
    }
}

/// An acme-pay site, the release to try on it, and what "exactly old" and "exactly new" mean for it.
final class CrashSite {
    enum Version: Equatable { case old, new }

    let site: TestSite
    let release: (path: String, sha256: String)
    let scenario: CrashMatrixTests.Scenario
    let oldTree: TreeSnapshot
    let oldDump: String
    let newTree: TreeSnapshot

    init(scenario: CrashMatrixTests.Scenario) throws {
        self.scenario = scenario
        site = try AcmePay.site()
        let build = site.root + "/build"
        let tree = try AcmePay.write(
            version: "1.1.0", variant: scenario == .succeeding ? .good : .failingSmoke, into: build)
        release = try site.release(from: tree, format: scenario == .succeeding ? .zip : .tarGz)
        oldTree = try TreeSnapshot.take(site.pluginDirectory)
        oldDump = try normalizedDump(site.databasePath)
        newTree = try TreeSnapshot.take(tree)
        try FileManager.default.removeItem(atPath: build)
    }

    func upgrade(faults: String?) throws -> ProcessResult {
        try runTool(
            ["upgrade", "--archive", release.path, "--sha256", release.sha256] + site.siteOptions,
            environment: faults.map { [FaultInjection.environmentVariable: $0] } ?? [:])
    }

    /// Checks the invariants; returns which version the site is on.
    func checkExactlyOneVersion(context: String) throws -> Version {
        let tree = try TreeSnapshot.take(site.pluginDirectory)
        let dump = try normalizedDump(site.databasePath)
        let version: Version
        if tree == oldTree {
            version = .old
            #expect(dump == oldDump, "\(context): old tree but not the old tables")
        } else {
            version = .new
            #expect(tree == newTree, "\(context): the live tree is neither version:\n\(tree)")
            #expect(dump == referenceNewDump, "\(context): new tree but not the migrated tables")
        }

        // The journal says which: no unfinished run, and the last upgrade's outcome matches the disk.
        let status = try json(site.run(["status", "--json"]))
        #expect((status["unfinished_runs"] as? [Any])?.isEmpty == true, "\(context)")
        let history = try json(site.run(["history", "--json", "--limit", "20"]))
        let runs = (history["runs"] as? [[String: Any]]) ?? []
        let lastChange = runs.first { ($0["status"] as? String).map { !["skipped", "refused"].contains($0) } ?? false }
        if version == .new {
            #expect(lastChange?["status"] as? String == "succeeded", "\(context): \(runs.first ?? [:])")
        } else if let status = lastChange?["status"] as? String {
            #expect(["rolled_back", "aborted", "failed"].contains(status), "\(context): \(status)")
        }

        // Nothing half-done: no partial backup, no staging next to the plugin, and in the work area at
        // most the kept previous tree of a succeeded upgrade (exactly the old version).
        let backups = site.stateDirectory + "/backups/acme-pay"
        let partial = ((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).filter {
            $0.hasPrefix(".partial-")
        }
        #expect(partial.isEmpty, "\(context): \(partial)")
        let plugins = try FileManager.default.contentsOfDirectory(atPath: site.root + "/wp-content/plugins")
        #expect(plugins == ["acme-pay"], "\(context): \(plugins)")
        let workRoot = site.stateDirectory + "/work"
        let work = (try? FileManager.default.contentsOfDirectory(atPath: workRoot)) ?? []
        if version == .new {
            #expect(work.count == 1, "\(context): \(work)")
            if let kept = work.first {
                let children = (try? FileManager.default.contentsOfDirectory(atPath: workRoot + "/" + kept)) ?? []
                // The kept tree, and the run's own record beside it (RunFile).
                #expect(children.sorted() == ["run.json", "stage"], "\(context): \(children)")
                #expect(try TreeSnapshot.take(workRoot + "/" + kept + "/stage/acme-pay") == oldTree, "\(context)")
            }
        } else {
            #expect(work.isEmpty, "\(context): \(work)")
        }
        return version
    }

    private func json(_ result: ProcessResult) throws -> [String: Any] {
        (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]) ?? [:]
    }
}

/// The database dump with the only field that differs between two identical upgrades masked: the
/// migration ledger's applied_at.
func normalizedDump(_ path: String) throws -> String {
    try dump(path).split(separator: "\n", omittingEmptySubsequences: false).map { line in
        guard line.hasPrefix("molam_schema_migrations: "), let bar = line.lastIndex(of: "|") else { return String(line) }
        return String(line[..<bar]) + "|<applied_at>"
    }.joined(separator: "\n")
}

/// The tables after an uninterrupted good upgrade of acme-pay 1.0.0 to 1.1.0, made once.
let referenceNewDump: String = {
    guard let site = try? AcmePay.site(), let release = try? AcmePay.release(site, version: "1.1.0", format: .zip),
          let result = try? site.upgrade(release), result.status == 0
    else { return "reference upgrade failed" }
    return (try? normalizedDump(site.databasePath)) ?? "reference dump failed"
}()
