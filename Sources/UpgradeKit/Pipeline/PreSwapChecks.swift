import Foundation

extension Pipeline {
    /// What `stage` checks of a release before anything changes, against the staged tree: PHP's
    /// syntax check of every PHP file (when PHP is on the host) and the manifest's `before_swap`
    /// command checks. A release that fails either is refused (exit 4) with the file and line or the
    /// check's output: it could not have loaded, so it must not cost a single payment.
    static func checkBeforeSwap(_ manifest: PluginManifest, tree: String, run: PipelineRun, scratch: String) throws
        -> String
    {
        let context = run.context
        let site = context.site
        let release = "release \(manifest.name) \(manifest.version)"
        var details: [String] = []
        if context.agent.phpLint, let php = PHPSyntaxCheck.find(configured: context.agent.php) {
            context.progress.note("checking the PHP syntax of \(manifest.name) \(manifest.version)")
            let result: PHPSyntaxCheck.Result
            do {
                result = try PHPSyntaxCheck(php: php, timeoutSeconds: 300).check(
                    tree: tree, liveDirectory: site.pluginDirectory, scratch: scratch, skipping: manifest.phpLintSkip)
            } catch {
                throw UpgradeError.failed("staging failed, nothing was changed: \(error)")
            }
            if let first = result.failures.first {
                let more = result.failures.count > 1 ? " (and \(result.failures.count - 1) more file(s))" : ""
                throw UpgradeError.refused("\(release) does not compile: \(first)\(more)")
            }
            if let skipped = result.skipped {
                context.progress.note(skipped)
                details.append(skipped)
            } else {
                let oneByOne = result.checkedOneByOne == 0 ? ""
                    : " (\(result.checkedOneByOne) of them with php -l one by one: opcache did not compile them)"
                details.append("PHP syntax of \(result.filesChecked) file\(result.filesChecked == 1 ? "" : "s") checked" + oneByOne)
            }
        }
        if !manifest.beforeSwap.isEmpty {
            let results = SmokeRunner(
                pluginDirectory: tree, database: site.database, version: manifest.version,
                liveDirectory: site.pluginDirectory
            ).run(manifest.beforeSwap)
            if let failure = results.failureDescription {
                throw UpgradeError.refused("\(release): before-swap \(failure)")
            }
            details.append("\(results.count) before-swap check\(results.count == 1 ? "" : "s") passed")
        }
        if let privateSite = try privateSiteCheck(manifest, tree: tree, context: context) {
            details.append(privateSite)
        }
        return details.isEmpty ? "" : "; " + details.joined(separator: "; ")
    }

    /// The site run with the staged release on a private port (`PrivateSiteCheck`): its version URL
    /// and the release's http checks. Needs root (a mount namespace), PHP, and the site's document root
    /// (`site_root`, or the WordPress layout around the plugin directory).
    private static func privateSiteCheck(_ manifest: PluginManifest, tree: String, context: UpgradeContext) throws
        -> String?
    {
        let site = context.site
        guard ChildProcess.canShowStagedTree, site.live.privateSiteCheck,
              let php = PHPSyntaxCheck.find(configured: context.agent.php),
              let root = site.live.siteRoot ?? PrivateSiteCheck.wordPressRoot(of: site.pluginDirectory)
        else { return nil }
        var probes: [PrivateSiteCheck.Probe] = []
        if let url = site.live.versionURL { probes.append((url, 200, site.live.versionExpect)) }
        for check in manifest.smoke {
            if case .http(let url, let status, let body, _) = check { probes.append((url, status, body)) }
        }
        guard !probes.isEmpty else { return nil }
        context.progress.note("asking a private copy of the site running \(manifest.name) \(manifest.version)")
        let outcome = PrivateSiteCheck(php: php, documentRoot: root, tree: tree, liveDirectory: site.pluginDirectory)
            .run(probes: probes, version: manifest.version)
        if let broken = outcome.broken {
            throw UpgradeError.refused("release \(manifest.name) \(manifest.version) is broken: \(broken)")
        }
        return outcome.detail
    }
}
