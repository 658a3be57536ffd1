import Foundation
import MolamHTTP
import TestSupport
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The rollout answer as the seeds document it (115ter), decoded by the client, and the delivery
/// deadline that keeps a slow API from stretching a run.
@Suite("seeds' rollout shapes and delivery deadline")
struct SeedsRolloutTests {
    private static let source = "http://127.0.0.1/api/plugins/rollouts/woocommerce"

    private static func decode(_ text: String) throws(CentralAPIError) -> Rollout? {
        try Rollout.decodeAnswer(Data(text.utf8), source: source, expectedPlugin: "woocommerce")
    }

    @Test("The seeds' GET example, verbatim: integer id, geo targets, unknown fields ignored")
    func seedsExample() throws {
        let rollout = try #require(try Self.decode("""
            {"rollout": {"id": 1, "plugin_name": "woocommerce", "version": "4.0.0", "rollout_percentage": 25,
             "rollout_strategy": "geo", "target_countries": ["US", "FR"], "status": "active",
             "merchants_upgraded": 142, "error_rate": 0.012}}
            """))
        #expect(rollout.id == "1")
        #expect(rollout.numericID == 1)
        #expect(rollout.strategy == .geo)
        #expect(rollout.targetCountries == ["US", "FR"])
        #expect(rollout.targetTiers.isEmpty)
        #expect(rollout.percentage == 25)
        #expect(rollout.errorThreshold == nil)
    }

    @Test("The seeds' POST answer (ok, no strategy) is a random rollout; a string id stays a string")
    func postAnswer() throws {
        let rollout = try #require(try Self.decode("""
            {"ok": true, "rollout": {"id": "r-9", "plugin_name": "woocommerce", "version": "4.0.0",
             "rollout_percentage": 5, "status": "active"}}
            """))
        #expect(rollout.strategy == .random)
        #expect(rollout.id == "r-9" && rollout.numericID == nil)
    }

    @Test("{\"rollout\": null} is no rollout; a bare object is a rollout")
    func nullAndBare() throws {
        #expect(try Self.decode(#"{"rollout": null}"#) == nil)
        let bare = try #require(try Self.decode("""
            {"id": 3, "plugin_name": "woocommerce", "version": "4.1.0", "rollout_percentage": 100,
             "status": "completed"}
            """))
        #expect(bare.status == .completed && bare.numericID == 3)
    }

    @Test("Wrong types are refused with the field named", arguments: [
        (#"{"rollout": {"id": 1, "plugin_name": "woocommerce", "version": "4.0.0", "rollout_percentage": "25", "status": "active"}}"#,
         "'rollout_percentage'"),
        (#"{"rollout": "soon"}"#, "'rollout'"),
        (#"{"rollout": {"id": true, "plugin_name": "woocommerce", "version": "4.0.0", "rollout_percentage": 5, "status": "active"}}"#,
         "'id'"),
        (#"{"rollout": {"id": 1, "plugin_name": "woocommerce", "version": "4.0.0", "rollout_percentage": 5, "status": "active", "rollout_strategy": 7}}"#,
         "'rollout_strategy'"),
        (#"[1, 2]"#, "not a JSON object"),
    ])
    func strict(body: String, named: String) {
        do {
            _ = try Self.decode(body)
            Issue.record("accepted \(body)")
        } catch {
            #expect(!error.isRetryable)
            #expect(error.description.contains(named), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test("Through the client: the fake's default (wrapped) shape, null, 404 and bare all decode")
    func throughTheClient() throws {
        let api = try FakeCentralAPI(token: "tok-seeds")
        defer { api.stop() }
        let client = try CentralAPI(endpoint: APIEndpoint(baseURL: api.baseURL, token: "tok-seeds"))
        #expect(try client.rollout(plugin: "woocommerce") == nil)   // 404
        api.setNoActiveRollout(plugin: "woocommerce")
        #expect(try client.rollout(plugin: "woocommerce") == nil)
        api.setRollout(plugin: "woocommerce", [
            "id": 1, "plugin_name": "woocommerce", "version": "4.0.0", "rollout_percentage": 25, "status": "paused",
        ])
        #expect(try client.rollout(plugin: "woocommerce")?.status == .paused)
        api.setRolloutShape(.bare)
        #expect(try client.rollout(plugin: "woocommerce")?.numericID == 1)
    }

    @Test("A delivery deadline cuts a slow answer short and starts nothing after it")
    func deadline() throws {
        let api = try FakeCentralAPI(token: "tok-seeds")
        defer { api.stop() }
        api.setPersistentFault(.slow(seconds: 5), on: .reports)
        let client = try CentralAPI(
            endpoint: APIEndpoint(baseURL: api.baseURL, token: "tok-seeds"), sleep: { _ in })
        client.deadline = Deadline(seconds: 0.5)
        let start = ProcessInfo.processInfo.systemUptime
        #expect(throws: CentralAPIError.self) {
            _ = try client.post(path: "/api/plugins/upgrades", json: Data("{}".utf8), idempotencyKey: "k-1")
        }
        let elapsed = ProcessInfo.processInfo.systemUptime - start
        #expect(elapsed < 3, "took \(elapsed) s")
        let before = api.requests.count
        do {
            _ = try client.post(path: "/api/plugins/upgrades", json: Data("{}".utf8), idempotencyKey: "k-2")
            Issue.record("sent after the deadline")
        } catch {
            #expect(error.description.contains("deadline"), "\(error)")
        }
        #expect(api.requests.count == before)
    }

    @Test("The transport policy check refuses file, ftp and remote plain http without connecting")
    func urlPolicy() throws {
        for url in ["file:///etc/shadow", "ftp://127.0.0.1/x", "http://203.0.113.9/x", "/relative", "gopher://a/b"] {
            #expect(throws: HTTPError.self) { _ = try HTTPClient.checkURL(url) }
        }
        #expect(try HTTPClient.checkURL("https://cdn.example/x.zip?sig=1") == "https://cdn.example/x.zip?…")
        #expect(try HTTPClient.checkURL("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x")
    }
}

/// The outbox lock: one deliverer at a time, and nothing a planted file can turn.
@Suite("outbox lock")
struct OutboxLockTests {
    @Test("A second deliverer is turned away at once; the lock is free again when the first is done")
    func exclusive() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var first: OutboxLock? = try OutboxLock(stateDirectory: directory)
        #expect(first != nil)
        do {
            _ = try OutboxLock(stateDirectory: directory)
            Issue.record("two deliverers at once")
        } catch {
            guard case .held = error else { Issue.record("\(error)"); return }
            #expect(error.description.contains("delivering"))
        }
        first = nil
        #expect(throws: Never.self) { _ = try OutboxLock(stateDirectory: directory) }
    }

    @Test("A hard link planted at the lock path is refused and the linked file is left as it was")
    func hardLinkRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let precious = directory + "/precious"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: precious))
        #expect(link(precious, directory + "/outbox.lock") == 0)
        do {
            _ = try OutboxLock(stateDirectory: directory)
            Issue.record("a hard-linked lock file was used")
        } catch {
            guard case .unusable = error else { Issue.record("\(error)"); return }
        }
        #expect(FileManager.default.contents(atPath: precious) == Data("keep me".utf8))
    }
}
