import Foundation

/// `molam-plugin.json`: what a plugin release says about itself.
public struct PluginManifest: Sendable, Equatable {
    public static let fileName = "molam-plugin.json"

    public var name: String
    public var version: SemanticVersion
    /// The database tables the plugin owns; exactly these are backed up and restored. `{prefix}`
    /// stands for the site's table prefix until `resolvingTables(prefix:)` replaces it.
    public var tables: [String]
    /// The plugin's table namespace after the site's table prefix ("molam_" → `wp_molam_…`); new
    /// tables of a release must be inside it. Nil in manifests written before it existed.
    public var namespace: String?
    /// Paths (relative; a trailing "/" marks a directory) that belong to the merchant: carried from
    /// the live tree into every staged one, never replaced by a release's copy.
    public var preserve: [String]
    /// Folder of `NNNN_name.sql` migrations, relative to the plugin directory.
    public var migrations: String?
    /// Checks run after the swap, against the live site (`verify`).
    public var smoke: [SmokeCheck]
    /// `php_lint_skip`: files (or folders, with a trailing "/") the PHP syntax check of `stage` leaves
    /// out, relative to the plugin: code for a newer PHP that is never loaded here, a dependency's
    /// deliberately broken test fixtures.
    public var phpLintSkip: [String] = []
    /// Command checks marked `"when": "before_swap"`: run in `stage` against the staged tree, before
    /// anything changes, so a release that cannot even load is refused without a failed payment.
    public var beforeSwap: [SmokeCheck]

    public init(
        name: String, version: SemanticVersion, tables: [String], migrations: String? = nil,
        smoke: [SmokeCheck] = [], namespace: String? = nil, preserve: [String] = [], beforeSwap: [SmokeCheck] = []
    ) {
        self.name = name
        self.version = version
        self.tables = tables
        self.migrations = migrations
        self.smoke = smoke
        self.beforeSwap = beforeSwap
        self.namespace = namespace
        self.preserve = preserve
    }

    /// The manifest with `{prefix}` in its table names and its `sql` checks' queries replaced by the
    /// site's table prefix.
    public func resolvingTables(prefix: String) -> PluginManifest {
        var resolved = self
        resolved.tables = tables.map { $0.replacing("{prefix}", with: prefix) }
        func resolve(_ check: SmokeCheck) -> SmokeCheck {
            guard case .sql(let query, let expect, let timeout) = check else { return check }
            return .sql(query: query.replacing("{prefix}", with: prefix), expect: expect, timeoutSeconds: timeout)
        }
        resolved.smoke = smoke.map(resolve)
        resolved.beforeSwap = beforeSwap.map(resolve)
        return resolved
    }

    /// Reads the manifest at the top of a plugin directory.
    public static func load(pluginDirectory: String) throws(ManifestError) -> PluginManifest {
        let path = (pluginDirectory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ManifestError(source: path, field: nil, problem: "cannot be read (missing or unreadable)")
        }
        return try parse(data, source: path)
    }

    /// Parses and validates a manifest; every problem names the source and the field.
    public static func parse(_ data: Data, source: String) throws(ManifestError) -> PluginManifest {
        guard data.count <= 1 << 20 else {
            throw ManifestError(source: source, field: nil, problem: "is larger than 1 MiB")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ManifestError(source: source, field: nil, problem: "is not valid JSON")
        }
        guard let root = object as? [String: Any] else {
            throw ManifestError(source: source, field: nil, problem: "must be a JSON object")
        }
        let fields = JSONFields(root, source: source, path: "")
        try fields.rejectUnknown([
            "name", "version", "tables", "migrations", "smoke", "description", "namespace", "preserve",
            "php_lint_skip",
        ])
        let name = try fields.string("name")
        guard Self.isValidName(name) else {
            throw ManifestError(
                source: source, field: "name", problem: "must be lowercase letters, digits, '-' or '_'")
        }
        let versionText = try fields.string("version")
        guard let version = SemanticVersion(versionText) else {
            throw ManifestError(
                source: source, field: "version", problem: "'\(versionText)' is not a semantic version")
        }
        let tables = try fields.optionalStringArray("tables") ?? []
        for (index, table) in tables.enumerated() where table.isEmpty || table.contains("\0") {
            throw ManifestError(source: source, field: "tables[\(index)]", problem: "is not a table name")
        }
        let migrations = try fields.optionalString("migrations")
        if let migrations, migrations.hasPrefix("/") || migrations.split(separator: "/").contains("..") {
            throw ManifestError(
                source: source, field: "migrations", problem: "must be a folder inside the plugin")
        }
        var smoke: [SmokeCheck] = [], beforeSwap: [SmokeCheck] = []
        for (index, entry) in (try fields.optionalObjectArray("smoke") ?? []).enumerated() {
            let checkFields = JSONFields(entry, source: source, path: "smoke[\(index)].")
            let check = try SmokeCheck.parse(checkFields)
            switch try checkFields.optionalString("when") ?? "after_swap" {
            case "after_swap":
                smoke.append(check)
            case "before_swap":
                guard case .command = check else {
                    throw checkFields.error(
                        "when", "'before_swap' is for command checks only (sql and http checks need the live site)")
                }
                beforeSwap.append(check)
            case let other:
                throw checkFields.error("when", "'\(other)' is not one of before_swap, after_swap")
            }
        }
        let namespace = try fields.optionalString("namespace")
        if let namespace, !isValidNamespace(namespace) {
            throw ManifestError(
                source: source, field: "namespace",
                problem: "'\(namespace)' must start with a letter and hold only letters, digits and '_' "
                    + "(at most 64)")
        }
        let preserve = try fields.relativePaths(
            "preserve", rules: "no '/' at the start, no '..' or '.', not empty")
        let lintSkip = try fields.relativePaths("php_lint_skip", rules: "no '/' at the start, no '..' or '.'")
        var manifest = PluginManifest(
            name: name, version: version, tables: tables, migrations: migrations, smoke: smoke,
            namespace: namespace, preserve: preserve, beforeSwap: beforeSwap)
        manifest.phpLintSkip = lintSkip
        return manifest
    }

    static func isValidNamespace(_ namespace: String) -> Bool {
        guard let first = namespace.unicodeScalars.first, first.isASCIILetter, namespace.count <= 64 else {
            return false
        }
        return namespace.unicodeScalars.allSatisfy { $0.isASCIILetter || ("0"..."9").contains($0) || $0 == "_" }
    }

    /// "certs/" or "config.local.php": relative, every component a real name.
    static func isValidPreservedPath(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/"), !path.contains("\0"), path.utf8.count <= 1024 else {
            return false
        }
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        let components = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        return !components.isEmpty && components.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    /// What a release may not ship although an installed manifest may still hold it: a smoke command
    /// that is not a path inside the plugin. Refused in `stage` (exit 4); an installed manifest with one
    /// still loads, so the site can take the release that fixes it, and the check itself fails at run
    /// time with the same words.
    public func releaseProblem() -> ManifestError? {
        for (index, check) in (smoke + beforeSwap).enumerated() {
            guard case .command(let run, _) = check, let first = run.first,
                  let problem = SmokeCommand.problem(with: first) else { continue }
            let field = index < smoke.count ? "smoke[\(index)].run" : "before_swap[\(index - smoke.count)].run"
            return ManifestError(
                source: "release \(name) \(version): \(Self.fileName)", field: field, problem: problem)
        }
        return nil
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 100
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}

/// One smoke check from the manifest.
public enum SmokeCheck: Sendable, Equatable {
    /// Runs a program from the plugin directory; exit status 0 passes.
    case command(run: [String], timeoutSeconds: Double)
    /// Runs a read-only query against the plugin database; passes when it runs (and, if `expect`
    /// is given, when the first column of the first row equals it).
    case sql(query: String, expect: String?, timeoutSeconds: Double)
    /// Fetches a URL; passes on `expectStatus` (and, if given, a body containing `expectBody`, in
    /// which `{version}` stands for the version being verified). Retried until the timeout, since
    /// opcache may serve the old code for a few seconds after a swap.
    case http(url: String, expectStatus: Int, expectBody: String?, timeoutSeconds: Double)

    public var kind: String {
        switch self {
        case .command: "command"
        case .sql: "sql"
        case .http: "http"
        }
    }

    public var summary: String {
        switch self {
        case .command(let run, _): run.joined(separator: " ")
        case .sql(let query, _, _): query
        case .http(let url, let status, _, _): "GET \(url) → \(status)"
        }
    }

    static func parse(_ fields: JSONFields) throws(ManifestError) -> SmokeCheck {
        let type = try fields.string("type")
        let timeout = try fields.optionalNumber("timeout_s")
        if let timeout, !(timeout > 0 && timeout <= 3600) {
            throw fields.error("timeout_s", "must be between 0 and 3600 seconds")
        }
        switch type {
        case "command":
            try fields.rejectUnknown(["type", "run", "timeout_s", "name", "when"])
            guard let run = try fields.optionalStringArray("run"), let first = run.first, !first.isEmpty else {
                throw fields.error("run", "must be a non-empty list of strings")
            }
            return .command(run: run, timeoutSeconds: timeout ?? 30)
        case "sql":
            try fields.rejectUnknown(["type", "query", "expect", "timeout_s", "name", "when"])
            return .sql(query: try fields.string("query"), expect: try fields.optionalString("expect"),
                        timeoutSeconds: timeout ?? 10)
        case "http":
            try fields.rejectUnknown(["type", "url", "expect_status", "expect_body", "timeout_s", "name", "when"])
            let url = try fields.string("url")
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw fields.error("url", "must be an http:// or https:// URL")
            }
            let status = try fields.optionalNumber("expect_status").map { Int($0) } ?? 200
            guard (100...599).contains(status) else { throw fields.error("expect_status", "must be 100–599") }
            return .http(url: url, expectStatus: status, expectBody: try fields.optionalString("expect_body"),
                         timeoutSeconds: timeout ?? 30)
        default:
            throw fields.error("type", "'\(type)' is not one of command, sql, http")
        }
    }
}

/// A manifest that cannot be used: where, which field, and what is wrong.
public struct ManifestError: Error, CustomStringConvertible, Sendable, Equatable {
    public let source: String
    public let field: String?
    public let problem: String

    public var description: String {
        if let field { return "\(source): field '\(field)' \(problem)" }
        return "\(source) \(problem)"
    }
}

/// Typed access to a decoded JSON object, with errors that name the file and the key.
struct JSONFields {
    let object: [String: Any]
    let source: String
    let path: String

    init(_ object: [String: Any], source: String, path: String) {
        self.object = object
        self.source = source
        self.path = path
    }

    func error(_ key: String, _ problem: String) -> ManifestError {
        ManifestError(source: source, field: path + key, problem: problem)
    }

    func rejectUnknown(_ known: Set<String>) throws(ManifestError) {
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw ManifestError(source: source, field: path + unknown, problem: "is not a known field")
        }
    }

    func string(_ key: String) throws(ManifestError) -> String {
        guard let value = try optionalString(key) else { throw error(key, "is missing") }
        return value
    }

    func optionalString(_ key: String) throws(ManifestError) -> String? {
        guard let raw = object[key], !(raw is NSNull) else { return nil }
        guard let value = raw as? String else { throw error(key, "must be a string") }
        return value
    }

    func optionalNumber(_ key: String) throws(ManifestError) -> Double? {
        guard let raw = object[key], !(raw is NSNull) else { return nil }
        if let number = raw as? Int { return Double(number) }
        if let number = raw as? Double { return number }
        throw error(key, "must be a number")
    }

    /// `preserve` and `php_lint_skip`: paths inside the plugin (`isValidPreservedPath`); `rules`
    /// words the refusal.
    func relativePaths(_ key: String, rules: String) throws(ManifestError) -> [String] {
        let paths = try optionalStringArray(key) ?? []
        for (index, path) in paths.enumerated() where !PluginManifest.isValidPreservedPath(path) {
            throw error("\(key)[\(index)]", "'\(path)' must be a relative path inside the plugin (\(rules))")
        }
        return paths
    }

    func optionalStringArray(_ key: String) throws(ManifestError) -> [String]? {
        guard let raw = object[key], !(raw is NSNull) else { return nil }
        guard let values = raw as? [Any] else { throw error(key, "must be a list of strings") }
        var strings: [String] = []
        for value in values {
            guard let string = value as? String else { throw error(key, "must be a list of strings") }
            strings.append(string)
        }
        return strings
    }

    func optionalObjectArray(_ key: String) throws(ManifestError) -> [[String: Any]]? {
        guard let raw = object[key], !(raw is NSNull) else { return nil }
        guard let values = raw as? [Any] else { throw error(key, "must be a list of objects") }
        var objects: [[String: Any]] = []
        for value in values {
            guard let object = value as? [String: Any] else { throw error(key, "must be a list of objects") }
            objects.append(object)
        }
        return objects
    }
}
