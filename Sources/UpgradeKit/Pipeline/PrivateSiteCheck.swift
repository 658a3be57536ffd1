import CSupport
import Foundation
import MolamHTTP
#if canImport(Glibc)
import Glibc
#endif

/// The site itself, run with the staged release before the swap, where nobody but the agent sees it.
///
/// A release that compiles can still die when it loads (a function that does not exist, a class
/// renamed): after the swap that is WordPress's critical-error page on every payment until the
/// rollback. So, in `stage`, the agent starts PHP's own web server (`php -S`, on a free loopback
/// port, as the tree's owner) on the site's document root, in a mount namespace of its own where
/// the staged tree is bind-mounted over the live plugin directory, and asks it the site's
/// `version_url` and the release's http checks (same path and query, same Host header), after asking
/// the same of the installed release the same way. A request the installed release answers and the
/// staged one answers with a 5xx or a PHP fatal refuses the release (exit 4) before a single payment
/// meets it. Anything else (both broken: this private server cannot work on this host; a redirect; a
/// 404 because the web server's rewrites are missing here; no answer) proves nothing either way: it
/// is noted and the upgrade goes on to the real checks.
struct PrivateSiteCheck {
    struct Outcome: Sendable {
        /// Why the release is refused, when a request showed it broken.
        var broken: String?
        var detail: String
    }

    let php: String
    let documentRoot: String
    let tree: String
    let liveDirectory: String

    /// The document root of a WordPress site whose plugin directory is `<root>/wp-content/plugins/<name>`
    /// (`<root>/index.php` present); nil for any other layout (`site_root` in agent.json names it).
    static func wordPressRoot(of pluginDirectory: String) -> String? {
        let parts = pluginDirectory.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 3, parts[parts.count - 2] == "plugins", parts[parts.count - 3] == "wp-content" else {
            return nil
        }
        let root = "/" + parts.dropLast(3).joined(separator: "/")
        return FileManager.default.fileExists(atPath: root + "/index.php") ? root : nil
    }

    typealias Probe = (url: String, status: Int, body: String?)

    /// What one request answered: status and body, or why there was no answer.
    enum Answer {
        case response(status: Int, body: String)
        case none(String)

        var broken: String? {
            guard case .response(let status, let body) = self else { return nil }
            return SiteProbe.brokenReason(status: status, body: body)
        }
    }

    /// Runs the probes against the installed release, then against the staged one. Only a request
    /// that the installed release answers without breaking, and the staged one answers with a 5xx or
    /// a PHP fatal, refuses the release: a private server that cannot work here (the site's user
    /// cannot read its configuration, the database refuses it) breaks both, and proves nothing.
    func run(probes: [Probe], version: SemanticVersion) -> Outcome {
        let baseline: [Answer]
        let candidate: [Answer]
        switch (serve(probes, staged: false), serve(probes, staged: true)) {
        case (.success(let before), .success(let after)):
            (baseline, candidate) = (before, after)
        case (.failure(let reason), _), (_, .failure(let reason)):
            return Outcome(broken: nil, detail: "private site check skipped: \(reason)")
        }
        var passed = 0
        var notes: [String] = []
        for (index, probe) in probes.enumerated() {
            let path = Self.pathOf(probe.url)
            if let broken = candidate[index].broken {
                if baseline[index].broken == nil {
                    return Outcome(
                        broken: "GET \(path) on a private copy of the site running it answers \(broken) "
                            + "(the installed release answers it)", detail: "")
                }
                notes.append("\(path): the installed release breaks here too")
                continue
            }
            switch candidate[index] {
            case .response(let status, let body)
                where status == probe.status
                    && (probe.body.map { SiteProbe.body(body, contains: $0, version: version) } ?? true):
                passed += 1
            case .response(let status, _):
                notes.append("\(path): HTTP \(status)")
            case .none(let reason):
                notes.append("\(path): \(reason)")
            }
        }
        let summary = "private site check: \(passed) of \(probes.count) request\(probes.count == 1 ? "" : "s") passed"
        return Outcome(
            broken: nil, detail: summary + (notes.isEmpty ? "" : " (inconclusive: \(notes.joined(separator: "; ")))"))
    }

    private struct Skipped: Error {
        let reason: String
    }

    /// Starts `php -S` on the document root, the staged tree mounted over the plugin directory when
    /// `staged`, asks every probe once, and stops it.
    private func serve(_ probes: [Probe], staged: Bool) -> Result<[Answer], Skipped> {
        guard let port = Self.freeLoopbackPort() else { return .failure(Skipped(reason: "no free loopback port")) }
        let executable = open(php, csys_o_path() | O_CLOEXEC)
        let directory = open(staged ? tree : documentRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer {
            if executable >= 0 { close(executable) }
            if directory >= 0 { close(directory) }
        }
        guard executable >= 0, directory >= 0 else {
            return .failure(Skipped(reason: String(cString: strerror(errno))))
        }
        // As the tree's owner (the web server's user, usually): never root for the release's code.
        let user = FileOwner.of(tree).flatMap { $0.uid == 0 ? nil : $0 }
            ?? FileOwner(uid: Accounts.nobody.uid, gid: Accounts.nogroup)
        let server: ChildProcess.Background
        do {
            server = try ChildProcess.start(
                executable: executable,
                arguments: ["php", "-d", "display_errors=1", "-S", "127.0.0.1:\(port)", "-t", documentRoot],
                directory: directory,
                environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": Accounts.nobody.home],
                as: user, view: staged ? (tree: tree, at: liveDirectory) : nil)
        } catch {
            return .failure(Skipped(reason: "php -S cannot start: \(error)"))
        }
        defer { server.stop() }
        let deadline = Date().addingTimeInterval(10)
        while !Self.accepts(port: port) {
            if server.hasExited || Date() >= deadline || Signals.interruption != nil {
                return .failure(Skipped(reason: "php -S did not start (as \(SmokeUser.describe(uid: user.uid, gid: user.gid)))"))
            }
            usleep(10_000)
        }
        return .success(probes.map { probe in
            guard let (url, host) = Self.local(probe.url, port: port) else { return .none("not a URL") }
            do {
                var request = HTTPRequest(url: url, headers: [("Host", host)], connectTimeout: 5, totalTimeout: 30)
                request.maxBodyBytes = 1 << 20
                let answer = try HTTPClient().send(request)
                return .response(status: answer.status, body: String(decoding: answer.body.prefix(65536), as: UTF8.self))
            } catch {
                return .none("\(error)")
            }
        })
    }

    /// `url` aimed at the private server: same path and query; the Host header the site expects.
    static func local(_ url: String, port: Int) -> (url: String, host: String)? {
        guard let components = URLComponents(string: url), let host = components.host else { return nil }
        var local = "http://127.0.0.1:\(port)" + (components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath)
        if let query = components.percentEncodedQuery { local += "?" + query }
        return (local, host + (components.port.map { ":\($0)" } ?? ""))
    }

    static func pathOf(_ url: String) -> String {
        guard let components = URLComponents(string: url) else { return url }
        return (components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath)
            + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
    }

    /// A loopback port nothing listens on now (the kernel's choice for a bound, then closed, socket).
    static func freeLoopbackPort() -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }
}
