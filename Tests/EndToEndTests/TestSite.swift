import Foundation
import MolamCrypto
import MolamSQLite
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The package root, found from this file's path.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The built `molam-upgrade` next to the test bundle.
let binaryPath: String = {
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("molam-upgrade").path
    if FileManager.default.isExecutableFile(atPath: beside) { return beside }
    return packageRoot + "/.build/debug/molam-upgrade"
}()

struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
}

/// Runs the binary as a user would, waiting for it to finish.
@discardableResult
func runTool(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
    let tool = try startTool(arguments, environment: environment)
    return try tool.wait()
}

/// A started binary: output goes to files, so nothing the tool leaves running can hold a pipe
/// open, and it is reaped with waitpid.
final class StartedTool {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private(set) var status: Int32?

    init(pid: pid_t, stdoutPath: String, stderrPath: String) {
        self.pid = pid
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    /// Whether it has exited (reaping it if so).
    var hasExited: Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
        return status != nil
    }

    func kill(_ signal: Int32) { _ = Glibc.kill(pid, signal) }

    /// Waits, then returns the exit status (128 + signal when killed) and the output.
    func wait() throws -> ProcessResult {
        if status == nil { status = try ChildProcess.wait(pid) }
        let raw = status ?? 0
        let code = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        defer {
            unlink(stdoutPath)
            unlink(stderrPath)
        }
        return ProcessResult(
            status: code,
            stdout: (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")
    }
}

func startTool(_ arguments: [String], environment: [String: String] = [:]) throws -> StartedTool {
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("molam-out-\(UUID().uuidString)").path
    let pid = try ChildProcess.spawn(
        [binaryPath] + arguments, directory: FileManager.default.currentDirectoryPath, environment: env,
        output: .files(stdout: base + ".out", stderr: base + ".err"))
    return StartedTool(pid: pid, stdoutPath: base + ".out", stderrPath: base + ".err")
}

/// Waits for a condition, polling, until a deadline; returns whether it became true.
func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// Runs a command-line tool (tar, zip, sha256sum) and fails loudly if it fails.
func shell(_ arguments: [String], in directory: String? = nil) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.standardOutput = FileHandle.nullDevice
    let stderr = Pipe()
    process.standardError = stderr
    try process.run()
    let message = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestFailure("\(arguments.joined(separator: " ")) failed: \(String(decoding: message, as: UTF8.self))")
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func sha256(ofFile path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else { throw TestFailure("cannot read \(path)") }
    return try SHA256.hexDigest(of: data)
}

enum ReleaseFormat: String, CaseIterable, Sendable {
    case tarGz = "tar.gz", zip, tarZst = "tar.zst"
}

/// A throw-away site: a plugin directory, a SQLite site database, a state directory.
final class TestSite {
    let root: String
    let pluginName: String
    var pluginDirectory: String { root + "/wp-content/plugins/" + pluginName }
    var databasePath: String { root + "/site.db" }
    var stateDirectory: String { root + "/state" }
    var releases: String { root + "/releases" }

    init(pluginName: String) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("molam-e2e-\(UUID().uuidString)")
        root = base.path
        self.pluginName = pluginName
        try FileManager.default.createDirectory(atPath: root + "/wp-content/plugins", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: releases, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// The fixture site: molam-form 3.9.0 and the Boutique Teranga database.
    static func molamForm() throws -> TestSite {
        let site = try TestSite(pluginName: "molam-form")
        try shell(["cp", "-a", fixturePlugin("3.9.0"), site.pluginDirectory])
        let sql = try String(contentsOfFile: packageRoot + "/Fixtures/site/site.sql", encoding: .utf8)
        let db = try SQLiteConnection(path: site.databasePath, mode: .readWriteCreate)
        try db.executeScript(sql)
        return site
    }

    static func fixturePlugin(_ version: String) -> String {
        packageRoot + "/Fixtures/plugins/molam-form/\(version)/molam-form"
    }

    var siteOptions: [String] {
        ["--plugin-dir", pluginDirectory, "--db", "sqlite://" + databasePath, "--state-dir", stateDirectory]
    }

    func run(_ arguments: [String]) throws -> ProcessResult {
        try runTool(arguments + siteOptions)
    }

    /// Packs a plugin tree (its folder name becomes the archive's top directory) with real tools.
    func release(from tree: String, format: ReleaseFormat, name: String? = nil) throws -> (path: String, sha256: String) {
        let parent = (tree as NSString).deletingLastPathComponent
        let top = (tree as NSString).lastPathComponent
        let path = releases + "/" + (name ?? "\(UUID().uuidString).\(format.rawValue)")
        switch format {
        case .tarGz: try shell(["tar", "-C", parent, "-czf", path, top])
        case .zip: try shell(["zip", "-qr", path, top], in: parent)
        case .tarZst: try shell(["tar", "-C", parent, "--zstd", "-cf", path, top])
        }
        return (path, try sha256(ofFile: path))
    }

    func upgrade(_ release: (path: String, sha256: String), extra: [String] = []) throws -> ProcessResult {
        try run(["upgrade", "--archive", release.path, "--sha256", release.sha256] + extra)
    }

    /// Everything that must be identical after a rollback: every path with its kind, mode and bytes;
    /// the database file's bytes; and the database's content.
    func snapshot() throws -> SiteSnapshot {
        SiteSnapshot(
            tree: try TreeSnapshot.take(pluginDirectory),
            databaseSHA256: try sha256(ofFile: databasePath),
            databaseDump: try dump(databasePath))
    }

    func installedVersion() throws -> String {
        try PluginManifest.load(pluginDirectory: pluginDirectory).version.description
    }

    func query(_ sql: String) throws -> [SQLiteRow] {
        try SQLiteConnection(path: databasePath, mode: .readOnly).query(sql)
    }
}

/// What must be the same after a rollback: the tree, and the database's schema (in its order) and
/// rows. Not the file's bytes: the shadow tables a rollback renames into place live in other pages.
struct SiteSnapshot: Equatable {
    let tree: TreeSnapshot
    let databaseSHA256: String
    let databaseDump: String

    /// The dump without the rows a `--restore-tables` rollback keeps aside (the rows written since the
    /// backup, the newer release's derived rows among them).
    var databaseDumpWithoutQuarantine: String {
        databaseDump.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("_molam_quarantine_") && !$0.hasPrefix("    id INTEGER PRIMARY KEY, source_rowid")
                && !$0.hasPrefix("    quarantined_at TEXT") }
            .joined(separator: "\n")
    }

    static func == (left: SiteSnapshot, right: SiteSnapshot) -> Bool {
        left.tree == right.tree && left.databaseDump == right.databaseDump
    }
}

/// Paths, kinds, permission bits and content hashes of a tree, read with lstat.
struct TreeSnapshot: Equatable, CustomStringConvertible {
    var entries: [String: String]

    static func take(_ root: String) throws -> TreeSnapshot {
        var entries: [String: String] = [:]
        func walk(_ relative: String) throws {
            let path = relative.isEmpty ? root : root + "/" + relative
            var info = stat()
            guard lstat(path, &info) == 0 else { throw TestFailure("lstat \(path)") }
            let mode = String(info.st_mode & 0o7777, radix: 8)
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                entries[relative] = "dir \(mode)"
                for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                    try walk(relative.isEmpty ? name : relative + "/" + name)
                }
            case S_IFREG:
                entries[relative] = "file \(mode) \(try sha256(ofFile: path))"
            case S_IFLNK:
                entries[relative] = "link " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?")
            default:
                entries[relative] = "other \(mode)"
            }
        }
        try walk("")
        return TreeSnapshot(entries: entries)
    }

    var description: String {
        entries.keys.sorted().map { "\($0): \(entries[$0]!)" }.joined(separator: "\n")
    }
}

/// A logical dump: schema objects in sqlite_schema order and every table's rows in rowid order.
func dump(_ path: String) throws -> String {
    let db = try SQLiteConnection(path: path, mode: .readOnly)
    var lines: [String] = []
    for row in try db.query("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid") {
        lines.append("\(row["type"]) \(row["name"]) \(row["tbl_name"]) \(row["sql"])")
    }
    for row in try db.query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name") {
        let name = row["name"].stringValue ?? ""
        let quoted = SQLiteConnection.quoteIdentifier(name)
        let withoutRowID = (try db.scalar("SELECT sql FROM sqlite_schema WHERE name = ?", [.text(name)])?
            .stringValue ?? "").uppercased().contains("WITHOUT ROWID")
        let sql = withoutRowID ? "SELECT * FROM \(quoted)" : "SELECT rowid AS _rowid, * FROM \(quoted) ORDER BY rowid"
        for data in try db.query(sql) {
            lines.append("\(name): " + data.values.map(\.description).joined(separator: "|"))
        }
    }
    return lines.joined(separator: "\n")
}

extension TreeSnapshot {
    /// `take(_:)` with each path's owner and group appended ("file 644 <sha256> 33:33"), read with lstat
    /// so a symlink's own owner counts, not its target's.
    static func takeWithOwners(_ root: String) throws -> TreeSnapshot {
        var snapshot = try take(root)
        for (relative, description) in snapshot.entries {
            let path = relative.isEmpty ? root : root + "/" + relative
            var info = stat()
            guard lstat(path, &info) == 0 else { throw TestFailure("lstat \(path)") }
            snapshot.entries[relative] = description + " \(info.st_uid):\(info.st_gid)"
        }
        return snapshot
    }
}

extension TestSite {
    /// `snapshot()` whose tree also records every path's owner and group.
    func snapshotWithOwners() throws -> SiteSnapshot {
        SiteSnapshot(
            tree: try TreeSnapshot.takeWithOwners(pluginDirectory),
            databaseSHA256: try sha256(ofFile: databasePath),
            databaseDump: try dump(databasePath))
    }
}
