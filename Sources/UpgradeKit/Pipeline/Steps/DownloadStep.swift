import Foundation

/// `download`: the release into the run's private work directory, its SHA-256 (and, from the central
/// API, its signed metadata) checked while it is written. Its undo is the work directory's removal.
enum DownloadStep {
    /// Fetches `source` to `destination`.
    static func run(
        _ run: PipelineRun, _ source: ReleaseSource, to destination: String, api: CentralAPI?, policy: ReleasePolicy
    ) throws {
        let context = run.context
        let maxBytes = context.maxArchiveBytes
        switch source {
        case .url(let url, let sha256):
            try run.step(.download, "downloading and checking \(url)") {
                // The API's client sends its token only to the API's own origin.
                let client = try api ?? (context.agent.apiURL != nil
                    ? CentralRelease.client(context) : CentralRelease.downloadClient(context))
                let bytes = try CentralRelease.download(
                    url: url, sha256: sha256, sizeBytes: nil, label: "release archive \(url)", api: client,
                    baseURL: context.agent.apiURL, to: destination, maxBytes: maxBytes)
                return ((), "\(bytes) bytes, SHA-256 verified")
            }
        case .file(let path, let sha256):
            try run.step(.download, "copying and checking \(path)") {
                let bytes = try ReleaseDownload.copy(
                    from: path, to: destination, expectedSHA256: sha256, maxBytes: maxBytes)
                return ((), "\(bytes) bytes, SHA-256 verified")
            }
        case .api(let version):
            guard let api else { return }
            let plugin = policy.installed.name
            try run.step(.download, "fetching \(plugin) \(version)") {
                let (release, signature) = try CentralRelease.release(
                    api, plugin: plugin, version: version, context: context, policy: policy)
                let bytes = try CentralRelease.download(
                    release, api: api, baseURL: context.agent.apiURL, to: destination, maxBytes: maxBytes)
                return ((), "\(bytes) bytes, SHA-256 verified; \(signature)")
            }
        }
    }
}
