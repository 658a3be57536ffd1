import Foundation

/// Where the plugin database lives. `sqlite:///absolute/path.db` now; `mysql://` later, behind the
/// same interface.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)

    /// Parses a DSN; the error names the DSN and what is wrong with it.
    public static func parse(_ dsn: String, source: String = "--db") throws(ConfigurationError) -> DatabaseLocation {
        let prefix = "sqlite://"
        guard dsn.hasPrefix(prefix) else {
            if dsn.hasPrefix("mysql://") {
                throw ConfigurationError("\(source): mysql:// databases are not supported yet; use sqlite:///PATH")
            }
            throw ConfigurationError("\(source): '\(dsn)' is not a database DSN (expected sqlite:///absolute/path.db)")
        }
        let path = String(dsn.dropFirst(prefix.count))
        guard path.hasPrefix("/"), path.count > 1 else {
            throw ConfigurationError("\(source): '\(dsn)' must name an absolute path (sqlite:///absolute/path.db)")
        }
        return .sqlite(path: (path as NSString).standardizingPath)
    }

    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite://\(path)"
        }
    }
}

/// One plugin install on this host, and where the agent keeps its state.
public struct SiteConfiguration: Sendable, Equatable {
    public var pluginDirectory: String
    public var database: DatabaseLocation
    public var stateDirectory: String

    public static let defaultConfigPath = "/etc/molam-upgrade/agent.json"
    public static let defaultStateDirectory = "/var/lib/molam-upgrade"

    public init(pluginDirectory: String, database: DatabaseLocation, stateDirectory: String) {
        self.pluginDirectory = pluginDirectory
        self.database = database
        self.stateDirectory = stateDirectory
    }

    /// Builds the configuration from command-line options, reading the config file only for what the
    /// options leave out. `--plugin-dir`, `--db` and `--state-dir` together need no file at all.
    public static func resolve(
        configPath: String?, pluginDirectory: String?, database: String?, stateDirectory: String?
    ) throws(ConfigurationError) -> SiteConfiguration {
        var file: ConfigFile?
        let needsFile = pluginDirectory == nil || database == nil || stateDirectory == nil
        if needsFile || configPath != nil {
            let path = configPath ?? defaultConfigPath
            if configPath != nil || FileManager.default.fileExists(atPath: path) {
                file = try ConfigFile.load(path: path)
            }
        }
        guard let plugin = pluginDirectory ?? file?.pluginDirectory else {
            throw ConfigurationError(
                "no plugin directory: pass --plugin-dir DIR or set plugins[0].plugin_dir in "
                    + (configPath ?? defaultConfigPath))
        }
        guard let dsn = database ?? file?.database else {
            throw ConfigurationError(
                "no plugin database: pass --db sqlite:///PATH or set plugins[0].db in " + (configPath ?? defaultConfigPath))
        }
        let location = try DatabaseLocation.parse(dsn, source: database != nil ? "--db" : (file?.path ?? "config"))
        let state = stateDirectory ?? file?.stateDirectory ?? defaultStateDirectory
        return SiteConfiguration(
            pluginDirectory: absolute(plugin), database: location, stateDirectory: absolute(state))
    }

    static func absolute(_ path: String) -> String {
        let expanded = path.hasPrefix("/")
            ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        var standardized = (expanded as NSString).standardizingPath
        while standardized.count > 1 && standardized.hasSuffix("/") { standardized.removeLast() }
        return standardized
    }
}

/// The agent's configuration file (`agent.json`). This release reads the local keys; the central
/// API's keys (`merchant_id`, `api_url`, …) are accepted and checked when that client lands.
struct ConfigFile {
    let path: String
    let pluginDirectory: String?
    let database: String?
    let stateDirectory: String?

    static func load(path: String) throws(ConfigurationError) -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("\(path): cannot be read (missing or unreadable)")
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ConfigurationError("\(path): is not a JSON object")
        }
        let known: Set<String> = [
            "merchant_id", "country", "tier", "api_url", "token_file", "state_dir", "release_public_keys", "plugins",
        ]
        if let unknown = root.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigurationError("\(path): key '\(unknown)' is not a known setting")
        }
        var plugin: String?
        var database: String?
        if let raw = root["plugins"] {
            guard let plugins = raw as? [[String: Any]] else {
                throw ConfigurationError("\(path): key 'plugins' must be a list of objects")
            }
            if let first = plugins.first {
                if let unknown = first.keys.sorted().first(where: { !["name", "plugin_dir", "db"].contains($0) }) {
                    throw ConfigurationError("\(path): key 'plugins[0].\(unknown)' is not a known setting")
                }
                guard first["plugin_dir"] == nil || first["plugin_dir"] is String else {
                    throw ConfigurationError("\(path): key 'plugins[0].plugin_dir' must be a string")
                }
                guard first["db"] == nil || first["db"] is String else {
                    throw ConfigurationError("\(path): key 'plugins[0].db' must be a string")
                }
                plugin = first["plugin_dir"] as? String
                database = first["db"] as? String
            }
        }
        guard root["state_dir"] == nil || root["state_dir"] is String else {
            throw ConfigurationError("\(path): key 'state_dir' must be a string")
        }
        return ConfigFile(
            path: path, pluginDirectory: plugin, database: database, stateDirectory: root["state_dir"] as? String)
    }
}

/// A configuration or command-line problem: nothing was changed (exit 2).
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
