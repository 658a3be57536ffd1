import Foundation

/// The reports of DESIGN.md's central API, queued in the journal's outbox as the run goes. Queuing
/// is a local write; delivery happens after the run, under the same lock (`ReportDelivery`), so an
/// API that is down, slow or answering garbage never delays or changes an upgrade or a rollback.
///
/// Queuing never throws into the pipeline: a report that cannot be queued is not worth failing a
/// run for, and a journal that cannot be written fails the run's own next write anyway.
extension PipelineRun {
    var reportsEnabled: Bool { context.reportsEnabled }

    /// Opens the run's upgrade record (`POST /api/plugins/upgrades`) and queues the steps already
    /// finished. Called once the run is worth reporting: past eligibility, or a manual run.
    func openReports(plugin: String, from: String?, to: String?) {
        guard reportsEnabled, state.reportUpgradeSeq == nil else { return }
        let now = context.clock()
        var payload: [String: Any] = [
            "merchant_id": context.agent.merchantID ?? NSNull(), "plugin_name": plugin,
            "from_version": from ?? NSNull(), "to_version": to ?? NSNull(), "run_id": id, "command": command.rawValue,
            "trigger": trigger.rawValue, "agent_version": UpgradeKitVersion.string, "started_at": Journal.timestamp(now),
        ]
        payload["plugin_dir"] = context.site.pluginDirectory
        guard let seq = try? journal.enqueueReport(
            kind: "upgrade", path: "/api/plugins/upgrades", payload: payload, runID: id, expectsID: true, now: now)
        else { return }
        state.reportUpgradeSeq = seq
        state.reportPlugin = plugin
        state.reportFromVersion = from
        state.reportToVersion = to
        try? save()
        for step in (try? journal.steps(run: id)) ?? [] where step.status != .started {
            reportStep(step)
        }
    }

    func reportStep(_ step: StepRecord) {
        guard reportsEnabled, let upgrade = state.reportUpgradeSeq else { return }
        let payload: [String: Any] = [
            "run_id": id, "step": step.name, "status": step.status.rawValue, "started_at": step.startedAt,
            "finished_at": step.finishedAt ?? NSNull(), "duration_ms": step.durationMilliseconds ?? NSNull(),
            "detail": step.detail ?? NSNull(), "error": step.error ?? NSNull(),
        ]
        _ = try? journal.enqueueReport(
            kind: "step", path: "/api/plugins/upgrades/{id}/steps", payload: payload, runID: id, dependsOn: upgrade,
            now: context.clock())
    }

    func reportBackup(_ backup: BackupRecord) {
        guard reportsEnabled, let upgrade = state.reportUpgradeSeq else { return }
        let payload: [String: Any] = [
            "merchant_id": context.agent.merchantID ?? NSNull(), "plugin_name": backup.plugin,
            "version": backup.version, "backup_path": backup.path, "backup_size_bytes": backup.sizeBytes,
            "file_count": backup.fileCount, "tables": backup.tables, "created_at": backup.createdAt, "run_id": id,
            "upgrade_id": NSNull(),
        ]
        _ = try? journal.enqueueReport(
            kind: "backup", path: "/api/plugins/backup", payload: payload, runID: id, dependsOn: upgrade,
            refField: "upgrade_id", now: context.clock())
    }

    /// `POST /api/plugins/rollback/initiate`, once per run even when recovery finishes the rollback.
    func reportRollbackInitiated(trigger: RunTrigger, reason: String, from: String?, to: String?) {
        guard reportsEnabled, let upgrade = state.reportUpgradeSeq, state.reportRollbackSeq == nil else { return }
        let payload: [String: Any] = [
            "merchant_id": context.agent.merchantID ?? NSNull(), "plugin_name": state.reportPlugin ?? "",
            "from_version": from ?? NSNull(), "to_version": to ?? NSNull(), "trigger": trigger.rawValue, "reason": reason,
            "run_id": id, "upgrade_id": NSNull(),
        ]
        guard let seq = try? journal.enqueueReport(
            kind: "rollback_initiate", path: "/api/plugins/rollback/initiate", payload: payload, runID: id,
            dependsOn: upgrade, refField: "upgrade_id", expectsID: true, now: context.clock())
        else { return }
        state.reportRollbackSeq = seq
        try? save()
    }

    /// `POST /api/plugins/rollback/{rollback_id}/complete`: delivered only after its initiate, whose
    /// answer carries the id. `files_restored` is a count, as the seeds have it (115bis: `"files_restored":
    /// 125`, an INT column): the regular files of the tree put back, 0 when the files were not restored.
    func reportRollbackCompleted(success: Bool, durationMilliseconds: Int, filesRestored: Bool, databaseRestored: Bool) {
        guard reportsEnabled, let initiate = state.reportRollbackSeq else { return }
        let payload: [String: Any] = [
            "success": success, "duration_ms": durationMilliseconds,
            "files_restored": filesRestored ? Self.regularFileCount(context.site.treeDirectory) : 0,
            "db_restored": databaseRestored,
        ]
        _ = try? journal.enqueueReport(
            kind: "rollback_complete", path: "/api/plugins/rollback/{id}/complete", payload: payload, runID: id,
            dependsOn: initiate, now: context.clock())
    }

    /// `POST /api/plugins/rollback`: the rollback event on the upgrade log, once at the end of a
    /// reported run (`not_required` when nothing had to be put back).
    func reportOutcome(
        status: RunStatus, rollbackStatus: RollbackStatus, error: String?, rollbackVersion: String? = nil
    ) {
        guard reportsEnabled, let upgrade = state.reportUpgradeSeq, !(state.reportOutcomeSent ?? false) else { return }
        let rollback = rollbackStatus.rawValue
        let restored: Any = rollbackStatus == .notRequired
            ? NSNull() : ((rollbackVersion ?? state.reportFromVersion).map { $0 as Any } ?? NSNull())
        let payload: [String: Any] = [
            "merchant_id": context.agent.merchantID ?? NSNull(), "plugin_name": state.reportPlugin ?? "",
            "rollback_version": restored,
            "status": rollback, "reason": error ?? (status == .succeeded ? "upgrade succeeded" : status.rawValue),
            "run_status": status.rawValue, "run_id": id, "upgrade_id": NSNull(),
        ]
        _ = try? journal.enqueueReport(
            kind: "rollback_log", path: "/api/plugins/rollback", payload: payload, runID: id, dependsOn: upgrade,
            refField: "upgrade_id", now: context.clock())
        state.reportOutcomeSent = true
        try? save()
    }

    /// Regular files under `root`, symbolic links neither counted nor followed.
    static func regularFileCount(_ root: String) -> Int {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return 0 }
        var count = 0
        while walker.nextObject() != nil {
            if walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular { count += 1 }
        }
        return count
    }
}
