import Foundation
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

@Suite("smoke commands: resolution inside the tree and the user who runs them")
struct SmokeCommandTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("smoke-cmd-\(UUID())").path

    private func manifest(run: [String]) -> String {
        let list = run.map { "\"\($0)\"" }.joined(separator: ", ")
        return #"{"name": "x", "version": "1.0.0", "smoke": [{"type": "command", "run": [\#(list)]}]}"#
    }

    @Test("A release's smoke command must be a relative path without '..'; an installed one still loads",
          arguments: ["/bin/sh", "../x", "bin/../../x", "a/b/..", ".", "./", "//etc/passwd"])
    func refusedForReleases(path: String) throws {
        // Installed manifests with such a command still load, so the release that fixes them can land.
        let parsed = try PluginManifest.parse(Data(manifest(run: [path, "arg"]).utf8), source: "m.json")
        let problem = try #require(parsed.releaseProblem())
        #expect(problem.field == "smoke[0].run")
        #expect(!problem.description.contains("\n"))
    }

    @Test("Bare names and paths inside the tree are accepted",
          arguments: ["smoke", "./smoke", "bin/smoke", "bin//x.sh"])
    func acceptedAtParse(path: String) throws {
        let parsed = try PluginManifest.parse(Data(manifest(run: [path]).utf8), source: "m.json")
        #expect(parsed.smoke == [.command(run: [path], timeoutSeconds: 30)])
        #expect(parsed.releaseProblem() == nil)
    }

    @Test("Resolution opens only regular executable files, never through a link, a FIFO or a directory")
    func resolution() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/bin/deep", withIntermediateDirectories: true)
        try "#!/bin/sh\n".write(toFile: directory + "/bin/smoke", atomically: false, encoding: .utf8)
        chmod(directory + "/bin/smoke", 0o755)
        try "#!/bin/sh\n".write(toFile: directory + "/bin/plain", atomically: false, encoding: .utf8)
        chmod(directory + "/bin/plain", 0o644)
        mkfifo(directory + "/bin/fifo", 0o755)
        symlink("smoke", directory + "/bin/link")
        symlink("bin", directory + "/linkdir")

        let command = try SmokeCommand.open("./bin//smoke", in: directory)
        // The chain starts at the file, then bin/, the plugin directory, ... up to "/".
        #expect(command.chain.first?.isDirectory == false)
        #expect(command.chain.count == directory.split(separator: "/").count + 3)
        #expect(command.chain.last.map { $0.uid == 0 && $0.isDirectory } == true)

        func problem(_ path: String) -> String? {
            do {
                _ = try SmokeCommand.open(path, in: directory)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(problem("bin/link")?.contains("'bin/link' is a symbolic link") == true)
        #expect(problem("linkdir/smoke")?.contains("'linkdir' is a symbolic link") == true)
        #expect(problem("bin/plain")?.contains("is not executable") == true)
        #expect(problem("bin/fifo")?.contains("is not a regular file") == true)   // and the open did not block
        #expect(problem("bin/deep")?.contains("is not a regular file") == true)
        #expect(problem("bin/missing")?.contains("'bin/missing'") == true)
        #expect(problem("smoke")?.contains("'smoke'") == true)   // a bare name is never looked up in PATH
        #expect(problem("sh")?.contains("'sh'") == true)
        #expect(problem("/bin/sh")?.contains("absolute") == true)
        #expect(problem("../x")?.contains("'..'") == true)
    }

    private func entry(_ uid: UInt32, _ gid: UInt32, _ mode: UInt32, directory: Bool = true) -> SmokePathEntry {
        SmokePathEntry(uid: uid, gid: gid, mode: mode, isDirectory: directory)
    }

    /// Primary groups as on a Debian host: www-data 33, alice 1000.
    private func primary(_ uid: UInt32) -> UInt32? { [33: 33, 1000: 1000, 65534: 65534][uid] }

    @Test("The least privileged writer of the file or any directory above it runs the command")
    func userRule() {
        let root = entry(0, 0, 0o755)
        let file = entry(0, 0, 0o755, directory: false)
        func decide(_ chain: [SmokePathEntry]) -> FileOwner? {
            SmokeUser.decide(chain, primaryGroup: primary).owner
        }
        let nobody = FileOwner(uid: 65534, gid: Accounts.nogroup)
        // Only root writes anything: the agent's own user.
        #expect(decide([file, root, root, root]) == nil)
        // bin/ owned by www-data in a root tree; a web-user-owned plugins/ far above: www-data.
        #expect(decide([file, entry(33, 33, 0o755), root, root]) == FileOwner(uid: 33, gid: 33))
        #expect(decide([file, root, root, entry(33, 33, 0o755), root]) == FileOwner(uid: 33, gid: 33))
        // An owner counts even without u+w: it can chmod.
        #expect(decide([entry(33, 33, 0o555, directory: false), root]) == FileOwner(uid: 33, gid: 33))
        // World-writable anywhere: nobody; sticky directories' o+w and g+w do not count.
        #expect(decide([file, root, entry(0, 0, 0o777), root]) == nobody)
        #expect(decide([entry(0, 0, 0o757, directory: false), root]) == nobody)
        #expect(decide([file, root, entry(0, 0, 0o1777), root]) == nil)
        #expect(decide([file, root, entry(0, 33, 0o1775), root]) == nil)
        // A writing group that is the user's primary group: that user; another group: nobody:nogroup.
        #expect(decide([file, entry(33, 33, 0o775), root]) == FileOwner(uid: 33, gid: 33))
        #expect(decide([file, entry(33, 1000, 0o775), root]) == nobody)
        // Only a group: nobody in that group. Group root's write bit is root's.
        #expect(decide([file, entry(0, 33, 0o775), root]) == FileOwner(uid: 65534, gid: 33))
        #expect(decide([file, entry(0, 0, 0o775), root]) == nil)
        // Two users, or two groups: nobody:nogroup, so neither gains the other's rights.
        #expect(decide([file, entry(33, 33, 0o755), entry(1000, 1000, 0o755)]) == nobody)
        #expect(decide([file, entry(0, 33, 0o775), entry(0, 1000, 0o775)]) == nobody)
        // A user unknown to the passwd database: that uid with nogroup, unless a group writes too.
        #expect(decide([file, entry(4242, 4242, 0o755)]) == FileOwner(uid: 4242, gid: Accounts.nogroup))
        #expect(decide([file, entry(4242, 4242, 0o775)]) == nobody)
    }

    @Test("The children of this process are found in /proc")
    func childrenFound() throws {
        let pid = try ChildProcess.spawn(
            ["/bin/sleep", "30"], directory: "/", environment: [:],
            output: .files(stdout: "/dev/null", stderr: "/dev/null"))
        defer {
            kill(pid, SIGKILL)
            _ = try? ChildProcess.wait(pid)
        }
        #expect(DescendantReaper.childrenOfThisProcess().contains(pid))
    }
}
