import Foundation

/// Where the plugin database lives: `sqlite:///absolute/path.db`, or a MySQL/MariaDB database
/// (`mysql://user@host[:port]/dbname?socket=/path`, or read from wp-config.php), behind the same
/// interface. Its description is the DSN, never a password.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case mysql(MySQLLocation)

    /// Parses a DSN; the error names the source and what is wrong (never a password it may hold).
    /// A `mysql://` location has no credentials: `password_file` or `wp_config` supply them.
    public static func parse(_ dsn: String, source: String = "--db") throws(ConfigurationError) -> DatabaseLocation {
        if dsn.hasPrefix("mysql://") {
            return .mysql(try MySQLLocation.parse(dsn: dsn, source: source))
        }
        let prefix = "sqlite://"
        guard dsn.hasPrefix(prefix) else {
            // Whatever precedes an "@" may be a password.
            let shown = dsn.contains("@") ? "the value" : "'\(dsn)'"
            throw ConfigurationError(
                "\(source): \(shown) is not a database DSN (expected sqlite:///absolute/path.db or "
                    + "mysql://user@host[:port]/dbname)")
        }
        let path = String(dsn.dropFirst(prefix.count))
        guard path.hasPrefix("/"), path.count > 1 else {
            throw ConfigurationError("\(source): '\(dsn)' must name an absolute path (sqlite:///absolute/path.db)")
        }
        return .sqlite(path: SiteConfiguration.absolute(path))
    }

    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite://\(path)"
        case .mysql(let location): location.description
        }
    }

    /// For commands that read the journal of an install whose database they never open (`status`,
    /// `history` without a configuration).
    public static let notKnown = DatabaseLocation.sqlite(path: "/")
}

/// How the agent learns which plugin version the site really serves, and what it runs after each
/// swap (`version_url`, `version_expect`, `version_timeout_s`, `after_swap` in a `plugins[]` entry).
public struct LiveSiteSettings: Sendable, Equatable {
    /// A URL of the site whose body reports the plugin version it runs (any install, whatever its
    /// manifest's checks). After every swap, and after every rollback, the agent waits until it reports
    /// the expected version: "upgraded" and "rolled back" are said only once they are true.
    public var versionURL: String?
    /// What the body must contain, `{version}` standing for the version; "{version}" by default (the
    /// version standing alone: 4.0.1 is not found in 4.0.10).
    public var versionExpect: String
    public var versionTimeoutSeconds: Double
    /// A program (argv, absolute path first) run as the agent after every swap, before the site is
    /// asked: a php-fpm reload or an opcache reset, on hosts where opcache would serve old code.
    public var afterSwap: [String]
    /// How the live plugin path is switched (`swap` in agent.json; see `LiveTree`): `symlink` by
    /// default when `after_swap` is set, `exchange` otherwise.
    public var swapMode: SwapMode
    /// The site's document root (`site_root`), for the private site check of `stage`; nil finds a
    /// WordPress root around the plugin directory.
    public var siteRoot: String?
    /// `private_site_check`: false skips running the site with the staged release before the swap.
    public var privateSiteCheck: Bool = true

    public enum SwapMode: String, Sendable, Equatable {
        /// The plugin path is a directory, exchanged with the staged one.
        case exchange
        /// The plugin path is a link to a release directory, exchanged for a link to another: a
        /// request in flight keeps including from the release it started in. Needs `after_swap`.
        case symlink
    }

    public init(
        versionURL: String? = nil, versionExpect: String = "{version}", versionTimeoutSeconds: Double = 30,
        afterSwap: [String] = [], swapMode: SwapMode = .exchange
    ) {
        self.versionURL = versionURL
        self.versionExpect = versionExpect
        self.versionTimeoutSeconds = versionTimeoutSeconds
        self.afterSwap = afterSwap
        self.swapMode = swapMode
    }
}

extension LiveSiteSettings {
    /// An http(s) URL; plain http is the site's own business (it is usually on loopback).
    static func validate(url: String, source: String) throws(ConfigurationError) {
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), !url.contains(where: { $0.isWhitespace }) else {
            throw ConfigurationError("\(source): '\(url)' must be an http:// or https:// URL")
        }
    }
}

/// One plugin install on this host, and where the agent keeps its state.
public struct SiteConfiguration: Sendable, Equatable {
    public var pluginDirectory: String
    public var database: DatabaseLocation
    public var stateDirectory: String
    /// The site's table prefix (WordPress's `$table_prefix`): `{prefix}` in a manifest's tables, and
    /// what a plugin's namespace follows.
    public var tablePrefix: String
    public var live: LiveSiteSettings
    /// `allow_wide_grants` (`--allow-wide-grants`): lets migrations run with a MySQL account that
    /// can write outside the plugin's tables. Off by default: such an account would let a migration
    /// reach the shop's orders and users, which the confinement otherwise keeps out of reach.
    public var allowWideGrants: Bool

    public static let defaultTablePrefix = "wp_"

    public init(
        pluginDirectory: String, database: DatabaseLocation, stateDirectory: String,
        tablePrefix: String = SiteConfiguration.defaultTablePrefix, live: LiveSiteSettings = LiveSiteSettings(),
        allowWideGrants: Bool = false
    ) {
        self.pluginDirectory = pluginDirectory
        self.database = database
        self.stateDirectory = stateDirectory
        self.tablePrefix = tablePrefix
        self.live = live
        self.allowWideGrants = allowWideGrants
    }

    /// Letters, digits and "_", at most 64 characters; may be empty (tables without a prefix).
    public static func validateTablePrefix(_ prefix: String, source: String) throws(ConfigurationError) {
        let valid = prefix.count <= 64 && prefix.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
        }
        guard valid else {
            throw ConfigurationError(
                "\(source): table prefix '\(prefix)' must be letters, digits and '_' (at most 64), e.g. wp_")
        }
    }

    /// `path` made absolute and normalised lexically ("." and ".." removed, no trailing "/"), never by
    /// resolving symlinks: swift-corelibs-foundation's `standardizingPath` resolves them, so a symlink
    /// the web server's user planted at the plugin directory would silently redirect the agent, as
    /// root, to whatever directory it names.
    public static func absolute(_ path: String) -> String {
        let expanded = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var components: [Substring] = []
        for component in expanded.split(separator: "/") {
            switch component {
            case ".": continue
            case "..": if !components.isEmpty { components.removeLast() }
            default: components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }
}

/// A configuration or command-line problem: nothing was changed (exit 2).
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
