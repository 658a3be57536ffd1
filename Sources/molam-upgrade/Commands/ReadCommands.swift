import Foundation
import UpgradeKit

enum StatusCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let scope = try ReadScope.resolve(arguments, output: output)
        if scope.installs.isEmpty {
            if output.json {
                output.emitJSON(["installs": [Any](), "state_dir": scope.stateDirectory] as [String: Any])
            } else {
                output.line("no plugin install is configured or recorded in \(scope.journalPath)")
            }
            return .ok
        }
        var objects: [[String: Any]] = []
        for (index, install) in scope.installs.enumerated() {
            let context = install.context
            let status = try Maintenance.status(context: context)
            if output.json {
                objects.append(jsonObject(status, install: install))
                continue
            }
            if index > 0 { output.line("") }
            printTable(status, install: install, output: output)
        }
        if output.json {
            if let only = objects.first, objects.count == 1 { output.emitJSON(only) } else { output.emitJSON(["installs": objects]) }
        }
        return .ok
    }

    static func jsonObject(_ status: Maintenance.Status, install: ReadScope.Install) -> [String: Any] {
        let context = install.context
        return [
            "plugin": status.plugin ?? NSNull(),
            "installed_version": status.installedVersion ?? NSNull(),
            "installed_error": status.installedError ?? NSNull(),
            "plugin_dir": context.site.pluginDirectory,
            "db": install.configured ? context.site.database.description : NSNull(),
            "state_dir": context.site.stateDirectory,
            "central_api": status.centralAPI ?? NSNull(),
            "last_run": status.lastRun?.jsonObject ?? NSNull(),
            "unfinished_runs": status.unfinishedRuns.map(\.jsonObject),
            "kept_tree": status.keptTree ?? NSNull(),
            "backups": status.backups.map(\.jsonObject),
            "pending_reports": status.pendingReports,
            "oldest_pending_report": status.oldestPendingReport ?? NSNull(),
            "oldest_pending_report_age_s": status.oldestPendingReportAge.map { Int($0) } ?? NSNull(),
            "rejected_reports": status.rejectedReports,
        ]
    }

    static func printTable(_ status: Maintenance.Status, install: ReadScope.Install, output: Output) {
        let context = install.context
        let installed = status.installedVersion.map { "\(status.plugin ?? "?") \($0)" }
            ?? "unknown (\(status.installedError ?? ""))"
        var rows: [[String]] = [
            ["installed", installed],
            ["plugin dir", context.site.pluginDirectory],
            ["database", install.configured
                ? context.site.database.description : "not configured (read from the journal)"],
            ["state dir", context.site.stateDirectory],
            ["central API", status.centralAPI ?? "none (local archives only)"],
        ]
        if let run = status.lastRun {
            rows.append(["last run", "\(run.startedAt)  \(run.command) \(run.fromVersion ?? "?") → "
                         + "\(run.toVersion ?? "?")  \(run.status.rawValue)"])
        } else {
            rows.append(["last run", "none"])
        }
        if !status.unfinishedRuns.isEmpty {
            rows.append(["unfinished", status.unfinishedRuns.map(\.id).joined(separator: ", ")
                         + " (run `molam-upgrade recover`)"])
        }
        rows.append(["kept tree", status.keptTree ?? "none"])
        rows.append(["backups", "\(status.backups.count)"])
        var pending = "\(status.pendingReports)"
        if status.pendingReports > 0 {
            let age = status.oldestPendingReportAge.map { " (oldest \(Self.age($0)) old)" } ?? ""
            pending += age + "; `molam-upgrade flush` delivers them"
        }
        rows.append(["pending reports", pending])
        if status.rejectedReports > 0 {
            rows.append(["rejected reports", "\(status.rejectedReports) (refused by the API; kept in the journal)"])
        }
        output.table(["FIELD", "VALUE"], rows)
        if !status.backups.isEmpty {
            output.line("")
            output.table(["BACKUP", "VERSION", "CREATED", "FILES", "BYTES"], status.backups.map {
                [$0.path, $0.version, $0.createdAt, "\($0.fileCount)", "\($0.sizeBytes)"]
            })
        }
    }

    static func age(_ seconds: Double) -> String {
        let whole = Int(seconds)
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min" }
        if whole < 86_400 { return "\(whole / 3600) h \(whole % 3600 / 60) min" }
        return "\(whole / 86_400) d \(whole % 86_400 / 3600) h"
    }
}

enum HistoryCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        var limit = 20
        if let text = arguments.value("--limit") {
            guard let value = Int(text), value > 0 else {
                throw UsageError(description: "--limit: '\(text)' is not a positive number", command: "history")
            }
            limit = value
        }
        let scope = try ReadScope.resolve(arguments, output: output)
        guard let journal = try scope.openJournal() else {
            if output.json { output.emitJSON(["runs": [Any]()]) } else { output.line("no runs yet") }
            return .ok
        }
        let runs = try scope.runs(journal, limit: limit)
        if output.json {
            var objects: [[String: Any]] = []
            for run in runs {
                var object = run.jsonObject
                object["steps"] = try journal.steps(run: run.id).map(\.jsonObject)
                objects.append(object)
            }
            output.emitJSON(["runs": objects])
            return .ok
        }
        if runs.isEmpty { output.line("no runs yet") }
        for (index, run) in runs.enumerated() {
            if index > 0 { output.line("") }
            output.line("\(run.startedAt)  \(run.command) \(run.plugin) \(run.fromVersion ?? "?") → "
                        + "\(run.toVersion ?? "?")  \(run.status.rawValue)"
                        + (run.rollbackStatus.map { "  rollback: \($0)" } ?? "") + "  [\(run.id)]")
            if let error = run.error { output.line("  \(error)") }
            output.table(["  STEP", "STATUS", "MS", "DETAIL"], try journal.steps(run: run.id).map {
                ["  " + $0.name, $0.status.rawValue, $0.durationMilliseconds.map(String.init) ?? "",
                 $0.error ?? $0.detail ?? ""]
            })
        }
        return .ok
    }
}

enum StatsCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let scope = try ReadScope.resolve(arguments, output: output)
        guard let journal = try scope.openJournal() else {
            if output.json { output.emitJSON(["plugins": [Any]()]) } else { output.line("no runs yet") }
            return .ok
        }
        var stats = try journal.stats(now: Date())
        if let selector = scope.selector {
            // --plugin narrows the per-plugin rows; a directory stands for the plugins run there.
            let names = selector.hasPrefix("/")
                ? Set(try scope.runs(journal, limit: 100_000).map(\.plugin)) : [selector]
            stats.plugins = stats.plugins.filter { names.contains($0.plugin) }
        }
        if output.json {
            output.emitJSON([
                "plugins": stats.plugins.map {
                    ["plugin": $0.plugin, "upgrades": $0.upgrades, "succeeded": $0.succeeded,
                     "rolled_back": $0.rolledBack, "rollback_failed": $0.rollbackFailed,
                     "success_rate": $0.successRate ?? NSNull()] as [String: Any]
                },
                "average_rollback_ms": stats.averageRollbackMilliseconds ?? NSNull(),
                "rollbacks_last_24h": stats.rollbacksLast24Hours,
                "failed_rollbacks_last_7d": stats.failedRollbacksLast7Days,
            ] as [String: Any])
            return .ok
        }
        output.table(["PLUGIN", "UPGRADES", "SUCCEEDED", "ROLLED BACK", "ROLLBACK FAILED", "SUCCESS RATE"],
                     stats.plugins.map {
                         [$0.plugin, "\($0.upgrades)", "\($0.succeeded)", "\($0.rolledBack)", "\($0.rollbackFailed)",
                          $0.successRate.map { String(format: "%.1f %%", $0 * 100) } ?? "-"]
                     })
        output.line("")
        output.table(["FIGURE", "VALUE"], [
            ["average rollback", stats.averageRollbackMilliseconds.map { String(format: "%.0f ms", $0) } ?? "-"],
            ["rollbacks, last 24 h", "\(stats.rollbacksLast24Hours)"],
            ["failed rollbacks, last 7 days", "\(stats.failedRollbacksLast7Days)"],
        ])
        return .ok
    }
}

enum FlushCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        // One journal for every install: the first context names the state directory and the API.
        guard let context = try Commands.contexts(arguments, output: output).first else { return .ok }
        let result = try Maintenance.flush(context: context)
        if output.json {
            output.emitJSON([
                "delivered": result.delivered, "rejected": result.rejected, "pending": result.pending,
                "requests": result.requests, "stopped_by": result.stoppedBy ?? NSNull(),
            ] as [String: Any])
        } else {
            var text = "delivered \(result.delivered) report\(result.delivered == 1 ? "" : "s")"
            if result.rejected > 0 { text += ", \(result.rejected) refused by the API" }
            text += "; \(result.pending) pending"
            output.line(text)
            if let reason = result.stoppedBy, result.pending > 0 { output.error("reports still pending: \(reason)") }
        }
        return result.pending > 0 ? .unavailable : .ok
    }
}

enum CleanupCommand {
    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        var result = Maintenance.CleanupResult(removed: [], kept: [])
        for context in try Commands.contexts(arguments, output: output) {
            let one = try Maintenance.cleanup(context: context)
            result.removed += one.removed
            result.kept += one.kept
        }
        if output.json {
            output.emitJSON(["removed": result.removed.map(\.jsonObject), "kept": result.kept.map(\.jsonObject)])
        } else {
            output.line("removed \(result.removed.count) backups, kept \(result.kept.count)")
            for backup in result.removed { output.line("  removed \(backup.path)") }
        }
        return .ok
    }
}
