import Foundation
import MolamHTTP

/// Asks the live site over HTTP whether it serves what it should, polling within a deadline.
///
/// Right after a swap PHP's opcache may serve the old code for a few seconds (Debian's
/// `opcache.revalidate_freq=2`), so a site that still answers with the old version is waited for. A
/// site that answers 5xx or prints a PHP fatal error is broken, not late: after an upgrade's swap
/// that fails at once (`failFast`), since every second of waiting is a second of failed payments.
/// After a rollback it is waited for too: the broken code just swapped out may still be cached.
struct SiteProbe {
    struct Outcome: Sendable {
        var passed: Bool
        var detail: String
        var seconds: Double
    }

    var url: String
    var expectStatus: Int = 200
    /// Text the body must contain, `{version}` standing for `version`; nil checks the status only.
    var expectBody: String?
    var version: SemanticVersion
    var timeoutSeconds: Double
    var failFast: Bool

    func run() -> Outcome {
        let started = Date()
        let deadline = started.addingTimeInterval(timeoutSeconds)
        // Short polls: on a broken release every tenth of a second of waiting is payments failing.
        var delay = 0.02
        var detail = ""
        while true {
            if Signals.interruption != nil {
                // The run stops (its step reports the signal); waiting on would only delay that.
                return Outcome(
                    passed: false, detail: "stopped by a signal", seconds: Date().timeIntervalSince(started))
            }
            do {
                let client = try HTTPClient()
                var request = HTTPRequest(url: url)
                request.totalTimeout = max(0.5, min(10, deadline.timeIntervalSinceNow))
                request.connectTimeout = min(5, request.totalTimeout)
                // Only the start of a page is read; a site answering gigabytes gets no memory for them.
                request.maxBodyBytes = 1 << 20
                let response = try client.send(request)
                let body = String(decoding: response.body.prefix(65536), as: UTF8.self)
                let elapsed = Date().timeIntervalSince(started)
                if let broken = Self.brokenReason(status: response.status, body: body), response.status != expectStatus
                    || Self.fatalText(in: body) != nil
                {
                    detail = broken
                    if failFast { return Outcome(passed: false, detail: broken, seconds: elapsed) }
                } else if response.status != expectStatus {
                    detail = "HTTP \(response.status), expected \(expectStatus)"
                } else if let expectBody, !Self.body(body, contains: expectBody, version: version) {
                    let seen = Self.versionLike(in: body).map { " (it reports \($0))" } ?? ""
                    detail = "HTTP \(response.status) but the body does not contain "
                        + "'\(expectBody.replacingOccurrences(of: "{version}", with: version.description))'\(seen)"
                } else {
                    let waited = elapsed >= 0.05 ? String(format: " after %.1f s", elapsed) : ""
                    return Outcome(passed: true, detail: "HTTP \(response.status)\(waited)", seconds: elapsed)
                }
            } catch {
                detail = "\(error)"
            }
            if Date().addingTimeInterval(delay) >= deadline {
                return Outcome(
                    passed: false, detail: detail + " (still so after \(SmokeRunner.seconds(timeoutSeconds)))",
                    seconds: Date().timeIntervalSince(started))
            }
            Thread.sleep(forTimeInterval: delay)
            delay = min(delay * 2, 0.1)
        }
    }

    /// Why a response shows a broken site: a 5xx, or a PHP fatal error in the body (PHP with
    /// `display_errors` on answers 200 with the error printed).
    static func brokenReason(status: Int, body: String) -> String? {
        if let fatal = fatalText(in: body) { return "HTTP \(status): \(fatal)" }
        if (500...599).contains(status) { return "HTTP \(status) (server error)" }
        return nil
    }

    /// The first line of a PHP fatal error or of WordPress's critical-error page, if the body holds one.
    static func fatalText(in body: String) -> String? {
        let markers = [
            "There has been a critical error on this website", "Fatal error</b>:", "Parse error</b>:",
            "PHP Fatal error:", "PHP Parse error:", "Fatal error: ", "Parse error: ",
        ]
        for marker in markers {
            guard let range = body.range(of: marker) else { continue }
            let text = String(body[range.lowerBound...].prefix { $0 != "\n" }.prefix(2000))
            let line = text.replacingOccurrences(of: "<[^>]*>", with: " ", options: .regularExpression)
                .replacingOccurrences(of: "\\s+", with: " ", options: .regularExpression)
                .trimmingCharacters(in: .whitespaces)
            let named = line.hasPrefix("PHP ") || line.hasPrefix("Fatal error") || line.hasPrefix("Parse error")
            return (named ? "" : "PHP fatal error: ") + String(line.prefix(240))
        }
        return nil
    }

    /// Whether `body` holds `template` with `{version}` replaced, a version at either end of the
    /// template standing alone: "4.0.1" is not found in "4.0.10", nor "1.0" in "11.0".
    static func body(_ body: String, contains template: String, version: SemanticVersion) -> Bool {
        let needle = template.replacingOccurrences(of: "{version}", with: version.description)
        guard !needle.isEmpty else { return true }
        let checkBefore = template.hasPrefix("{version}"), checkAfter = template.hasSuffix("{version}")
        var searchStart = body.startIndex
        while let range = body.range(of: needle, range: searchStart..<body.endIndex) {
            let before = range.lowerBound > body.startIndex ? body[body.index(before: range.lowerBound)] : nil
            let after = range.upperBound < body.endIndex ? body[range.upperBound] : nil
            if !(checkBefore && before.map(isVersionCharacter) == true)
                && !(checkAfter && after.map(isVersionCharacter) == true)
                && !(checkAfter && after == "." && range.upperBound < body.endIndex
                    && body[body.index(after: range.upperBound)...].first.map { $0.isNumber } == true)
            {
                return true
            }
            searchStart = body.index(after: range.lowerBound)
        }
        return false
    }

    private static func isVersionCharacter(_ character: Character) -> Bool {
        character.isLetter || character.isNumber || character == "-" || character == "+" || character == "_"
    }

    /// The first thing in `body` that reads like a version ("4.0.1"), for messages.
    static func versionLike(in body: String) -> String? {
        guard let range = body.range(of: #"[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*"#, options: .regularExpression)
        else { return nil }
        return String(body[range].prefix(40))
    }
}
