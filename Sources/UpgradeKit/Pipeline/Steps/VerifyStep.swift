import Foundation

/// `verify`: the live plugin reports the target version, the site serves it (`version_url`), and the
/// release's smoke checks pass. Checks only; a failure is undone by the steps before it.
enum VerifyStep {
    static func run(_ run: PipelineRun, expecting target: PluginManifest) throws {
        let context = run.context
        let site = context.site
        try run.step(.verify, "checking \(target.name) \(target.version)") {
            let live = try PluginManifest.load(pluginDirectory: site.pluginDirectory)
            guard live.name == target.name, live.version == target.version else {
                throw UpgradeError.failed(
                    "verify: the live plugin reports \(live.name) \(live.version), expected \(target.name) \(target.version)")
            }
            // An upgrade's new code that answers 5xx is broken: fail at once. A manual rollback waits
            // errors out instead: the code it just swapped out may still be cached for a moment.
            let failFast = run.command == .upgrade
            var served = ""
            if let wait = LiveSite.waitForVersion(context, target.version, failFast: failFast) {
                guard wait.passed else {
                    throw UpgradeError.failed(
                        "verify: \(site.live.versionURL ?? "") does not report \(target.version): \(wait.detail)")
                }
                served = "; the site reports \(target.version) (\(wait.detail))"
            }
            let results = SmokeRunner(context: context, version: target.version, failFast: failFast).run(target.smoke)
            if let failure = results.failureDescription { throw UpgradeError.failed(failure) }
            return ((), "version \(live.version)\(served); \(results.count) smoke check\(results.count == 1 ? "" : "s") passed")
        }
    }
}
