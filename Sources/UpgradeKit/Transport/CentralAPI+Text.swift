import Foundation
import MolamHTTP

/// The client's text rules: what may go on the wire (the token) and what may go into a message
/// (the first words of an error body, a duration). URLs in messages and path segments follow
/// MolamHTTP's `URLText`.
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
