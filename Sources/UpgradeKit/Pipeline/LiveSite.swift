import Foundation

/// The site as its visitors see it, after a swap: the `after_swap` hook, and the wait until the
/// site reports the version the agent is about to announce.
enum LiveSite {
    /// Runs the configured `after_swap` program (a php-fpm reload, an opcache reset); returns a
    /// fragment for the step's detail. A failing hook fails nothing by itself: the version wait
    /// that follows decides whether the site serves the right code.
    static func afterSwap(_ context: UpgradeContext) -> String {
        let command = context.site.live.afterSwap
        guard !command.isEmpty else { return "" }
        let name = (command[0] as NSString).lastPathComponent
        do {
            let outcome = try ChildProcess.run(
                command, directory: "/", environment: ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                timeoutSeconds: 30)
            let tail = SmokeRunner.lastLine(outcome.outputTail)
            if outcome.exitStatus == 0 { return "; after_swap \(name): exit 0" }
            let how = outcome.timedOut ? "timed out after 30 s"
                : outcome.signal.map { "killed by signal \($0)" } ?? "exit \(outcome.exitStatus ?? -1)"
            context.progress.note("after_swap \(name) failed: \(how)\(tail.isEmpty ? "" : ": \(tail)")")
            return "; after_swap \(name) failed: \(how)" + (tail.isEmpty ? "" : ": \(tail)")
        } catch {
            context.progress.note("after_swap \(name) cannot be started: \(error)")
            return "; after_swap \(name) cannot be started: \(error)"
        }
    }

    /// Waits until the site's `version_url` reports `version`; nil when none is configured. With
    /// `failFast` (an upgrade), a 5xx or a PHP fatal ends the wait at once as a failure.
    static func waitForVersion(_ context: UpgradeContext, _ version: SemanticVersion, failFast: Bool)
        -> SiteProbe.Outcome?
    {
        let live = context.site.live
        guard let url = live.versionURL else { return nil }
        context.progress.note("waiting for \(url) to report \(version)")
        return SiteProbe(
            url: url, expectBody: live.versionExpect, version: version, timeoutSeconds: live.versionTimeoutSeconds,
            failFast: failFast
        ).run()
    }
}
