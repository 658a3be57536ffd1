import Foundation
import MolamHTTP
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The host's PHP (installed by `make test`, like the other Debian packages the suite needs).
let php = ["/usr/bin/php", "/usr/local/bin/php"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// A real PHP site on loopback (`php -S`, opcache on as Debian ships it) whose `version.php` loads
/// the live plugin's main file as WordPress would (by its absolute path) and prints its version.
final class PHPSite {
    let docroot: String
    let url: String
    private let process: StartedProcess

    init(site: TestSite, revalidateFrequency: Int) throws {
        guard let php else { throw TestFailure("php is not installed: run `make test`, which installs php-cli") }
        docroot = site.root + "/www"
        try FileManager.default.createDirectory(atPath: docroot, withIntermediateDirectories: true)
        let stubs = "define('ABSPATH', __DIR__); function plugin_dir_path($f) { return dirname($f) . '/'; } "
            + "function plugin_dir_url($f) { return ''; } function add_action(...$a) {} function add_filter(...$a) {}"
        try """
            <?php \(stubs)
            include '\(site.pluginDirectory)/molam-form.php';
            if (function_exists('molam_boom')) molam_boom();
            echo MOLAM_FORM_VERSION;
            """.write(toFile: docroot + "/version.php", atomically: false, encoding: .utf8)
        try "<?php opcache_reset(); echo 'reset';".write(toFile: docroot + "/reset.php", atomically: false, encoding: .utf8)
        var started: (StartedProcess, String)?
        for _ in 0..<20 where started == nil {
            // Below the kernel's ephemeral range (32768-60999): no outgoing connection of another test holds it.
            let port = Int.random(in: 20000...32000)
            let candidate = try StartedProcess(
                [php, "-d", "opcache.revalidate_freq=\(revalidateFrequency)", "-S", "127.0.0.1:\(port)", "-t", docroot],
                logPrefix: site.root + "/php-\(port)")
            let address = "http://127.0.0.1:\(port)/version.php"
            if waitUntil(timeout: 10, { Self.answer(address) != nil || candidate.hasExited }) && !candidate.hasExited {
                started = (candidate, address)
            } else {
                candidate.stop()
            }
        }
        guard let started else { throw TestFailure("php -S did not start") }
        (process, url) = started
    }

    deinit { process.stop() }

    /// The body of a GET, or nil when the site does not answer.
    /// One answer of the site; a request that gets none is tried again for up to 20 s: `php -S`
    /// serves one request at a time and a loaded 2-core machine can keep it from answering in time.
    static func get(_ url: String) -> (status: Int, body: String)? {
        var got: (status: Int, body: String)?
        _ = waitUntil(timeout: 20) {
            got = answer(url)
            return got != nil
        }
        return got
    }

    /// One try.
    static func answer(_ url: String) -> (status: Int, body: String)? {
        guard let client = try? HTTPClient(),
              let response = try? client.send(HTTPRequest(url: url, connectTimeout: 2, totalTimeout: 5))
        else { return nil }
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }
}

/// A background program whose output goes to files, stopped (SIGTERM, then reaped) at the end.
final class StartedProcess {
    let pid: pid_t
    init(_ arguments: [String], logPrefix: String) throws {
        pid = try ChildProcess.spawn(
            arguments, directory: "/", environment: ["PATH": "/usr/bin:/bin"],
            output: .files(stdout: logPrefix + ".out", stderr: logPrefix + ".err"))
    }
    var hasExited: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == pid
    }
    func stop() {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// A copy of the fixture's `version` tree, changed by `edit`, packed as a release.
func release(
    _ site: TestSite, from version: String = "4.0.0", as newVersion: String? = nil,
    edit: (String) throws -> Void = { _ in }
) throws -> (path: String, sha256: String) {
    let build = site.root + "/build-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
    let tree = build + "/molam-form"
    try shell(["cp", "-a", TestSite.fixturePlugin(version), tree])
    if let newVersion {
        for file in ["molam-form.php", "molam-plugin.json", "bin/smoke"] {
            let path = tree + "/" + file
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try text.replacingOccurrences(of: version, with: newVersion)
                .write(toFile: path, atomically: false, encoding: .utf8)
        }
    }
    try edit(tree)
    return try site.release(from: tree, format: .tarGz)
}

/// Adds `check` to a tree's manifest's smoke checks.
func addCheck(_ check: [String: Any], to tree: String, first: Bool = false) throws {
    let path = tree + "/molam-plugin.json"
    guard var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        as? [String: Any], var smoke = manifest["smoke"] as? [Any]
    else { throw TestFailure("\(path) has no smoke list") }
    if first { smoke.insert(check, at: 0) } else { smoke.append(check) }
    manifest["smoke"] = smoke
    try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
}

func history(_ site: TestSite) throws -> String {
    try site.run(["history"]).stdout
}

/// agent.json for `site` with one plugins[] entry holding `extra`.
func writeConfig(_ site: TestSite, _ extra: [String: Any]) throws -> String {
    var entry: [String: Any] = [
        "name": "molam-form", "plugin_dir": site.pluginDirectory, "db": "sqlite://" + site.databasePath,
    ]
    for (key, value) in extra { entry[key] = value }
    let config = site.root + "/agent.json"
    try JSONSerialization.data(withJSONObject: ["state_dir": site.stateDirectory, "plugins": [entry]] as [String: Any])
        .write(to: URL(fileURLWithPath: config))
    chmod(config, 0o600)
    return config
}

