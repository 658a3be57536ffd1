import Foundation

/// The client's text rules: what may go on the wire (the token, a path segment) and what may go
/// into a message (a URL without its secrets, the first words of an error body, a duration).
extension CentralAPI {
    static func checkToken(_ token: String) throws(CentralAPIError) {
        guard !token.isEmpty else {
            throw .invalidToken("the central API token is empty; check the token file")
        }
        let clean = token.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f }
        guard clean else {
            throw .invalidToken("the central API token contains a line break, a space or another "
                + "character a header cannot carry (a token file's trailing newline?); it was not sent")
        }
    }

    /// Percent-encodes one path segment (everything but RFC 3986's unreserved characters), for
    /// callers building POST paths from ids the API returned.
    public static func pathComponent(_ raw: String) -> String {
        var encoded = ""
        for byte in raw.utf8 {
            let isUnreserved = (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || (byte >= 0x30 && byte <= 0x39) || byte == 0x2d || byte == 0x2e || byte == 0x5f
                || byte == 0x7e
            if isUnreserved {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += String(format: "%%%02X", byte)
            }
        }
        return encoded
    }

    /// A URL for messages: no user info, the query and fragment cut (signed CDN URLs carry secrets
    /// there), no control characters.
    static func redact(_ url: String) -> String {
        var text = String(url.unicodeScalars.filter { $0.properties.generalCategory != .control }
            .map(Character.init))
        if let cut = text.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            text = String(text[..<cut]) + "?…"
        }
        if let schemeEnd = text.range(of: "://") {
            let authorityEnd = text[schemeEnd.upperBound...].firstIndex(of: "/") ?? text.endIndex
            if let at = text[schemeEnd.upperBound..<authorityEnd].lastIndex(of: "@") {
                text.removeSubrange(schemeEnd.upperBound...at)
            }
        }
        return text
    }

    /// At most 200 characters of an error body on one line, for the operator to see what the API
    /// said. Non-printable characters become spaces so a body cannot forge extra log lines; the
    /// token is cut out before the text is shortened, so no part of it survives at the cut.
    static func snippet(_ body: Data, hiding secret: String) -> String {
        var flattened = ""
        let text = String(decoding: body.prefix(4096), as: UTF8.self)
        for scalar in text.replacingOccurrences(of: secret, with: "(token)").unicodeScalars {
            let breaksLine = scalar.properties.generalCategory == .control
                || scalar.properties.generalCategory == .lineSeparator
                || scalar.properties.generalCategory == .paragraphSeparator
            flattened.unicodeScalars.append(breaksLine ? " " : scalar)
        }
        let words = flattened.split(separator: " ", omittingEmptySubsequences: true)
        let line = words.joined(separator: " ")
        guard !line.isEmpty else { return "" }
        return line.count > 200 ? ": \(line.prefix(200))…" : ": \(line)"
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? "\(Int(value)) s" : String(format: "%.2f s", value)
    }
}
