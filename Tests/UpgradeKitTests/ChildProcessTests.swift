import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

@Suite("child processes")
struct ChildProcessTests {
    @Test("Exit status, output tail and working directory are reported")
    func exitStatus() throws {
        let outcome = try ChildProcess.run(
            ["/bin/sh", "-c", "pwd; echo oops >&2; exit 3"], directory: "/tmp", environment: [:], timeoutSeconds: 10)
        #expect(outcome.exitStatus == 3)
        #expect(!outcome.timedOut)
        #expect(outcome.outputTail.contains("/tmp"))
        #expect(outcome.outputTail.contains("oops"))
    }

    @Test("A timeout kills the whole process group, background children included")
    func timeout() throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let outcome = try ChildProcess.run(
            ["/bin/sh", "-c", "sleep 300 & echo $! > \(marker); wait"], directory: "/", environment: [:],
            timeoutSeconds: 0.5)
        #expect(outcome.timedOut)
        #expect(outcome.exitStatus == nil)
        let pid = Int32((try String(contentsOfFile: marker, encoding: .utf8))
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(pid > 0)
        // The background sleep is gone (or a zombie about to be reaped by init), never still sleeping.
        // SIGKILL is delivered asynchronously: wait, with a deadline, for the kernel to act on it.
        func gone() -> Bool {
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?
                .split(separator: " ").dropFirst(2).first
            return state == nil || state == "Z"
        }
        let deadline = Date().addingTimeInterval(10)
        while !gone() && Date() < deadline { usleep(5_000) }
        #expect(gone())
    }

    @Test("A program that exits is done even while a background child still holds its output open")
    func exitEndsTheWait() throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let outcome = try ChildProcess.run(
            ["/bin/sh", "-c", "sleep 300 & echo $! > \(marker); echo done"], directory: "/", environment: [:],
            timeoutSeconds: 60)
        #expect(!outcome.timedOut)
        #expect(outcome.exitStatus == 0)
        #expect(outcome.outputTail == "done\n")
        #expect(outcome.durationSeconds < 30)
        // The background sleep went with the program's process group.
        let pid = Int32((try String(contentsOfFile: marker, encoding: .utf8))
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(pid > 0)
        func gone() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return true }
            return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
        }
        let deadline = Date().addingTimeInterval(10)
        while !gone() && Date() < deadline { usleep(5_000) }
        #expect(gone())
    }

    @Test("As root, a child can run as another user, without root's groups, and cannot get root back",
          .enabled(if: geteuid() == 0, "needs root to switch users"))
    func runsAsAnotherUser() throws {
        let shell = open("/bin/sh", O_RDONLY | O_CLOEXEC)
        let directory = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        #expect(shell >= 0 && directory >= 0)
        defer {
            close(shell)
            close(directory)
        }
        let outcome = try ChildProcess.run(
            executable: shell, arguments: ["sh", "-c", "id -u; id -g; id -G; pwd"], directory: directory,
            environment: ["PATH": "/usr/bin:/bin"], timeoutSeconds: 10, as: FileOwner(uid: 65534, gid: 65534))
        #expect(outcome.exitStatus == 0, "\(outcome.outputTail)")
        #expect(outcome.outputTail.split(separator: "\n") == ["65534", "65534", "65534", "/tmp"])
        // A descriptor that is no program cannot be started: the failure is thrown, not a silent pass.
        #expect(throws: SystemError.self) {
            _ = try ChildProcess.run(
                executable: directory, arguments: ["x"], directory: directory, environment: [:],
                timeoutSeconds: 1, as: FileOwner(uid: 65534, gid: 65534))
        }
    }

    @Test("A smoke command from a tree another user owns runs as that user, never as root",
          .enabled(if: geteuid() == 0, "needs root to switch users"))
    func smokeRunsAsTreeOwner() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("smoke-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/bin", withIntermediateDirectories: true)
        try "#!/bin/sh\nid -u\n".write(toFile: directory + "/bin/smoke", atomically: true, encoding: .utf8)
        chmod(directory + "/bin/smoke", 0o755)
        chmod(directory, 0o755)
        let runner = SmokeRunner(pluginDirectory: directory, database: .sqlite(path: "/nonexistent.db"),
                                 version: try #require(SemanticVersion("1.0.0")))
        #expect(runner.run([.command(run: ["bin/smoke"], timeoutSeconds: 10)]).first?.detail == "0 (ran as root)")
        chown(directory, 33, 33)
        #expect(runner.run([.command(run: ["bin/smoke"], timeoutSeconds: 10)]).first?.detail == "33 (ran as www-data)")
    }

    @Test("A program that cannot be started is a typed error")
    func missingProgram() {
        #expect(throws: SystemError.self) {
            _ = try ChildProcess.run(["/nonexistent/smoke"], directory: "/", environment: [:], timeoutSeconds: 1)
        }
    }
}
