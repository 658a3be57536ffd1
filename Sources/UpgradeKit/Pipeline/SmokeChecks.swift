import Foundation
import MolamHTTP

/// Runs a plugin's smoke checks against the installed tree and the plugin database.
public struct SmokeRunner {
    public struct Result: Sendable, Equatable {
        public var index: Int
        public var kind: String
        public var summary: String
        public var passed: Bool
        public var detail: String
    }

    let pluginDirectory: String
    let database: DatabaseLocation
    let version: SemanticVersion
    /// For checks of a staged tree (`before_swap`): the live plugin path it will take. An agent
    /// running as root shows the tree there to the check, in the check's own mount namespace, since
    /// the check's user cannot reach the private folder it is staged in.
    let liveDirectory: String?
    /// Whether an http check fails at the first 5xx or PHP fatal (verifying an upgrade) or waits it
    /// out within its timeout (after a rollback, when the code just swapped out may still be cached).
    var failFast: Bool
    /// How the plugin database is opened for `sql` checks.
    var openDatabase: (DatabaseLocation) throws(PluginDatabaseError) -> any PluginDatabase = PluginDatabases.open

    public init(
        pluginDirectory: String, database: DatabaseLocation, version: SemanticVersion, liveDirectory: String? = nil,
        failFast: Bool = true
    ) {
        self.pluginDirectory = pluginDirectory
        self.database = database
        self.version = version
        self.liveDirectory = liveDirectory
        self.failFast = failFast
    }

    /// Runs every check in order and stops at the first failure.
    public func run(_ checks: [SmokeCheck]) -> [Result] {
        var results: [Result] = []
        for (index, check) in checks.enumerated() {
            let result = run(check, index: index + 1)
            results.append(result)
            if !result.passed { break }
        }
        return results
    }

    func run(_ check: SmokeCheck, index: Int) -> Result {
        var result = Result(index: index, kind: check.kind, summary: check.summary, passed: false, detail: "")
        switch check {
        case .command(let arguments, let timeout):
            result = runCommand(arguments, timeout: timeout, into: result)
        case .sql(let query, let expect, let timeout):
            do {
                let value = try openDatabase(database).smokeQuery(query, timeoutSeconds: timeout)
                if let expect, value != expect {
                    result.detail = "returned '\(value)', expected '\(expect)'"
                } else {
                    result.passed = true
                    result.detail = "returned \(value)"
                }
            } catch {
                result.detail = "\(error)"
            }
        case .http(let url, let expectStatus, let expectBody, let timeout):
            result = runHTTP(url: url, expectStatus: expectStatus, expectBody: expectBody, timeout: timeout, into: result)
        }
        return result
    }

    /// Runs a program from the plugin tree, opened inside it by descriptor (`SmokeCommand`), as the
    /// least privileged user able to change it (`SmokeUser`), with an environment of our making only:
    /// the agent's own may hold secrets and is not the plugin's to read.
    private func runCommand(_ arguments: [String], timeout: Double, into result: Result) -> Result {
        var result = result
        let command: SmokeCommand
        do {
            command = try SmokeCommand.open(arguments[0], in: pluginDirectory)
        } catch {
            result.detail = "\(error)"
            return result
        }
        // Only root can switch users; any other agent runs the command as itself.
        let user = geteuid() == 0 ? SmokeUser.decide(command.chain).owner : nil
        let ranAs = user.map { SmokeUser.describe(uid: $0.uid, gid: $0.gid) }
            ?? SmokeUser.describe(uid: geteuid(), gid: getegid())
        let view = ChildProcess.canShowStagedTree ? liveDirectory.map { (tree: pluginDirectory, at: $0) } : nil
        let environment = [
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": Accounts.nobody.home,
            "MOLAM_PLUGIN_DIR": view?.at ?? pluginDirectory,
            "MOLAM_CHECK_PHASE": liveDirectory == nil ? "after_swap" : "before_swap",
            "MOLAM_PLUGIN_VERSION": version.description,
            "MOLAM_DB": database.description,
        ]
        let suffix = " (ran as \(ranAs))"
        do {
            let outcome = try ChildProcess.run(
                executable: command.executable, arguments: arguments, directory: command.directory,
                environment: environment, timeoutSeconds: timeout, as: user, view: view)
            let tail = Self.lastLine(outcome.outputTail)
            if outcome.timedOut {
                result.detail = "timed out after \(Self.seconds(timeout))" + (tail.isEmpty ? "" : ": \(tail)")
            } else if let signal = outcome.signal {
                result.detail = "killed by signal \(signal)"
            } else if outcome.exitStatus == 0 {
                result.passed = true
                result.detail = tail.isEmpty ? "exit 0" : tail
            } else {
                result.detail = "exit \(outcome.exitStatus ?? -1)" + (tail.isEmpty ? "" : ": \(tail)")
            }
        } catch {
            result.detail = "cannot start: \(error)"
        }
        result.detail += suffix
        withExtendedLifetime(command) {}
        return result
    }

    /// Polls until the site answers as expected or the timeout passes: right after a swap, PHP's
    /// opcache may keep serving the old code for a few seconds. A 5xx or a PHP fatal fails at once
    /// when `failFast` (an upgrade's verify): that is a broken release, not a late one.
    private func runHTTP(
        url: String, expectStatus: Int, expectBody: String?, timeout: Double, into result: Result
    ) -> Result {
        var result = result
        let outcome = SiteProbe(
            url: url, expectStatus: expectStatus, expectBody: expectBody, version: version, timeoutSeconds: timeout,
            failFast: failFast
        ).run()
        result.passed = outcome.passed
        result.detail = outcome.detail
        return result
    }

    static func lastLine(_ text: String) -> String {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        return String(lines.last(where: { !$0.isEmpty })?.prefix(300) ?? "")
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }
}

extension Array where Element == SmokeRunner.Result {
    /// "smoke check 2 (sql SELECT …) failed: …", or nil when all passed.
    var failureDescription: String? {
        guard let failed = first(where: { !$0.passed }) else { return nil }
        return "smoke check \(failed.index) (\(failed.kind) \(failed.summary)) failed: \(failed.detail)"
    }
}

extension SmokeRunner {
    /// The checks of the live plugin of `context`'s site, through its services.
    init(context: UpgradeContext, version: SemanticVersion, failFast: Bool) {
        self.init(
            pluginDirectory: context.site.pluginDirectory, database: context.site.database, version: version,
            failFast: failFast)
        openDatabase = context.services.openDatabase
    }
}
