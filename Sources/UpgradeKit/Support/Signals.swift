import CSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT, SIGTERM and SIGHUP (Ctrl-C, systemd stop, an ssh drop) during a command that changes the
/// site. Killed at once, the agent would leave new code on the old schema until the next run; with
/// `install`, a signal is only recorded (by a C handler, the one async-signal-safe place), and the
/// pipeline looks at it where stopping is safe: at every step boundary (`PipelineRun.fault`) and in
/// the waits that can last (a smoke command, the site's version wait).
///
/// Before the swap a run stops with nothing changed; after it, the run is rolled back as for any
/// failure. What must not be cut short runs inside `deferring`: a rollback, a recovery, a commit, an
/// operator's rollback past its swap. A signal that comes then is noted, the work finishes, and the
/// run says so. SIGKILL cannot be caught: that remains the crash `recover` finishes.
public enum Signals {
    /// Installs the handlers; once per process. Commands that change nothing never call it and keep
    /// the default behaviour (die at once).
    public static func install() {
        installed.withLock { done in
            guard !done else { return }
            done = true
            _ = csys_signals_install()
        }
    }

    /// The first signal received since `install`, whether or not it may stop anything now.
    public static var received: Int32? {
        let number = csys_signals_first()
        return number == 0 ? nil : number
    }

    /// How many were received (a second Ctrl-C while the run finishes is noted, nothing more).
    public static var count: Int { Int(csys_signals_count()) }

    /// The signal received, if work may stop for it now: nil inside `deferring`.
    static var interruption: Int32? {
        guard let signal = received else { return nil }
        return depth.withLock { $0 } == 0 ? signal : nil
    }

    /// Runs `body` to its end whatever signal arrives meanwhile (it is noted, and acted on after).
    static func deferring<T, Failure: Error>(_ body: () throws(Failure) -> T) throws(Failure) -> T {
        depth.withLock { $0 += 1 }
        defer { depth.withLock { $0 -= 1 } }
        return try body()
    }

    /// "SIGTERM", or "signal N" for one the agent does not handle.
    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        default: "signal \(signal)"
        }
    }

    private static let installed = LockedState(false)
    private static let depth = LockedState(0)
}

/// What a run throws when a signal stops it at a step boundary: the journal, the outcome and the one
/// line on stderr name the signal and the step it came during.
public struct Interrupted: Error, CustomStringConvertible, Sendable {
    public let signal: Int32
    /// The step that was under way when the run first noticed the signal.
    public let step: String

    public var description: String { "interrupted by \(Signals.name(signal)) during \(step)" }
}
