import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One plugin install on this host (`plugins[]` in agent.json). One host may carry several shops.
/// Only `AgentConfiguration` builds one, through the memberwise initializer; the site it becomes is a
/// `SiteConfiguration`.
public struct PluginInstall: Sendable, Equatable {
    /// The plugin's name as its manifest gives it; nil when only `--plugin-dir` named the install.
    public var name: String?
    public var pluginDirectory: String
    public var database: DatabaseLocation
    /// `table_prefix` in agent.json; else wp-config.php's `$table_prefix` with `wp_config`; else `wp_`.
    public var tablePrefix: String = SiteConfiguration.defaultTablePrefix
    public var live: LiveSiteSettings = LiveSiteSettings()
    /// `allow_wide_grants` (MySQL only): see `SiteConfiguration.allowWideGrants`.
    public var allowWideGrants: Bool = false
}

/// The host-wide settings that talk to the central API: who this merchant is and how to reach it.
public struct AgentSettings: Sendable, Equatable {
    public var merchantID: String?
    public var country: String?
    public var tier: String?
    /// The central API's base URL; nil for a host (or a CI job) that works from local archives only.
    public var apiURL: String?
    /// A file holding the bearer token. The token is read when needed, never kept in the configuration.
    public var tokenFile: String?
    /// Ed25519 keys (`ed25519:<base64>`) that release metadata must be signed with; empty accepts
    /// unsigned releases (checksums are still required).
    public var releasePublicKeys: [String]
    /// The file these settings came from, for messages.
    public var source: String?
    /// `php`: the PHP binary that checks the syntax of a release's PHP files in `stage`; nil looks
    /// in /usr/bin, /usr/local/bin and /bin.
    public var php: String?
    /// `php_lint`: false turns the PHP syntax check off (a host whose PHP differs from the web
    /// server's, say).
    public var phpLint: Bool = true

    public init(
        merchantID: String? = nil, country: String? = nil, tier: String? = nil, apiURL: String? = nil,
        tokenFile: String? = nil, releasePublicKeys: [String] = [], source: String? = nil
    ) {
        self.merchantID = merchantID
        self.country = country
        self.tier = tier
        self.apiURL = apiURL
        self.tokenFile = tokenFile
        self.releasePublicKeys = releasePublicKeys
        self.source = source
    }

    /// Reads the bearer token. The file must belong to no group or other reader: a token anyone on
    /// a shared host can read is a token anyone can use. A trailing newline is dropped; any other
    /// control character is refused (it would split the HTTP header). The token itself never
    /// appears in an error.
    public func readToken() throws(ConfigurationError) -> String {
        guard let path = tokenFile else {
            throw ConfigurationError("\(source ?? "configuration"): key 'token_file' is required with 'api_url'")
        }
        try AgentConfiguration.checkPrivate(path, what: "token file")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("token file \(path) cannot be read")
        }
        var token = String(decoding: data, as: UTF8.self)
        while let last = token.last, last == "\n" || last == "\r" { token.removeLast() }
        guard !token.isEmpty else { throw ConfigurationError("token file \(path) is empty") }
        guard !token.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw ConfigurationError("token file \(path) holds control characters; it must hold the token on one line")
        }
        return token
    }
}

/// The agent's whole configuration: `agent.json` (or `--config`), with command-line options laid
/// over it. `--plugin-dir`, `--db` and `--state-dir` together need no file at all (CI use).
public struct AgentConfiguration: Sendable, Equatable {
    public static let defaultPath = "/etc/molam-upgrade/agent.json"
    public static let defaultStateDirectory = "/var/lib/molam-upgrade"

    public var settings: AgentSettings
    public var stateDirectory: String
    public var installs: [PluginInstall]

    public init(settings: AgentSettings, stateDirectory: String, installs: [PluginInstall]) {
        self.settings = settings
        self.stateDirectory = stateDirectory
        self.installs = installs
    }

    /// One site per install, sharing the state directory (one lock, one journal).
    public var sites: [SiteConfiguration] {
        installs.map {
            SiteConfiguration(
                pluginDirectory: $0.pluginDirectory, database: $0.database, stateDirectory: stateDirectory,
                tablePrefix: $0.tablePrefix, live: $0.live, allowWideGrants: $0.allowWideGrants)
        }
    }

    /// Builds the configuration. The file is read when `configPath` is given, or when the options
    /// leave something out and the default file exists. `--plugin-dir`/`--db` (or `--wp-config`,
    /// which stands in for `--db`) replace the file's installs with one; `plugin` (`--plugin
    /// NAME|DIR`) keeps only the install it names. `--db-password-file` and `--allow-wide-grants`
    /// apply to the one install left.
    public static func resolve(
        configPath: String?, pluginDirectory: String?, database: String?, stateDirectory: String?,
        plugin selector: String? = nil, tablePrefix: String? = nil, versionURL: String? = nil,
        databasePasswordFile: String? = nil, wordPressConfig: String? = nil, allowWideGrants: Bool = false
    ) throws(ConfigurationError) -> AgentConfiguration {
        if database != nil && wordPressConfig != nil {
            throw ConfigurationError("--db and --wp-config both name the database; give one")
        }
        var file: AgentConfiguration?
        let namesDatabase = database != nil || wordPressConfig != nil
        let needsFile = pluginDirectory == nil || !namesDatabase || stateDirectory == nil
        let path = configPath ?? defaultPath
        if configPath != nil || (needsFile && FileManager.default.fileExists(atPath: path)) {
            file = try load(path: path)
        }
        var installs = file?.installs ?? []
        if pluginDirectory != nil || namesDatabase {
            let base = installs.count == 1 ? installs[0] : nil
            guard let directory = pluginDirectory ?? base?.pluginDirectory else {
                throw ConfigurationError(
                    "\(wordPressConfig == nil ? "--db" : "--wp-config") needs --plugin-dir (or a config file with "
                        + "exactly one plugin)")
            }
            let location: DatabaseLocation
            var prefix = base?.tablePrefix ?? SiteConfiguration.defaultTablePrefix
            if let wordPressConfig {
                let wordPress = try WordPressConfig.read(path: SiteConfiguration.absolute(wordPressConfig))
                location = .mysql(wordPress.location)
                // The site's own prefix comes with its database; --table-prefix below still wins.
                prefix = wordPress.tablePrefix ?? SiteConfiguration.defaultTablePrefix
            } else if let database {
                location = try DatabaseLocation.parse(database, source: "--db")
            } else if let base {
                location = base.database
            } else {
                throw ConfigurationError(
                    "no plugin database: pass --db sqlite:///PATH (or --wp-config PATH) or set plugins[0].db in \(path)")
            }
            installs = [PluginInstall(
                name: base?.name, pluginDirectory: SiteConfiguration.absolute(directory), database: location,
                tablePrefix: prefix, live: base?.live ?? LiveSiteSettings(),
                allowWideGrants: base?.allowWideGrants ?? false)]
        }
        if let versionURL {
            try LiveSiteSettings.validate(url: versionURL, source: "--version-url")
            guard installs.count == 1 || selector != nil else {
                throw ConfigurationError("--version-url needs --plugin-dir or --plugin when several plugins are configured")
            }
            for index in installs.indices { installs[index].live.versionURL = versionURL }
        }
        if let tablePrefix {
            try SiteConfiguration.validateTablePrefix(tablePrefix, source: "--table-prefix")
            guard installs.count == 1 || selector != nil else {
                throw ConfigurationError(
                    "--table-prefix needs --plugin-dir or --plugin when several plugins are configured")
            }
            for index in installs.indices { installs[index].tablePrefix = tablePrefix }
        }
        guard !installs.isEmpty else {
            throw ConfigurationError(
                "no plugin install: pass --plugin-dir DIR --db sqlite:///PATH, or list 'plugins' in \(path)")
        }
        if let selector {
            let wanted = selector.hasPrefix("/") ? SiteConfiguration.absolute(selector) : selector
            installs = installs.filter { $0.name == wanted || $0.pluginDirectory == wanted }
            guard !installs.isEmpty else {
                throw ConfigurationError("--plugin: no configured plugin install is named or located at '\(selector)'")
            }
        }
        if let databasePasswordFile {
            guard installs.count == 1 else {
                throw ConfigurationError(
                    "--db-password-file needs --plugin-dir or --plugin when several plugins are configured")
            }
            installs[0].database = try withPasswordFile(
                installs[0].database, SiteConfiguration.absolute(databasePasswordFile), source: "--db-password-file")
        }
        if allowWideGrants {
            guard installs.count == 1 else {
                throw ConfigurationError(
                    "--allow-wide-grants needs --plugin-dir or --plugin when several plugins are configured")
            }
            try checkWideGrants(installs[0].database, source: "--allow-wide-grants")
            installs[0].allowWideGrants = true
        }
        let state = stateDirectory ?? file?.stateDirectory ?? defaultStateDirectory
        return AgentConfiguration(
            settings: file?.settings ?? AgentSettings(), stateDirectory: SiteConfiguration.absolute(state),
            installs: installs)
    }

    /// Reads and checks `agent.json`. Every problem names the file and the key.
    public static func load(path: String) throws(ConfigurationError) -> AgentConfiguration {
        try checkPrivate(path, what: "configuration file")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("\(path): cannot be read (missing or unreadable)")
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ConfigurationError("\(path): is not a JSON object")
        }
        let reader = KeyReader(path: path, object: root, prefix: "")
        try reader.refuseUnknown([
            "merchant_id", "country", "tier", "api_url", "token_file", "state_dir", "release_public_keys", "plugins",
            "php", "php_lint",
        ])
        var settings = AgentSettings(source: path)
        settings.merchantID = try reader.string("merchant_id")
        if let merchant = settings.merchantID {
            guard UUID(uuidString: merchant) != nil else {
                throw ConfigurationError("\(path): key 'merchant_id' ('\(merchant)') is not a UUID")
            }
        }
        settings.country = try reader.string("country")
        settings.tier = try reader.string("tier")
        settings.apiURL = try reader.string("api_url")
        settings.tokenFile = try reader.string("token_file").map(SiteConfiguration.absolute)
        settings.releasePublicKeys = try reader.strings("release_public_keys") ?? []
        if let php = try reader.string("php") {
            guard php.hasPrefix("/") else {
                throw ConfigurationError("\(path): key 'php' ('\(php)') must be an absolute path, e.g. /usr/bin/php")
            }
            settings.php = php
        }
        if let lint = root["php_lint"] {
            guard let flag = lint as? Bool else {
                throw ConfigurationError("\(path): key 'php_lint' must be true or false")
            }
            settings.phpLint = flag
        }
        for (index, key) in settings.releasePublicKeys.enumerated() {
            do {
                _ = try ReleasePublicKey(text: key)
            } catch {
                throw ConfigurationError("\(path): key 'release_public_keys[\(index)]': \(error)")
            }
        }
        if let url = settings.apiURL {
            guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
                throw ConfigurationError("\(path): key 'api_url' ('\(url)') must be an https:// URL")
            }
            for key in ["merchant_id", "token_file"] where root[key] == nil {
                throw ConfigurationError("\(path): key '\(key)' is required with 'api_url'")
            }
        }
        let state = try reader.string("state_dir")
        guard let plugins = root["plugins"] else {
            throw ConfigurationError("\(path): key 'plugins' is missing (a list of {name, plugin_dir, db})")
        }
        guard let list = plugins as? [[String: Any]], !list.isEmpty else {
            throw ConfigurationError("\(path): key 'plugins' must be a non-empty list of objects")
        }
        var installs: [PluginInstall] = []
        for (index, entry) in list.enumerated() {
            let item = KeyReader(path: path, object: entry, prefix: "plugins[\(index)].")
            try item.refuseUnknown([
                "name", "plugin_dir", "db", "table_prefix", "version_url", "version_expect", "version_timeout_s",
                "after_swap", "swap", "site_root", "private_site_check", "password_file", "wp_config",
                "allow_wide_grants",
            ])
            let name = try item.required("name")
            let directory = SiteConfiguration.absolute(try item.required("plugin_dir"))
            let key = "\(path): key 'plugins[\(index)]"
            var location: DatabaseLocation
            var prefix = SiteConfiguration.defaultTablePrefix
            switch (try item.string("db"), try item.string("wp_config")) {
            case (let dsn?, nil):
                location = try DatabaseLocation.parse(dsn, source: "\(key).db'")
            case (nil, let wordPressPath?):
                guard wordPressPath.hasPrefix("/") else {
                    throw ConfigurationError("\(key).wp_config' must be an absolute path, e.g. /var/www/html/wp-config.php")
                }
                let wordPress = try WordPressConfig.read(path: SiteConfiguration.absolute(wordPressPath))
                location = .mysql(wordPress.location)
                prefix = wordPress.tablePrefix ?? prefix
            case (nil, nil):
                throw ConfigurationError(
                    "\(key).db' is missing (or give 'plugins[\(index)].wp_config', the site's wp-config.php)")
            case (_?, _?):
                throw ConfigurationError(
                    "\(key).db' and 'plugins[\(index)].wp_config' both name the database; keep one")
            }
            if let passwordFile = try item.string("password_file") {
                guard passwordFile.hasPrefix("/") else {
                    throw ConfigurationError("\(key).password_file' must be an absolute path")
                }
                location = try withPasswordFile(
                    location, SiteConfiguration.absolute(passwordFile), source: "\(key).password_file'")
            }
            var allowWideGrants = false
            if let raw = entry["allow_wide_grants"] {
                guard let flag = raw as? Bool else {
                    throw ConfigurationError("\(key).allow_wide_grants' must be true or false")
                }
                if flag { try checkWideGrants(location, source: "\(key).allow_wide_grants'") }
                allowWideGrants = flag
            }
            if installs.contains(where: { $0.pluginDirectory == directory }) {
                throw ConfigurationError("\(path): key 'plugins[\(index)].plugin_dir' repeats \(directory)")
            }
            if let raw = entry["table_prefix"] {
                // Unlike other keys it may be empty: a site whose tables have no prefix.
                guard let text = raw as? String else {
                    throw ConfigurationError("\(path): key 'plugins[\(index)].table_prefix' must be a string")
                }
                try SiteConfiguration.validateTablePrefix(
                    text, source: "\(path): key 'plugins[\(index)].table_prefix'")
                prefix = text
            }
            var live = LiveSiteSettings()
            if let url = try item.string("version_url") {
                try LiveSiteSettings.validate(url: url, source: "\(path): key 'plugins[\(index)].version_url'")
                live.versionURL = url
            }
            if let expect = try item.string("version_expect") {
                guard expect.contains("{version}") else {
                    throw ConfigurationError(
                        "\(path): key 'plugins[\(index)].version_expect' must contain {version}, e.g. \"version\":\"{version}\"")
                }
                live.versionExpect = expect
            }
            if let raw = entry["version_timeout_s"] {
                guard let seconds = (raw as? NSNumber)?.doubleValue, seconds > 0, seconds <= 3600 else {
                    throw ConfigurationError(
                        "\(path): key 'plugins[\(index)].version_timeout_s' must be a number of seconds, 0–3600")
                }
                live.versionTimeoutSeconds = seconds
            }
            if let command = try item.strings("after_swap") {
                guard let first = command.first, first.hasPrefix("/"), !command.contains(where: { $0.contains("\0") }) else {
                    throw ConfigurationError(
                        "\(path): key 'plugins[\(index)].after_swap' must be a command as a list, its program an "
                            + "absolute path, e.g. [\"/usr/sbin/service\", \"php8.2-fpm\", \"reload\"]")
                }
                live.afterSwap = command
            }
            // With a hook to reset opcache, links are the better swap (no request mixes two releases);
            // `swap: exchange` keeps a plain directory.
            if !live.afterSwap.isEmpty { live.swapMode = .symlink }
            if let mode = try item.string("swap") {
                guard let swapMode = LiveSiteSettings.SwapMode(rawValue: mode) else {
                    throw ConfigurationError("\(path): key 'plugins[\(index)].swap' ('\(mode)') must be exchange or symlink")
                }
                // Measured: through a switched link, opcache serves the old release until it is reset.
                guard swapMode == .exchange || !live.afterSwap.isEmpty else {
                    throw ConfigurationError(
                        "\(path): key 'plugins[\(index)].swap' symlink needs 'after_swap' (a php-fpm reload, or a "
                            + "request to a page calling opcache_reset()): PHP's opcache keeps serving the old "
                            + "release through a switched link until it is reset")
                }
                live.swapMode = swapMode
            }
            if let root = try item.string("site_root") {
                guard root.hasPrefix("/") else {
                    throw ConfigurationError("\(path): key 'plugins[\(index)].site_root' must be an absolute path")
                }
                live.siteRoot = SiteConfiguration.absolute(root)
            }
            if let raw = entry["private_site_check"] {
                guard let flag = raw as? Bool else {
                    throw ConfigurationError("\(path): key 'plugins[\(index)].private_site_check' must be true or false")
                }
                live.privateSiteCheck = flag
            }
            installs.append(PluginInstall(
                name: name, pluginDirectory: directory, database: location, tablePrefix: prefix, live: live,
                allowWideGrants: allowWideGrants))
        }
        return AgentConfiguration(
            settings: settings, stateDirectory: state ?? defaultStateDirectory, installs: installs)
    }

    /// `location` with its password read from `file`: only a `mysql://` DSN takes one.
    static func withPasswordFile(
        _ location: DatabaseLocation, _ file: String, source: String
    ) throws(ConfigurationError) -> DatabaseLocation {
        guard case .mysql(var mysql) = location else {
            throw ConfigurationError(
                "\(source): a password file goes with a mysql:// database, not \(location)")
        }
        guard case .wpConfig = mysql.credentials else {
            mysql.credentials = .passwordFile(file)
            return .mysql(mysql)
        }
        throw ConfigurationError(
            "\(source): the database comes from wp-config.php, which gives the password; give one or the other")
    }

    /// Wide grants are a MySQL matter: SQLite has no accounts.
    static func checkWideGrants(_ location: DatabaseLocation, source: String) throws(ConfigurationError) {
        guard case .mysql = location else {
            throw ConfigurationError("\(source): applies to a MySQL database only, not \(location)")
        }
    }

    /// Refuses a file that its group or other users can read or write (mode & 077): the token, and
    /// the configuration that says where to send it and which keys to trust.
    static func checkPrivate(_ path: String, what: String) throws(ConfigurationError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigurationError("\(what) \(path): \(String(cString: strerror(errno)))")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ConfigurationError(
                "\(what) \(path) is readable or writable by group or others (mode \(String(mode, radix: 8))); "
                    + "run: chmod 600 \(path)")
        }
    }
}

/// Typed reads of a JSON object's keys, naming the file and the full key on any problem.
private struct KeyReader {
    let path: String
    let object: [String: Any]
    let prefix: String

    func refuseUnknown(_ known: Set<String>) throws(ConfigurationError) {
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigurationError("\(path): key '\(prefix)\(unknown)' is not a known setting")
        }
    }

    func string(_ key: String) throws(ConfigurationError) -> String? {
        guard let value = object[key] else { return nil }
        guard let text = value as? String, !text.isEmpty else {
            throw ConfigurationError("\(path): key '\(prefix)\(key)' must be a non-empty string")
        }
        return text
    }

    func required(_ key: String) throws(ConfigurationError) -> String {
        guard let text = try string(key) else {
            throw ConfigurationError("\(path): key '\(prefix)\(key)' is missing")
        }
        return text
    }

    func strings(_ key: String) throws(ConfigurationError) -> [String]? {
        guard let value = object[key] else { return nil }
        guard let list = value as? [String] else {
            throw ConfigurationError("\(path): key '\(prefix)\(key)' must be a list of strings")
        }
        return list
    }
}
