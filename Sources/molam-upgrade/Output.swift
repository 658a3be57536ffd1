import Foundation
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// stdout and stderr, tables and JSON. Progress goes to stderr only when it is a terminal, so cron
/// mails stay quiet.
final class Output {
    let json: Bool
    let quiet: Bool
    let stderrIsTerminal = isatty(STDERR_FILENO) == 1
    /// Whether an error line was printed (a signal's note is then not added as a second line).
    private(set) var wroteError = false

    init(json: Bool, quiet: Bool) {
        self.json = json
        self.quiet = quiet
    }

    func line(_ text: String) {
        guard !quiet else { return }
        StandardStreams.out(text + "\n")
    }

    func error(_ text: String) {
        // One line, whatever the message held.
        let single = text.replacingOccurrences(of: "\n", with: " ")
        StandardStreams.err("\(CommandLineSpec.tool): \(single)\n")
        wroteError = true
    }

    /// Something worth knowing that did not change the outcome: stderr, silenced by `--quiet`.
    func note(_ text: String) {
        guard !quiet else { return }
        let single = text.replacingOccurrences(of: "\n", with: " ")
        StandardStreams.err("\(CommandLineSpec.tool): note: \(single)\n")
    }

    func emitJSON(_ object: Any) {
        let options: JSONSerialization.WritingOptions = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: options) else {
            error("internal error: result could not be encoded as JSON")
            return
        }
        StandardStreams.out(data + Data("\n".utf8))
    }

    /// A plain text table with a header row; columns padded to their widest cell.
    func table(_ header: [String], _ rows: [[String]]) {
        guard !quiet else { return }
        let widths = header.indices.map { column in
            ([header[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
        }
        func render(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                column == cells.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        line(render(header))
        for row in rows { line(render(row)) }
    }

    func progress() -> ProgressReporter {
        stderrIsTerminal && !quiet && !json ? TerminalProgress() : SilentProgress()
    }
}

/// Step-by-step progress on a terminal's stderr.
final class TerminalProgress: ProgressReporter {
    private var started: [StepName: Date] = [:]

    func stepStarted(_ step: StepName, _ message: String) {
        started[step] = Date()
        write("  \(step.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(message)…")
    }

    func stepFinished(_ step: StepName, _ status: StepStatus, _ message: String?) {
        let elapsed = started[step].map { String(format: " (%.2f s)", Date().timeIntervalSince($0)) } ?? ""
        let mark = switch status {
        case .done: "ok"
        case .failed: "FAILED"
        case .skipped: "skipped"
        case .started: "…"
        }
        write("  \(step.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(mark)\(elapsed)"
              + (message.map { ": \($0)" } ?? ""))
    }

    func note(_ message: String) { write("  \(message)") }

    private func write(_ text: String) {
        StandardStreams.err(text + "\n")
    }
}

/// What a command's `--json` result (`RunOutcome`) and `history --json` (`RunRecord`) both say about
/// a run, written once so that the two name it under the same keys.
protocol RunJSONFields {
    var command: String { get }
    var plugin: String { get }
    var fromVersion: String? { get }
    var toVersion: String? { get }
    var status: RunStatus { get }
    var rollbackStatusText: String? { get }
    var error: String? { get }
}

extension RunJSONFields {
    /// The shared keys, and `own`: the keys only this side has.
    func runJSON(adding own: [String: Any]) -> [String: Any] {
        let shared: [String: Any] = [
            "command": command, "plugin": plugin, "from_version": fromVersion ?? NSNull(),
            "to_version": toVersion ?? NSNull(), "status": status.rawValue,
            "rollback_status": rollbackStatusText ?? NSNull(), "error": error ?? NSNull(),
        ]
        return shared.merging(own) { $1 }
    }
}

extension RunOutcome: RunJSONFields {
    var rollbackStatusText: String? { rollbackStatus?.rawValue }

    func jsonObject(steps: [StepRecord]) -> [String: Any] {
        var object = runJSON(adding: [
            "run_id": runID ?? NSNull(),
            "message": message,
            "exit_code": Int(exitCode.rawValue),
            "steps": steps.map(\.jsonObject),
            "recovered": recovered.map { $0.jsonObject(steps: []) },
            "signal_note": signalNote ?? NSNull(),
        ])
        if let reports {
            object["reports"] = [
                "delivered": reports.delivered, "rejected": reports.rejected, "pending": reports.pending,
                "requests": reports.requests, "stopped_by": reports.stoppedBy ?? NSNull(),
            ] as [String: Any]
        }
        if let rollback {
            object["rollback"] = [
                "reason": rollback.reason,
                "trigger": rollback.trigger.rawValue,
                "duration_ms": rollback.durationMilliseconds,
                "files_restored": rollback.filesRestored,
                "db_restored": rollback.databaseRestored,
                "smoke_passed": rollback.smokePassed,
            ] as [String: Any]
        }
        return object
    }
}

extension StepRecord {
    var jsonObject: [String: Any] {
        [
            "name": name,
            "status": status.rawValue,
            "started_at": startedAt,
            "finished_at": finishedAt ?? NSNull(),
            "duration_ms": durationMilliseconds ?? NSNull(),
            "detail": detail ?? NSNull(),
            "error": error ?? NSNull(),
        ]
    }
}

extension RunRecord: RunJSONFields {
    var rollbackStatusText: String? { rollbackStatus }

    var jsonObject: [String: Any] {
        runJSON(adding: [
            "id": id,
            "trigger": trigger,
            "plugin_dir": pluginDirectory,
            "exit_code": exitCode ?? NSNull(),
            "dry_run": dryRun,
            "started_at": startedAt,
            "finished_at": finishedAt ?? NSNull(),
        ])
    }
}

extension BackupRecord {
    var jsonObject: [String: Any] {
        [
            "id": id, "plugin": plugin, "version": version, "path": path, "created_at": createdAt,
            "size_bytes": sizeBytes, "file_count": fileCount, "tables": tables,
        ]
    }
}
