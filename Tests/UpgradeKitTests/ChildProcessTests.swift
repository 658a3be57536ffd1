import Foundation
import Testing
import UpgradeKit

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

    @Test("A program that cannot be started is a typed error")
    func missingProgram() {
        #expect(throws: SystemError.self) {
            _ = try ChildProcess.run(["/nonexistent/smoke"], directory: "/", environment: [:], timeoutSeconds: 1)
        }
    }
}
