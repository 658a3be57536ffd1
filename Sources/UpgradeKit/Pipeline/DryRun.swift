import Foundation

/// `upgrade --dry-run`: the release was downloaded, staged and checked like a real one; its
/// migrations are then applied to a scratch copy of the owned tables, and nothing on the site changes.
enum DryRun {
    static func run(
        _ run: PipelineRun, installed: PluginManifest, staged: StageStep.Staged, database: any PluginDatabase
    ) throws -> RunOutcome {
        let target = staged.target
        do {
            try run.skip(.backup, "dry run")
            try run.skip(.swap, "dry run")
            let detail = try run.step(.migrate, "checking migrations on a scratch copy of the owned tables") {
                let scratch = try database.scratchCopy(
                    of: Pipeline.ownedTables(installed, target),
                    in: run.state.workDirectory ?? run.context.paths.work)
                let pending = try scratch.pendingMigrations(staged.migrations)
                try scratch.applyMigrations(
                    pending, now: run.context.clock(),
                    confinement: Pipeline.confinement(installed, target, site: run.context.site))
                let text = "\(pending.count) pending migration\(pending.count == 1 ? "" : "s") apply cleanly"
                return (text, text)
            }
            try run.skip(.verify, "dry run")
            run.tidy()
            return try run.end(
                .dryRun, "dry run: would upgrade \(installed.name) \(installed.version) → \(target.version); "
                    + "\(detail); nothing was changed", exitCode: .ok)
        } catch {
            run.tidy()
            return try run.refuse(error, prefix: "dry run: ")
        }
    }
}
