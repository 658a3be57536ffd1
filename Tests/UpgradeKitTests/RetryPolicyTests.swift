import Foundation
import Testing
import UpgradeKit

/// Backoff arithmetic and Retry-After parsing, with the random generator injected so every value
/// is exact.
@Suite("retry policy")
struct RetryPolicyTests {
    /// RFC 9110's example date, "Sun, 06 Nov 1994 08:49:37 GMT".
    private static let exampleDate = Date(timeIntervalSince1970: 784_111_777)

    @Test("The defaults are 4 attempts, 0.5 s base, 8 s cap, Retry-After up to 60 s, 30 s budget")
    func defaults() {
        let policy = RetryPolicy.default
        let spelledOut = RetryPolicy(
            maxAttempts: 4, baseDelay: 0.5, maxDelay: 8, maxRetryAfter: 60, budget: 30)
        #expect(policy == spelledOut)
        #expect(policy.maxAttempts == 4)
        #expect(policy.baseDelay == 0.5)
        #expect(policy.maxDelay == 8)
        #expect(policy.maxRetryAfter == 60)
        #expect(policy.budget == 30)
    }

    @Test("The ceiling doubles after each attempt up to maxDelay, and the jitter spans all of it")
    func exponentialCeiling() {
        let policy = RetryPolicy()
        var ranges: [ClosedRange<Double>] = []
        let waits = (1...7).map { attempt in
            policy.delay(afterAttempt: attempt, retryAfter: nil) { range in
                ranges.append(range)
                return range.upperBound
            }
        }
        #expect(waits == [0.5, 1, 2, 4, 8, 8, 8])
        #expect(ranges.map(\.lowerBound) == Array(repeating: 0, count: 7))
        let shortest = policy.delay(afterAttempt: 3, retryAfter: nil) { $0.lowerBound }
        #expect(shortest == 0)
    }

    @Test("A very high attempt number still gives maxDelay, not infinity or NaN")
    func hugeAttempt() {
        let wait = RetryPolicy().delay(afterAttempt: 10_000, retryAfter: nil) { $0.upperBound }
        #expect(wait == 8)
        let zeroBase = RetryPolicy(baseDelay: 0)
        #expect(zeroBase.delay(afterAttempt: 10_000, retryAfter: nil) { $0.upperBound } == 0)
    }

    @Test("A generator that strays outside its range is clamped to it")
    func strayGenerator() {
        let policy = RetryPolicy()
        #expect(policy.delay(afterAttempt: 2, retryAfter: nil) { _ in -5 } == 0)
        #expect(policy.delay(afterAttempt: 2, retryAfter: nil) { _ in 100 } == 1)
    }

    @Test("A Retry-After larger than the jitter wins; a smaller one does not")
    func retryAfterWinsWhenLarger() {
        let policy = RetryPolicy()
        #expect(policy.delay(afterAttempt: 1, retryAfter: 2) { $0.upperBound } == 2)
        #expect(policy.delay(afterAttempt: 3, retryAfter: 0.5) { $0.upperBound } == 2)
        #expect(policy.delay(afterAttempt: 3, retryAfter: 0.5) { $0.lowerBound } == 0.5)
    }

    @Test("A Retry-After is clamped to 0...maxRetryAfter")
    func retryAfterClamped() {
        let policy = RetryPolicy(maxRetryAfter: 5)
        #expect(policy.delay(afterAttempt: 1, retryAfter: 100_000) { $0.upperBound } == 5)
        #expect(policy.delay(afterAttempt: 1, retryAfter: -30) { $0.lowerBound } == 0)
        #expect(policy.delay(afterAttempt: 1, retryAfter: .infinity) { $0.lowerBound } == 5)
    }

    @Test("Retry-After as delta-seconds", arguments: [
        ("120", 120.0), ("0", 0), (" 7 ", 7), ("007", 7), ("86400", 86_400),
    ] as [(String, Double)])
    func deltaSeconds(value: String, seconds: Double) {
        #expect(RetryPolicy.parseRetryAfter(value, now: Self.exampleDate) == seconds)
    }

    @Test("Retry-After values that are neither delta-seconds nor an HTTP-date are ignored", arguments: [
        "", "   ", "-5", "+5", "1.5", "1e3", "soon", "٣", "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT", "Funday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49 1994",
    ])
    func unparseable(value: String) {
        #expect(RetryPolicy.parseRetryAfter(value, now: Self.exampleDate) == nil)
    }

    @Test("Retry-After as an HTTP-date in each of the three formats RFC 9110 requires", arguments: [
        "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
        "sun, 06 nov 1994 08:49:37 GMT",
    ])
    func httpDates(value: String) {
        let now = Self.exampleDate.addingTimeInterval(-120)
        #expect(RetryPolicy.parseRetryAfter(value, now: now) == 120)
    }

    @Test("A leap day parses; an HTTP-date in the past gives nil, so our own backoff applies")
    func leapDayAndPast() {
        let now = Date(timeIntervalSince1970: 1_709_208_000 - 30)  // 2024-02-29 11:59:30 UTC
        #expect(RetryPolicy.parseRetryAfter("Thu, 29 Feb 2024 12:00:00 GMT", now: now) == 30)
        #expect(RetryPolicy.parseRetryAfter("Thu, 29 Feb 2024 11:00:00 GMT", now: now) == nil)
        #expect(RetryPolicy.parseRetryAfter("Thu, 29 Feb 2023 12:00:00 GMT", now: now) == nil)
    }

    @Test("A two-digit year more than 50 years ahead means the previous century")
    func twoDigitYears() {
        let now = Date(timeIntervalSince1970: 1_735_689_600)  // 2025-01-01 00:00:00 UTC
        let nextYear = RetryPolicy.parseRetryAfter("Thursday, 01-Jan-26 00:00:00 GMT", now: now)
        #expect(nextYear == 31_536_000)
        // 2099 would be 74 years ahead: it is 1999, in the past.
        #expect(RetryPolicy.parseRetryAfter("Friday, 01-Jan-99 00:00:00 GMT", now: now) == nil)
    }

    @Test("408, 429 and 5xx are retryable; other statuses are not")
    func retryableStatuses() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            #expect(RetryPolicy.isRetryable(status: status), "\(status)")
        }
        for status in [0, 100, 200, 204, 301, 304, 400, 401, 403, 404, 409, 422, 499, 600] {
            #expect(!RetryPolicy.isRetryable(status: status), "\(status)")
        }
    }
}
