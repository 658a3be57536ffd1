import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Named fault points, a testing aid in the manner of SQLite's fault injection and etcd's gofail:
/// `MOLAM_UPGRADE_FAULTS="after-swap=kill,mid-extract=error@3"` makes the agent kill itself, fail or
/// stall at exactly those places, so tests can prove that every interruption is recovered.
///
/// Points: `before-STEP` (the step's intent is journaled, nothing done yet) and `after-STEP` (the step's
/// work is done, its outcome not yet journaled) for every step run, plus the points inside risky steps
/// listed in `innerPoints`. Actions: `kill` (SIGKILL to itself: no cleanup, no atexit), `error` (the
/// point fails as an I/O error would), `sleep:SECONDS`. `@N` fires on the Nth time the point is
/// reached only (default: the first).
///
/// Unset, the cost of a point is one load of a flag.
public enum FaultInjection {
    /// Points inside steps, where a crash is the most dangerous.
    public static let innerPoints: [String: String] = [
        "mid-download": "after the first chunk of the release archive is written",
        "mid-extract": "after each file extracted into staging (@N picks the Nth file)",
        "mid-backup": "after the shadow tables are copied (the files archive written alongside), before the tables file",
        "between-migrations": "after each migration is committed, before the next (@N: after the Nth)",
        "mid-rollback": "after the tables are put back, before the files",
        "mid-restore": "after each owned table is restored, before the next (@N: after the Nth)",
        "before-tidy": "after the run's outcome is journaled, before its work directory is tidied",
        "fsync": "every fsync the agent makes itself; error makes it fail with EIO",
    ]

    /// Every point that can be armed.
    public static var pointNames: [String] {
        let steps = StepName.allCases.filter { $0 != .lock }.flatMap { ["before-\($0.rawValue)", "after-\($0.rawValue)"] }
        return steps + innerPoints.keys.sorted()
    }

    public enum Action: Sendable, Equatable {
        case kill
        case error
        case sleep(Double)
    }

    public struct Arming: Sendable, Equatable {
        public let point: String
        public let action: Action
        /// 1-based: which hit fires.
        public let occurrence: Int
    }

    /// A fault fired by `error`. Its description names the point, so a journal shows where it came from.
    public struct InjectedFault: Error, CustomStringConvertible, Sendable {
        public let point: String
        public var description: String { "injected fault at \(point) (MOLAM_UPGRADE_FAULTS)" }
    }

    public static let environmentVariable = "MOLAM_UPGRADE_FAULTS"

    /// Parses a specification; throws a one-line reason naming the bad part.
    public static func parse(_ text: String) throws(UpgradeError) -> [Arming] {
        var armings: [Arming] = []
        let known = Set(pointNames)
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            func bad(_ why: String) -> UpgradeError {
                .configuration("\(environmentVariable): '\(item)': \(why)")
            }
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw bad("expected POINT=ACTION") }
            let point = parts[0]
            guard known.contains(point) else {
                throw bad("unknown fault point '\(point)' (see FAULT INJECTION in molam-upgrade(1))")
            }
            var actionText = parts[1]
            var occurrence = 1
            if let at = actionText.firstIndex(of: "@") {
                guard let count = Int(actionText[actionText.index(after: at)...]), count >= 1 else {
                    throw bad("@N needs a whole number of at least 1")
                }
                occurrence = count
                actionText = String(actionText[..<at])
            }
            let action: Action
            switch actionText {
            case "kill": action = .kill
            case "error": action = .error
            default:
                guard actionText.hasPrefix("sleep:"), let seconds = Double(actionText.dropFirst(6)),
                      seconds >= 0, seconds <= 3600 else {
                    throw bad("unknown action '\(actionText)'; expected kill, error or sleep:SECONDS")
                }
                action = .sleep(seconds)
            }
            armings.append(Arming(point: point, action: action, occurrence: occurrence))
        }
        return armings
    }

    /// Arms the points named in the environment. Called once by the executable at start.
    public static func configure(environment: [String: String]) throws(UpgradeError) {
        guard let text = environment[environmentVariable], !text.isEmpty else { return }
        let armings = try parse(text)
        state.withLock { $0 = State(armings: armings) }
        armed = !armings.isEmpty
    }

    /// Reaches a point: does nothing unless it is armed.
    public static func hit(_ point: String) throws(InjectedFault) {
        guard armed else { return }
        let action: Action? = state.withLock { state in
            state.hits[point, default: 0] += 1
            let count = state.hits[point] ?? 0
            return state.armings.first { $0.point == point && $0.occurrence == count }?.action
        }
        switch action {
        case nil: return
        case .kill?:
            // Nothing may run after this: no buffered output flushed, no cleanup, as with a power cut.
            Glibc.kill(getpid(), SIGKILL)
            while true { pause() }
        case .error?:
            throw InjectedFault(point: point)
        case .sleep(let seconds)?:
            // Stands for a slow step: a signal ends it early, as it would end a wait the step made.
            let deadline = Date().addingTimeInterval(min(seconds, 3600))
            while Signals.received == nil, Date() < deadline { usleep(10_000) }
        }
    }

    /// `hit` for the points that sit on step boundaries.
    static func hit(_ edge: String, _ step: StepName) throws(InjectedFault) {
        guard armed else { return }
        try hit("\(edge)-\(step.rawValue)")
    }

    private struct State {
        var armings: [Arming] = []
        var hits: [String: Int] = [:]
    }

    nonisolated(unsafe) private static var armed = false
    private static let state = LockedState(State())
}

/// A value behind a lock, for the few process-wide settings the agent has.
final class LockedState<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T, Failure: Error>(_ body: (inout Value) throws(Failure) -> T) throws(Failure) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// What an in-process test's fault point throws to stop a run where it stands, as `kill` does to the
/// binary: from then on the run journals nothing, undoes nothing and tidies nothing, and the error
/// leaves the command. The disk is left as a crash would leave it, for `recover` to find.
public struct PowerCut: Error, CustomStringConvertible, Sendable {
    public let point: String
    public init(point: String) { self.point = point }
    public var description: String { "power cut at \(point)" }
}
