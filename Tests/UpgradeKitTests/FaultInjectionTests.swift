import Testing
@testable import UpgradeKit

@Suite("fault injection")
struct FaultInjectionTests {
    @Test("a specification parses into points, actions and occurrences")
    func parses() throws {
        let armings = try FaultInjection.parse(" after-swap=kill , mid-extract=error@3,fsync=sleep:0.25 ")
        #expect(armings == [
            .init(point: "after-swap", action: .kill, occurrence: 1),
            .init(point: "mid-extract", action: .error, occurrence: 3),
            .init(point: "fsync", action: .sleep(0.25), occurrence: 1),
        ])
        #expect(try FaultInjection.parse("").isEmpty)
    }

    @Test("every step but lock has a before and an after point, and the inner points are listed",
          arguments: StepName.allCases.filter { $0 != .lock })
    func stepPoints(step: StepName) {
        #expect(FaultInjection.pointNames.contains("before-\(step.rawValue)"))
        #expect(FaultInjection.pointNames.contains("after-\(step.rawValue)"))
    }

    @Test("a bad specification is a configuration error naming the bad part",
          arguments: ["after-swapp=kill", "after-swap", "after-swap=boom", "after-swap=kill@0", "after-swap=kill@x",
                      "after-swap=sleep:-1", "after-swap=sleep:forever", "before-lock=kill"])
    func refuses(text: String) {
        do {
            _ = try FaultInjection.parse(text)
            Issue.record("\(text) was accepted")
        } catch {
            guard case .configuration(let message) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(message.contains("MOLAM_UPGRADE_FAULTS"))
            #expect(message.contains(text))
            #expect(error.exitCode == .usage)
        }
    }

    @Test("unarmed, a point does nothing")
    func inert() throws {
        for point in FaultInjection.pointNames { try FaultInjection.hit(point) }
    }
}
