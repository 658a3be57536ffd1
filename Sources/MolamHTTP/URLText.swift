import Foundation

/// URLs as text, the same for every caller: how a URL may appear in a message, and how one path
/// segment is written into a URL.
public enum URLText {
    /// A URL for messages and logs, parseable or not: no user info, the query and fragment cut to
    /// `?…` (signed CDN URLs carry secrets there), and no control or format characters, so the
    /// message stays one honest line.
    public static func redacted(_ url: String) -> String {
        var text = String(url.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) })
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

    /// Percent-encodes one path segment: everything but RFC 3986's unreserved characters, so a
    /// name or an id the API returned can never add a segment, a query or a fragment.
    public static func pathSegment(_ raw: String) -> String {
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
}
