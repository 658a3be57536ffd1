import Foundation

/// Scheme, host and port of an http(s) URL, parsed strictly: anything unusual in the authority
/// (user info, a backslash, spaces) makes it nil, and nil never matches, so the token is withheld
/// whenever this parser and libcurl's could disagree about where a request goes.
struct Origin: Equatable {
    let scheme: String
    let host: String
    let port: Int

    init?(_ url: String) {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let defaultPort: Int
        switch scheme {
        case "https": defaultPort = 443
        case "http": defaultPort = 80
        default: return nil
        }
        guard !authority.isEmpty,
              authority.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }),
              !authority.contains("@"), !authority.contains("\\"), !authority.contains("%")
        else { return nil }
        var host = Substring(authority)
        var port = defaultPort
        let portSeparator = authority.hasPrefix("[")
            ? authority.range(of: "]:").map { authority.index(before: $0.upperBound) }
            : authority.lastIndex(of: ":")
        if let colon = portSeparator {
            let digits = authority[authority.index(after: colon)...]
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let number = Int(digits), number > 0, number <= 65_535
            else { return nil }
            host = authority[..<colon]
            port = number
        }
        guard !host.isEmpty else { return nil }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
    }
}
