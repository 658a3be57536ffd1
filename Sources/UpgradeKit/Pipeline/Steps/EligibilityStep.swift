import Foundation

/// `eligibility`: DESIGN.md's rollout decision, journaled with its reason. Decides only.
enum EligibilityStep {
    enum Verdict {
        /// Go on with this version (nil: a local archive, whose version `stage` learns).
        case proceed(SemanticVersion?)
        /// Nothing to do: the run ends skipped with this reason.
        case skip(String)
        /// The rollout of the version this host runs was rolled back upstream.
        case rollBack(String)
    }

    static func run(_ run: PipelineRun, _ options: Pipeline.UpgradeOptions, _ resolved: ResolveStep.Resolved) throws
        -> Verdict
    {
        let plugin = resolved.installed.name
        if options.archive != nil {
            try run.skip(.eligibility, "local archive: no rollout decision")
            return .proceed(options.expectedVersion)
        }
        if options.force {
            try run.skip(.eligibility, "--force: eligibility not checked")
            guard let version = options.expectedVersion ?? resolved.rollout?.version else {
                return .skip("no rollout for \(plugin), and no --to VERSION given")
            }
            return .proceed(version)
        }
        let decision = try run.step(.eligibility, "deciding from the rollout") { () -> (RolloutDecision, String?) in
            var decision = RolloutPolicy.decide(
                resolved.rollout, installed: resolved.installed.version, merchant: CentralRelease.merchant(run.context))
            if case .eligible = decision, let wanted = options.expectedVersion, let rollout = resolved.rollout,
               rollout.version != wanted {
                decision = .skip("the rollout targets \(rollout.versionText), not the requested \(wanted); "
                                     + "pass --force to install \(wanted) anyway")
            }
            return (decision, decision.reason)
        }
        switch decision {
        case .skip(let reason): return .skip(reason)
        case .rollBack(let reason): return .rollBack(reason)
        case .eligible: return .proceed(resolved.rollout?.version)
        }
    }
}
