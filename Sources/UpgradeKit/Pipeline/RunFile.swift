import Foundation

/// A second record of a run that has changed the site, beside its work directory
/// (`<work>/<run>/run.json`): written right before the swap and marked finished when the run ends.
/// When the journal lost the run (its WAL gone with a crash), `recover` finds the run here and
/// finishes it from what is on disk, instead of taking a half-upgraded site as the new baseline.
struct RunFile: Codable {
    static let name = "run.json"

    var id: String
    var command: RunCommand
    var trigger: RunTrigger
    var plugin: String
    var pluginDirectory: String
    var fromVersion: String?, toVersion: String?
    var state: RunState
    /// Set once the run's outcome is journaled.
    var finished: RunStatus?

    /// Writes (or rewrites) the run's file, durably; nothing when the run has no work directory.
    static func write(_ run: PipelineRun, finished: RunStatus? = nil) throws {
        guard let directory = run.state.workDirectory, FileSystem.isDirectory(directory) else { return }
        let file = RunFile(
            id: run.id, command: run.command, trigger: run.trigger, plugin: run.plugin,
            pluginDirectory: run.context.site.pluginDirectory, fromVersion: run.fromVersion, toVersion: run.toVersion,
            state: run.state, finished: finished)
        try FileSystem.writeAtomically(try JSONEncoder().encode(file), to: directory + "/" + name)
    }

    /// Marks the run finished in its file, if it has one. A failure is harmless: the journal knows.
    static func markFinished(_ run: PipelineRun, _ status: RunStatus) {
        guard let directory = run.state.workDirectory, FileSystem.exists(directory + "/" + name) else { return }
        try? write(run, finished: status)
    }

    /// The unfinished runs of `pluginDirectory` found in the work directories.
    static func unfinished(in bases: [String], pluginDirectory: String) -> [RunFile] {
        var found: [RunFile] = []
        for base in bases {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { continue }
            for name in names.sorted() {
                let path = base + "/" + name + "/" + Self.name
                guard FileSystem.exists(path), let data = FileManager.default.contents(atPath: path),
                      let file = try? JSONDecoder().decode(RunFile.self, from: data),
                      file.id == name, file.finished == nil, file.pluginDirectory == pluginDirectory
                else { continue }
                found.append(file)
            }
        }
        return found
    }
}
