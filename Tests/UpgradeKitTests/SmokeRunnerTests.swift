import Foundation
import MolamSQLite
import Synchronization
import Testing
import TestSupport
import UpgradeKit

@Suite("smoke checks")
struct SmokeRunnerTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("smoke-\(UUID())").path

    func runner(version: String = "4.0.0") throws -> SmokeRunner {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let database = directory + "/site.db"
        let db = try SQLiteConnection(path: database, mode: .readWriteCreate)
        try db.executeScript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);")
        return SmokeRunner(
            pluginDirectory: directory, database: .sqlite(path: database),
            version: try #require(SemanticVersion(version)))
    }

    @Test("An http check waits, within its timeout, until the site reports the new version")
    func httpWaitsForVersion() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Opcache serves the old code for the first requests after a swap.
        let served = Atomic<Int>(0)
        let server = try LoopbackHTTPServer { _ in
            let count = served.add(1, ordering: .relaxed).newValue
            return .text(200, count < 3 ? "molam-form 3.9.0" : "molam-form 4.0.0")
        }
        defer { server.stop() }
        let results = try runner().run([
            .http(url: server.baseURL + "/health", expectStatus: 200, expectBody: "molam-form {version}",
                  timeoutSeconds: 20),
        ])
        #expect(results.map(\.passed) == [true])
        #expect(server.requests.count >= 3)
    }

    @Test("An http check fails on the wrong status once its timeout has passed")
    func httpWrongStatus() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try LoopbackHTTPServer { _ in .text(500, "fatal error") }
        defer { server.stop() }
        let results = try runner().run([
            .http(url: server.baseURL + "/health", expectStatus: 200, expectBody: nil, timeoutSeconds: 0.5),
        ])
        #expect(results.first?.passed == false)
        #expect(results.first?.detail.contains("HTTP 500") == true)
    }

    @Test("sql checks pass on a query that runs and compare with expect when given; checks stop at the first failure")
    func sql() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runner = try runner()
        #expect(runner.run([.sql(query: "SELECT count(*) FROM t", expect: "2", timeoutSeconds: 5)]).first?.passed == true)
        let results = runner.run([
            .sql(query: "SELECT count(*) FROM t", expect: "3", timeoutSeconds: 5),
            .sql(query: "SELECT 1", expect: nil, timeoutSeconds: 5),
        ])
        #expect(results.count == 1)
        #expect(results.first?.detail == "returned '2', expected '3'")
        #expect(runner.run([.sql(query: "SELECT * FROM missing", expect: nil, timeoutSeconds: 5)]).first?.passed == false)
    }

    @Test("command checks get the plugin directory, version and database, and time out")
    func command() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runner = try runner(version: "4.1.0")
        let script = directory + "/smoke"
        try "#!/bin/sh\necho \"$MOLAM_PLUGIN_VERSION $(pwd) $MOLAM_DB\"\n".write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        let passed = runner.run([.command(run: ["./smoke"], timeoutSeconds: 10)])
        #expect(passed.first?.passed == true)
        #expect(passed.first?.detail.hasPrefix("4.1.0 \(directory) sqlite://\(directory)/site.db (ran as ") == true)
        try "#!/bin/sh\nexec sleep 30\n".write(toFile: directory + "/slow", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory + "/slow")
        let slow = runner.run([.command(run: ["slow"], timeoutSeconds: 0.3)])
        #expect(slow.first?.passed == false)
        #expect(slow.first?.detail.hasPrefix("timed out") == true)
    }
}
