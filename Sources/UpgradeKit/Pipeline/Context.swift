import Foundation
import MolamHTTP
#if canImport(Glibc)
import Glibc
#endif

/// Exit codes of DESIGN.md; the executable maps outcomes and errors to these and nothing else.
public enum ExitCode: Int32, Sendable {
    case ok = 0
    case rolledBack = 1
    case usage = 2
    case rollbackFailed = 3
    case refused = 4
    case unavailable = 75
}

/// Where progress goes. The executable prints it on stderr when that is a terminal; tests record it.
public protocol ProgressReporter: AnyObject {
    func stepStarted(_ step: StepName, _ message: String)
    func stepFinished(_ step: StepName, _ status: StepStatus, _ message: String?)
    func note(_ message: String)
}

/// Progress that goes nowhere: cron runs and tests that do not look.
public final class SilentProgress: ProgressReporter {
    public init() {}
    public func stepStarted(_ step: StepName, _ message: String) {}
    public func stepFinished(_ step: StepName, _ status: StepStatus, _ message: String?) {}
    public func note(_ message: String) {}
}

/// Everything a command needs from the outside world, injected so tests can drive it.
public struct UpgradeContext {
    public var site: SiteConfiguration
    public var clock: () -> Date
    public var progress: ProgressReporter
    public var extractionLimits: ExtractionLimits
    /// The largest release archive accepted, checked while copying.
    public var maxArchiveBytes: Int64
    /// Host-wide settings: merchant, central API, release keys.
    public var agent: AgentSettings = AgentSettings()
    /// Reports are queued only when a central API is configured and `--no-report` was not given.
    public var reportsEnabled: Bool = false
    /// Retries of central API calls.
    public var retry: RetryPolicy = .default
    /// The outside world: network, database engines, waiting, who the agent runs as, fault points.
    public var services: Services = .live
    /// How long a rollback's table restore waits for a lock the site holds (4 times as long when
    /// `recover` retries a rollback that failed on one).
    public var rollbackBusyTimeout: Double = 30

    public init(
        site: SiteConfiguration, clock: @escaping () -> Date = Date.init, progress: ProgressReporter = SilentProgress(),
        extractionLimits: ExtractionLimits = .default, maxArchiveBytes: Int64 = 512 << 20
    ) {
        self.site = site
        self.clock = clock
        self.progress = progress
        self.extractionLimits = extractionLimits
        self.maxArchiveBytes = maxArchiveBytes
    }

    public var paths: StatePaths { StatePaths(root: site.stateDirectory) }
}

/// What a run reaches the outside world through, besides the files it is given. `live` is the real
/// thing; a test installs doubles (`TestSupport`'s `Services.failing` fails every call the test did
/// not expect), in the manner of swiftly's `SwiftlyCoreContext` and its failing HTTP executor.
public struct Services {
    /// The transport under the central API client and release downloads.
    public var httpTransport: () throws(HTTPError) -> any HTTPTransport
    /// Opens the plugin database a DSN names.
    public var openDatabase: (DatabaseLocation) throws(PluginDatabaseError) -> any PluginDatabase
    /// Waits between retries.
    public var sleep: (Double) -> Void
    /// The agent's effective user id: as root it gives staged files to the tree's owner.
    public var userID: () -> uid_t
    /// Reaches a named fault point (`FaultInjection`).
    public var fault: (String) throws -> Void

    public init(
        httpTransport: @escaping () throws(HTTPError) -> any HTTPTransport,
        openDatabase: @escaping (DatabaseLocation) throws(PluginDatabaseError) -> any PluginDatabase,
        sleep: @escaping (Double) -> Void, userID: @escaping () -> uid_t, fault: @escaping (String) throws -> Void
    ) {
        self.httpTransport = httpTransport
        self.openDatabase = openDatabase
        self.sleep = sleep
        self.userID = userID
        self.fault = fault
    }

    public static var live: Services {
        Services(
            httpTransport: { () throws(HTTPError) in try HTTPClient(userAgent: CentralAPI.userAgent) },
            openDatabase: { location throws(PluginDatabaseError) in try PluginDatabases.open(location) },
            sleep: { Thread.sleep(forTimeInterval: $0) },
            userID: { geteuid() },
            fault: { point in try FaultInjection.hit(point) })
    }
}

/// The layout of the state directory.
public struct StatePaths: Sendable {
    public let root: String
    public init(root: String) { self.root = root }
    public var lock: String { root + "/lock" }
    public var journal: String { root + "/journal.db" }
    public var backups: String { root + "/backups" }
    public var work: String { root + "/work" }
}

/// A command that could not do its work, with the exit code it ends with. Its description is the one
/// line printed on stderr.
public enum UpgradeError: Error, CustomStringConvertible, Sendable {
    /// Usage or configuration: nothing changed (exit 2).
    case configuration(String)
    /// Lock held or a needed service unreachable (exit 75).
    case unavailable(String)
    /// Release refused before any change (exit 4).
    case refused(String)
    /// The command failed and nothing was changed, or what it changed was put back (exit 1).
    case failed(String)
    /// A rollback failed: the site needs a human (exit 3).
    case rollbackFailed(String)

    public var exitCode: ExitCode {
        switch self {
        case .configuration: .usage
        case .unavailable: .unavailable
        case .refused: .refused
        case .failed: .rolledBack
        case .rollbackFailed: .rollbackFailed
        }
    }

    public var description: String {
        switch self {
        case .configuration(let text), .unavailable(let text), .refused(let text), .failed(let text),
             .rollbackFailed(let text):
            text
        }
    }
}

/// What a run did, for tables and `--json`.
public struct RunOutcome: Sendable {
    public var runID: String?
    public var command: String
    public var plugin: String
    public var fromVersion: String?
    public var toVersion: String?
    public var status: RunStatus
    public var rollbackStatus: RollbackStatus?
    public var message: String
    public var error: String? = nil
    public var exitCode: ExitCode
    public var rollback: RollbackSummary?
    public var recovered: [RunOutcome] = []
    /// What delivering the outbox did after the run (nil when no central API is configured).
    public var reports: ReportDelivery.Result? = nil
    /// Set when a signal came while the run finished something that must not be cut short (a
    /// commit, a rollback, a recovery): which, and that the work was done first.
    public var signalNote: String? = nil
    /// Set when a rollout was rolled back upstream for the version this host runs.
    var rollBackReason: String? = nil
}

public struct RollbackSummary: Sendable, Equatable {
    public var reason: String
    public var trigger: RunTrigger
    public var durationMilliseconds: Int
    public var filesRestored: Bool
    public var databaseRestored: Bool
    public var smokePassed: Bool
}
