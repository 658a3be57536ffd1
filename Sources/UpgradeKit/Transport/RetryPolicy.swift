import Foundation

/// How often, and how long apart, one central-API operation is tried again.
///
/// The waits are capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
/// Backoff And Jitter"): thousands of merchant hosts fire the same daily cron, and randomising the
/// whole interval spreads their retries instead of having them hit a recovering API in waves.
public struct RetryPolicy: Sendable, Equatable {
    /// Tries in total, the first included: 1 means no retry.
    public var maxAttempts: Int
    /// Seconds; the ceiling of the first wait, doubled after each further attempt.
    public var baseDelay: Double
    /// Seconds; the largest ceiling one backoff can reach.
    public var maxDelay: Double
    /// Seconds; a server's `Retry-After` is clamped to `0...maxRetryAfter`, so a misconfigured
    /// proxy asking for a day cannot park the agent.
    public var maxRetryAfter: Double
    /// Seconds of waiting, summed over one operation. A cron run must end; the outbox tries again
    /// on the next run instead.
    public var budget: Double

    public init(
        maxAttempts: Int = 4, baseDelay: Double = 0.5, maxDelay: Double = 8, maxRetryAfter: Double = 60,
        budget: Double = 30
    ) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
        self.budget = budget
    }

    public static let `default` = RetryPolicy()

    /// Seconds to wait after the failed attempt number `attempt` (1-based): a random value in
    /// `0...min(maxDelay, baseDelay * 2^(attempt-1))`. A `Retry-After` (already parsed, seconds) is
    /// clamped to `0...maxRetryAfter` and wins over the jittered value when larger: the server
    /// knows better than our guess, but we never wait less than our own backoff chose.
    public func delay(
        afterAttempt attempt: Int, retryAfter: Double?, random: (ClosedRange<Double>) -> Double
    ) -> Double {
        // The exponent is capped so that 2^n stays finite; the cap is far beyond any maxDelay.
        let exponent = Double(min(max(0, attempt - 1), 64))
        let ceiling = Self.nonNegative(min(maxDelay, baseDelay * pow(2, exponent)))
        // An injected generator that strays outside the range must not produce a negative wait.
        let jittered = min(ceiling, Self.nonNegative(random(0...ceiling)))
        guard let retryAfter else { return jittered }
        let asked = min(Self.nonNegative(retryAfter), Self.nonNegative(maxRetryAfter))
        return max(jittered, asked)
    }

    /// Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds, or an HTTP-date in any of the three
    /// formats recipients must accept (§5.6.7). Returns seconds from `now`, or nil when the value
    /// is unparseable or lies in the past: a date in the past usually means the clocks disagree,
    /// and then our own backoff is a better guide than "retry at once".
    public static func parseRetryAfter(_ value: String, now: Date) -> Double? {
        let text = value.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        if text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return Double(text)
        }
        guard let date = HTTPDate.parse(text, now: now) else { return nil }
        let seconds = date.timeIntervalSince(now)
        return seconds >= 0 ? seconds : nil
    }

    /// Statuses worth another try: 408 Request Timeout, 429 Too Many Requests and every 5xx.
    public static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 429 || (500...599).contains(status)
    }

    private static func nonNegative(_ value: Double) -> Double {
        value.isNaN ? 0 : max(0, value)
    }
}

/// The HTTP-date grammar of RFC 9110 §5.6.7, parsed by hand: DateFormatter's handling of two-digit
/// years and of locales differs between platforms, and these three fixed layouts need neither.
enum HTTPDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun",
                                 "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let shortDays: Set<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    private static let longDays: Set<String> = [
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    ]

    static func parse(_ text: String, now: Date) -> Date? {
        let tokens = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        if tokens.count == 6, tokens[0].hasSuffix(","), tokens[5] == "GMT",
           shortDays.contains(tokens[0].dropLast().lowercased()),
           let day = number(tokens[1], digits: 2...2), let month = month(tokens[2]),
           let year = number(tokens[3], digits: 4...4) {
            return date(year: year, month: month, day: day, time: tokens[4])
        }
        // rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT"
        if tokens.count == 4, tokens[0].hasSuffix(","), tokens[3] == "GMT",
           longDays.contains(tokens[0].dropLast().lowercased()) {
            let parts = tokens[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let day = number(parts[0], digits: 2...2),
                  let month = month(parts[1]), let shortYear = number(parts[2], digits: 2...2)
            else { return nil }
            return date(year: fullYear(shortYear, now: now), month: month, day: day, time: tokens[2])
        }
        // asctime-date: "Sun Nov  6 08:49:37 1994" (the day is space-padded, hence the split above)
        if tokens.count == 5, shortDays.contains(tokens[0].lowercased()), let month = month(tokens[1]),
           let day = number(tokens[2], digits: 1...2), let year = number(tokens[4], digits: 4...4) {
            return date(year: year, month: month, day: day, time: tokens[3])
        }
        return nil
    }

    /// ASCII digits only: `Int("+6")` would accept a sign, `isNumber` other scripts' digits.
    private static func number(_ text: String, digits: ClosedRange<Int>) -> Int? {
        guard digits.contains(text.utf8.count),
              text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return Int(text)
    }

    private static func month(_ name: String) -> Int? {
        months.firstIndex(of: name.lowercased()).map { $0 + 1 }
    }

    /// RFC 9110: a two-digit year more than 50 years in the future is the most recent past year
    /// with the same last two digits.
    private static func fullYear(_ shortYear: Int, now: Date) -> Int {
        let currentYear = civil(daysSinceEpoch: Int((now.timeIntervalSince1970 / 86_400).rounded(.down)))
        let century = currentYear - currentYear % 100
        var year = century + shortYear
        if year > currentYear + 50 { year -= 100 }
        return year
    }

    private static func date(year: Int, month: Int, day: Int, time: String) -> Date? {
        let fields = time.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 3, let hour = number(String(fields[0]), digits: 2...2),
              let minute = number(String(fields[1]), digits: 2...2),
              let second = number(String(fields[2]), digits: 2...2),
              hour < 24, minute < 60, second <= 60,  // 60: a leap second
              (1...daysIn(month: month, year: year)).contains(day)
        else { return nil }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        return Date(timeIntervalSince1970: Double(days * 86_400 + hour * 3600 + minute * 60 + second))
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Howard Hinnant's days_from_civil (proleptic Gregorian calendar).
    private static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The year of a day count, from Hinnant's civil_from_days.
    private static func civil(daysSinceEpoch days: Int) -> Int {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }
}
