import Foundation
import UpgradeKit

/// `status`: what is installed and what the journal says; reads through `ReadScope`, so the state
/// directory alone is enough.
enum StatusCommand: AgentCommand {
    static let spec = CommandSpec.journalReader(
        name: "status", abstract: "Show the installed version, the last run, kept trees and backups.")

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
