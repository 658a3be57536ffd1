import Foundation
import MolamCrypto
import MolamHTTP
import MolamSQLite
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// Services for in-process runs: every one fails the test when called, unless the test installs its
/// own (the failing HTTP executor of swiftly's tests, for the whole outside world).
extension Services {
    static func failing(_ sourceLocation: SourceLocation = #_sourceLocation) -> Services {
        Services(
            httpTransport: { () throws(HTTPError) in
                Issue.record("unexpected network use", sourceLocation: sourceLocation)
                return UnexpectedTransport()
            },
            openDatabase: { location throws(PluginDatabaseError) in
                Issue.record("unexpected database open: \(location)", sourceLocation: sourceLocation)
                throw .missingDatabase(path: "\(location)")
            },
            sleep: { seconds in Issue.record("unexpected sleep of \(seconds) s", sourceLocation: sourceLocation) },
            userID: { geteuid() },
            fault: { _ in })
    }
}

/// A transport that fails every request: what `Services.failing` hands out.
final class UnexpectedTransport: HTTPTransport {
    func send(
        _ request: HTTPRequest, body sink: ((UnsafeRawBufferPointer) throws -> Void)?
    ) throws(HTTPError) -> HTTPResponse {
        Issue.record("unexpected request \(request.method) \(request.url)")
        throw .transport(code: 7, message: "no network in this test", url: request.url)
    }
}

/// A transport that answers from a script, and records what was asked.
final class ScriptedTransport: HTTPTransport {
    private let answer: (HTTPRequest) -> HTTPResponse
    private(set) var requests: [String] = []

    init(_ answer: @escaping (HTTPRequest) -> HTTPResponse) { self.answer = answer }

    func send(
        _ request: HTTPRequest, body sink: ((UnsafeRawBufferPointer) throws -> Void)?
    ) throws(HTTPError) -> HTTPResponse {
        requests.append("\(request.method) \(request.url)")
        return answer(request)
    }
}

/// A fixture site on disk for in-process runs: molam-form 3.9.0, the Boutique Teranga database,
/// and releases of the fixture versions packed with tar.
final class InProcessSite {
    let temp: TemporaryDirectory
    var plugin: String { temp.path + "/wp-content/plugins/molam-form" }
    var database: String { temp.path + "/site.db" }
    var state: String { temp.path + "/state" }
    /// Fault points reached, in order.
    private(set) var reached: [String] = []
    /// What to do at a point: throw to fail there (or `PowerCut` to stop as a kill would).
    var onFault: (String) throws -> Void = { _ in }

    static let fixtures: String = {
        var root = URL(fileURLWithPath: #filePath)
        while root.path != "/" && !FileManager.default.fileExists(atPath: root.path + "/Package.swift") {
            root.deleteLastPathComponent()
        }
        return root.path + "/Fixtures"
    }()

    init() throws {
        temp = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: temp.path + "/wp-content/plugins", withIntermediateDirectories: true)
        try Tool.run(["cp", "-a", Self.fixtures + "/plugins/molam-form/3.9.0/molam-form", plugin], in: temp.path)
        let sql = try String(contentsOfFile: Self.fixtures + "/site/site.sql", encoding: .utf8)
        try SQLiteConnection(path: database, mode: .readWriteCreate).executeScript(sql)
    }

    /// A context whose services all fail but the database, the fault points and the clock, which
    /// moves one second per reading.
    func context() -> UpgradeContext {
        var context = UpgradeContext(
            site: SiteConfiguration(pluginDirectory: plugin, database: .sqlite(path: database), stateDirectory: state),
            clock: Self.steppingClock())
        context.agent.phpLint = false
        var services = Services.failing()
        services.openDatabase = { location throws(PluginDatabaseError) in try PluginDatabases.open(location) }
        services.fault = { [unowned self] point in
            reached.append(point)
            try onFault(point)
        }
        context.services = services
        return context
    }

    /// A release of a fixture version, as a tar.gz with its SHA-256.
    func release(_ version: String) throws -> (path: String, sha256: String) {
        let path = temp.sub("molam-form-\(version).tar.gz")
        try Tool.run(
            ["tar", "-C", Self.fixtures + "/plugins/molam-form/\(version)", "-czf", path, "molam-form"], in: temp.path)
        let hasher = try SHA256()
        hasher.update(try Data(contentsOf: URL(fileURLWithPath: path)))
        return (path, hasher.finalizeHex())
    }

    /// An in-process upgrade to fixture `version` from its local release.
    func upgrade(_ version: String, context: UpgradeContext? = nil, dryRun: Bool = false) throws -> RunOutcome {
        let release = try release(version)
        return try Pipeline.upgrade(
            Pipeline.UpgradeOptions(archive: release.path, sha256: release.sha256, dryRun: dryRun),
            context: context ?? self.context())
    }

    /// A release of fixture `version` without its down migrations.
    func releaseWithoutDowns(_ version: String) throws -> (path: String, sha256: String) {
        let parent = try temp.directory("nodowns-\(version)")
        try Tool.run(["cp", "-a", Self.fixtures + "/plugins/molam-form/\(version)/molam-form", parent], in: temp.path)
        for file in try FileManager.default.contentsOfDirectory(atPath: parent + "/molam-form/migrations")
        where file.hasSuffix(".down.sql") {
            try FileManager.default.removeItem(atPath: parent + "/molam-form/migrations/" + file)
        }
        let path = temp.sub("molam-form-\(version)-nodowns.tar.gz")
        try Tool.run(["tar", "-C", parent, "-czf", path, "molam-form"], in: temp.path)
        let hasher = try SHA256()
        hasher.update(try Data(contentsOf: URL(fileURLWithPath: path)))
        return (path, hasher.finalizeHex())
    }

    /// An upgrade to 4.0.0 whose power is cut at `point`, left as a kill would leave it: the new
    /// tree live, the run unfinished in the journal. Fault points are off again afterwards.
    @discardableResult
    func upgradeCut(at point: String) throws -> (path: String, sha256: String) {
        onFault = { if $0 == point { throw PowerCut(point: $0) } }
        defer { onFault = { _ in } }
        let release = try release("4.0.0")
        #expect(throws: UpgradeError.self) {
            try Pipeline.upgrade(
                Pipeline.UpgradeOptions(archive: release.path, sha256: release.sha256), context: context())
        }
        #expect(try installedVersion() == "4.0.0")
        return release
    }

    func installedVersion() throws -> String {
        try PluginManifest.load(pluginDirectory: plugin).version.description
    }

    func tables() throws -> Set<String> {
        try PluginDatabases.open(.sqlite(path: database)).existingTables()
    }

    func steps(of runID: String?) throws -> [String] {
        let journal = try Journal(path: state + "/journal.db")
        return try journal.steps(run: runID ?? "").map { "\($0.name):\($0.status.rawValue)" }
    }

    private static func steppingClock() -> () -> Date {
        let ticks = LockedCounter()
        return { Date(timeIntervalSince1970: 1_800_000_000 + Double(ticks.next())) }
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
