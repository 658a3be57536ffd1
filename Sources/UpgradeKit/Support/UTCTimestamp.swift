import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The agent's UTC timestamps, written and read by hand with gmtime_r(3) and timegm(3).
///
/// Not `ISO8601DateFormatter` or `DateFormatter`: on Linux both go through ICU (CFDateFormatter,
/// `udat_*`), and the first one a process makes pages in ICU's calendar, time zone and locale data,
/// about 6–8 MiB of resident memory for fixed-format UTC text (measured: 16 MiB for a bare
/// Foundation program, 24 MiB once it formats one date). Every run writes timestamps, so that was a
/// fifth of the agent's peak memory.
public enum UTCTimestamp {
    /// `2024-01-31T23:59:59.123Z` (milliseconds, truncated) or, without `milliseconds`,
    /// `2024-01-31T23:59:59Z`: RFC 3339, fixed width for years 1000–9999, so text order is time order.
    public static func string(_ date: Date, milliseconds: Bool) -> String {
        let (fields, millisecond) = brokenDown(date)
        var text = pad(Int(fields.tm_year) + 1900, 4) + "-" + pad(Int(fields.tm_mon) + 1, 2) + "-"
            + pad(Int(fields.tm_mday), 2) + "T" + pad(Int(fields.tm_hour), 2) + ":" + pad(Int(fields.tm_min), 2)
            + ":" + pad(Int(fields.tm_sec), 2)
        if milliseconds { text += "." + pad(millisecond, 3) }
        return text + "Z"
    }

    /// `20240131T235959Z`: the basic format, for names of files and folders.
    public static func compact(_ date: Date) -> String {
        let (fields, _) = brokenDown(date)
        return pad(Int(fields.tm_year) + 1900, 4) + pad(Int(fields.tm_mon) + 1, 2) + pad(Int(fields.tm_mday), 2)
            + "T" + pad(Int(fields.tm_hour), 2) + pad(Int(fields.tm_min), 2) + pad(Int(fields.tm_sec), 2) + "Z"
    }

    /// Reads what `string(_:milliseconds: true)` writes (`YYYY-MM-DDTHH:MM:SS.fffZ`, one to nine
    /// fraction digits); nil for anything else.
    public static func date(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        // YYYY-MM-DDTHH:MM:SS . at least one digit Z
        guard bytes.count >= 22, bytes.last == UInt8(ascii: "Z") else { return nil }
        func number(_ start: Int, _ count: Int) -> Int? {
            var value = 0
            for byte in bytes[start..<start + count] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        let separators: [(Int, Character)] = [(4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, ".")]
        for (index, character) in separators where bytes[index] != character.asciiValue { return nil }
        let fractionDigits = bytes.count - 21
        guard fractionDigits <= 9,
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              let fraction = number(20, fractionDigits),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var fields = tm()
        fields.tm_year = Int32(year - 1900)
        fields.tm_mon = Int32(month - 1)
        fields.tm_mday = Int32(day)
        fields.tm_hour = Int32(hour)
        fields.tm_min = Int32(minute)
        fields.tm_sec = Int32(second)
        let seconds = timegm(&fields)
        // timegm normalises out-of-range fields (31 February): refuse those instead.
        guard fields.tm_mday == Int32(day), fields.tm_mon == Int32(month - 1) else { return nil }
        var scale = 1.0
        for _ in 0..<fractionDigits { scale *= 10 }
        return Date(timeIntervalSince1970: Double(seconds) + Double(fraction) / scale)
    }

    private static func brokenDown(_ date: Date) -> (tm, millisecond: Int) {
        let interval = date.timeIntervalSince1970
        let whole = interval.rounded(.down)
        var seconds = time_t(whole)
        // Truncated, never rounded up into the next second; the guard absorbs floating-point edges.
        let millisecond = min(999, max(0, Int(((interval - whole) * 1000).rounded(.down))))
        var fields = tm()
        gmtime_r(&seconds, &fields)
        return (fields, millisecond)
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
