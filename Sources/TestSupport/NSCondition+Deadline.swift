import Foundation

extension NSCondition {
    /// Waits under the lock until `isSatisfied` holds or `deadline` passes, and says whether it
    /// holds. The test doubles count what their server thread recorded this way, for clients that
    /// send in the background.
    func wait(until deadline: Date, for isSatisfied: () -> Bool) -> Bool {
        lock()
        defer { unlock() }
        while !isSatisfied() {
            if !wait(until: deadline) { return isSatisfied() }
        }
        return true
    }
}
