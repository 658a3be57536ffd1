import Foundation
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// A private temporary directory, removed at the end of the test.
private final class Scratch {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mysql-config-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        try write(name, Data(text.utf8), mode: mode)
    }

    @discardableResult
    func write(_ name: String, _ data: Data, mode: Int = 0o600) throws -> String {
        let file = path + "/" + name
        try data.write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
        return file
    }
}

/// `ok`, recording the error when it is not the one expected (so a failure shows the message).
private func explains(_ error: any Error, _ ok: Bool) -> Bool {
    if !ok { Issue.record("unexpected error: \(error)") }
    return ok
}

/// A wp-config.php as a host would have it; `database` replaces the four DB_ lines.
private func wpConfig(
    name: String = "'shop'", user: String = "'shopuser'", password: String = "'s3cr3t-Pa55'",
    host: String = "'localhost'", extra: String = "", prefix: String = "$table_prefix = 'wp_';"
) -> String {
    """
    <?php
    /** The name of the database for WordPress */
    define( 'DB_NAME', \(name) );
    define( 'DB_USER', \(user) );
    define( 'DB_PASSWORD', \(password) );
    define( 'DB_HOST', \(host) );
    define( 'DB_CHARSET', 'utf8mb4' );
    \(extra)
    \(prefix)
    require_once ABSPATH . 'wp-settings.php';
    """
}

private func parse(_ text: String, path: String = "/srv/shop/wp-config.php") throws -> WordPressConfig {
    try WordPressConfig.parse(Array(text.utf8), path: path)
}

@Suite("MySQL configuration: DSNs")
struct MySQLDSNTests {
    @Test("Good mysql:// DSNs parse, and their description reads back the same", arguments: [
        ("mysql://wp@localhost/shop",
         MySQLLocation(user: "wp", host: "localhost", database: "shop")),
        ("mysql://wp@db.example.com:3307/shop",
         MySQLLocation(user: "wp", host: "db.example.com", port: 3307, database: "shop")),
        ("mysql://wp@localhost/shop?socket=/run/mysqld/mysqld.sock",
         MySQLLocation(user: "wp", host: "localhost", socket: "/run/mysqld/mysqld.sock", database: "shop")),
        ("mysql://wp@localhost/shop?socket=/run/mysqld/mysqld.sock&charset=utf8",
         MySQLLocation(user: "wp", host: "localhost", socket: "/run/mysqld/mysqld.sock", database: "shop",
                       charset: "utf8")),
        ("mysql://wp@127.0.0.1:3306/shop?charset=latin1",
         MySQLLocation(user: "wp", host: "127.0.0.1", port: 3306, database: "shop", charset: "latin1")),
        ("mysql://wp@[::1]:3306/shop",
         MySQLLocation(user: "wp", host: "::1", port: 3306, database: "shop")),
        ("mysql://shop%40owner@localhost/my%20shop",
         MySQLLocation(user: "shop@owner", host: "localhost", database: "my shop")),
    ])
    func parses(dsn: String, expected: MySQLLocation) throws {
        let location = try DatabaseLocation.parse(dsn)
        #expect(location == .mysql(expected))
        #expect(try DatabaseLocation.parse(location.description) == location)
    }

    @Test("Bad mysql:// DSNs are refused with a reason", arguments: [
        ("mysql://localhost/shop", "no user"),
        ("mysql://@localhost/shop", "no valid user"),
        ("mysql://wp@localhost", "no database"),
        ("mysql://wp@localhost/", "no valid database"),
        ("mysql://wp@localhost/a/b", "no valid database"),
        ("mysql://wp@/shop", "no valid host"),
        ("mysql://wp@localhost:0/shop", "port"),
        ("mysql://wp@localhost:65536/shop", "port"),
        ("mysql://wp@localhost:33o6/shop", "port"),
        ("mysql://wp@localhost:/shop", "port"),
        ("mysql://wp@[::1/shop", "']'"),
        ("mysql://wp@localhost/shop?socket=run/mysqld.sock", "absolute path"),
        ("mysql://wp@db.example.com/shop?socket=/run/mysqld/mysqld.sock", "only with host localhost"),
        ("mysql://wp@localhost/shop?timeout=3", "unknown mysql:// DSN parameter 'timeout'"),
        ("mysql://wp@localhost/shop?socket=/a&socket=/b", "more than once"),
        ("mysql://wp@localhost/shop?charset=", "needs a value"),
        ("mysql://wp@localhost/shop?charset=utf8;drop", "charset"),
        ("mysql://wp@localhost/sh%zzop", "no valid database"),
    ])
    func refuses(dsn: String, reason: String) {
        #expect {
            _ = try DatabaseLocation.parse(dsn, source: "agent.json: key 'plugins[0].db'")
        } throws: { error in
            "\(error)".contains(reason) && "\(error)".contains("key 'plugins[0].db'")
        }
    }

    @Test("A password in the URL is refused, pointing at password_file, without repeating it",
          arguments: ["mysql://wp:hunter2-pw@localhost/shop", "mysql://wp:hunter2-pw@db:3306/shop?timeout=1",
                      "postgres://wp:hunter2-pw@localhost/shop"])
    func passwordInURL(dsn: String) {
        #expect {
            _ = try DatabaseLocation.parse(dsn)
        } throws: { error in
            !"\(error)".contains("hunter2-pw")
                && (dsn.hasPrefix("postgres") || "\(error)".contains("password_file"))
        }
    }

    @Test("The description never holds a password, wherever it comes from")
    func descriptionHasNoPassword() {
        let location = MySQLLocation(
            user: "wp", host: "localhost", database: "shop", credentials: .passwordFile("/etc/molam-upgrade/db-pass"))
        #expect(location.description == "mysql://wp@localhost/shop")
        #expect(DatabaseLocation.mysql(location).description == "mysql://wp@localhost/shop")
    }

    @Test("A MySQL server that cannot be reached is named by its DSN")
    func unreachableServer() {
        #expect {
            _ = try PluginDatabases.open(.mysql(MySQLLocation(
                user: "wp", socket: "/nonexistent/mysqld.sock", database: "shop")))
        } throws: { error in
            "\(error)".contains("mysql://wp@localhost/shop") && "\(error)".contains("cannot connect")
        }
    }
}

@Suite("MySQL configuration: password file")
struct MySQLPasswordFileTests {
    @Test("A 0600 password file is read without its newline")
    func readsPrivateFile() throws {
        let scratch = try Scratch()
        let file = try scratch.write("db-pass", "pa ss'word\n")
        let location = MySQLLocation(user: "wp", database: "shop", credentials: .passwordFile(file))
        #expect(try location.password() == "pa ss'word")
        let stricter = try scratch.write("db-pass-400", "pw\n", mode: 0o400)
        #expect(try MySQLLocation(user: "wp", database: "shop", credentials: .passwordFile(stricter)).password() == "pw")
        #expect(try MySQLLocation(user: "wp", database: "shop").password() == nil)
    }

    @Test("Group- or world-readable password files are refused, naming chmod", arguments: [0o644, 0o640, 0o604, 0o660])
    func refusesOpenModes(mode: Int) throws {
        let scratch = try Scratch()
        let file = try scratch.write("db-pass", "open-secret-pw\n", mode: mode)
        #expect {
            _ = try MySQLLocation(user: "wp", database: "shop", credentials: .passwordFile(file)).password()
        } throws: { error in
            "\(error)".contains(file) && "\(error)".contains("chmod 600") && !"\(error)".contains("open-secret-pw")
        }
    }

    @Test("A symbolic link, a directory, an empty file or a multi-line file is refused")
    func refusesOddFiles() throws {
        let scratch = try Scratch()
        let target = try scratch.write("real", "linked-secret-pw\n")
        let link = scratch.path + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let directory = scratch.path + "/dir"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let empty = try scratch.write("empty", "\n")
        let twoLines = try scratch.write("two", "first-secret\nsecond\n")
        for (file, reason) in [(link, "symbolic link"), (directory, "not a regular file"), (empty, "empty"),
                               (twoLines, "control characters")] {
            #expect {
                _ = try MySQLLocation(user: "wp", database: "shop", credentials: .passwordFile(file)).password()
            } throws: { error in
                explains(error, "\(error)".contains(reason) && !"\(error)".contains("secret"))
            }
        }
    }

    @Test("A password file owned by another user is refused")
    func refusesOtherOwner() throws {
        let scratch = try Scratch()
        let file = try scratch.write("db-pass", "pw\n")
        var info = stat()
        #expect(lstat(file, &info) == 0)
        info.st_uid = 1234
        #expect(throws: ConfigurationError.self) {
            try MySQLLocation.checkPasswordFile(info, path: file, runningUser: 0)
        }
        // The agent's own user (not root) may own it.
        #expect(throws: Never.self) { try MySQLLocation.checkPasswordFile(info, path: file, runningUser: 1234) }
    }
}

@Suite("MySQL configuration: wp-config.php")
struct WordPressConfigTests {
    @Test("Debian's wp-config-sample.php reads as its placeholders say")
    func debianSample() throws {
        let sample = "/usr/share/wordpress/wp-config-sample.php"
        guard FileManager.default.fileExists(atPath: sample) else { return }
        let config = try WordPressConfig.read(path: sample)
        #expect(config.location == MySQLLocation(
            user: "username_here", host: "localhost", database: "database_name_here", charset: "utf8",
            credentials: .wpConfig(sample)))
        #expect(config.password == "password_here")
        #expect(config.tablePrefix == "wp_")
    }

    @Test("A real-looking file: comments, odd spacing, double quotes, a custom prefix")
    func realLooking() throws {
        let text = #"""
            <!-- stray text before the tag is output, not code: define('DB_NAME', 'html'); -->
            <?PHP
            // define('DB_NAME', 'commented_out');
            # define('DB_USER', 'commented_out');
            /* define('DB_PASSWORD', 'commented_out');
               $table_prefix = 'nope_'; */
            /** MySQL settings - You can get this info from your web host ** */
            DEFINE   (  "DB_NAME"  ,  "shop_db"  )  ;
            define('DB_USER','shop_user');
            Define( 'DB_PASSWORD', "tab\there \"quoted\" \\ and \$dollar and \x41\101\u{e9}" );
            define( 'DB_HOST', "localhost:/run/mysqld/mysqld.sock" ); // the socket
            define( 'DB_CHARSET', '' );
            define( 'DB_COLLATE', '' );
            define( 'AUTH_KEY', 'a;b)c"d' );
            define( 'DB_NAME', 'second_define_is_ignored' );
            $message = "a string with define('DB_USER', 'inside') in it";
            $table_prefix  = "shop7_" ;
            if ( ! defined( 'ABSPATH' ) ) {
            	define( 'ABSPATH', __DIR__ . '/' );
            }
            require_once ABSPATH . 'wp-settings.php';
            """#
        let config = try parse(text)
        #expect(config.location == MySQLLocation(
            user: "shop_user", host: "localhost", socket: "/run/mysqld/mysqld.sock", database: "shop_db",
            credentials: .wpConfig("/srv/shop/wp-config.php")))
        #expect(config.password == "tab\there \"quoted\" \\ and $dollar and AA\u{e9}")
        #expect(config.tablePrefix == "shop7_")
        #expect(!"\(config)".contains("tab\there"))
        var dumped = ""
        dump(config, to: &dumped)
        #expect(!dumped.contains("quoted"))
    }

    @Test("Single-quoted strings keep backslashes except \\\\ and \\'")
    func singleQuotes() throws {
        let config = try parse(wpConfig(password: #"'it\'s a \\ back\slash \n'"#))
        #expect(config.password == #"it's a \ back\slash \n"#)
    }

    @Test("DB_HOST forms", arguments: [
        ("localhost", "localhost", nil, nil),
        ("localhost:3307", "localhost", 3307, nil),
        ("localhost:/run/mysqld/mysqld.sock", "localhost", nil, "/run/mysqld/mysqld.sock"),
        ("127.0.0.1:3306", "127.0.0.1", 3306, nil),
        ("db.example.com", "db.example.com", nil, nil),
        ("[::1]:3306", "::1", 3306, nil),
        (":/path/sock", "localhost", nil, "/path/sock"),
    ] as [(String, String, Int?, String?)])
    func hostForms(text: String, host: String, port: Int?, socket: String?) throws {
        let config = try parse(wpConfig(host: "'\(text)'"))
        #expect(config.location.host == host)
        #expect(config.location.port == port)
        #expect(config.location.socket == socket)
        #expect(config.location.charset == "utf8mb4")
    }

    @Test("Values PHP would compute are refused, naming the key and line", arguments: [
        (wpConfig(password: "getenv('WP_DB_PASSWORD')"), "line 5: DB_PASSWORD", "expression"),
        (wpConfig(password: #""pa$word""#), "line 5: DB_PASSWORD", "interpolation"),
        (wpConfig(password: #""pa{$x['y']}d""#), "line 5: DB_PASSWORD", "interpolation"),
        (wpConfig(password: "'abc' . 'def'"), "line 5: DB_PASSWORD", "expression"),
        (wpConfig(name: "MY_DB_NAME"), "line 3: DB_NAME", "expression"),
        (wpConfig(host: "`hostname`"), "line 6: DB_HOST", "backticks"),
        (wpConfig(prefix: "$table_prefix = getenv('PREFIX');"), "line 9: $table_prefix", "expression"),
        (wpConfig(prefix: "$table_prefix = 'wp_';\n$table_prefix .= 'x';"), "line 10: $table_prefix", "expression"),
        (wpConfig(prefix: "$table_prefix = \"wp_$site\";"), "line 9: $table_prefix", "interpolation"),
    ])
    func refusesExpressions(text: String, key: String, reason: String) {
        #expect {
            _ = try parse(text)
        } throws: { error in
            "\(error)".contains(key) && "\(error)".contains(reason) && "\(error)".contains("/srv/shop/wp-config.php")
                && !"\(error)".contains("WP_DB_PASSWORD") && !"\(error)".contains("pa$word")
        }
    }

    @Test("Missing or malformed settings are refused without their values", arguments: [
        (wpConfig().replacingOccurrences(of: "define( 'DB_NAME', 'shop' );", with: ""), "DB_NAME is not defined"),
        (wpConfig(user: "''"), "line 4: DB_USER is empty"),
        (wpConfig(host: "'localhost:port-s3cr3t'"), "line 6: DB_HOST is not a host"),
        (wpConfig(host: "'db.example.com:/run/mysqld.sock'"), "only with host localhost"),
        (wpConfig(prefix: "$table_prefix = 'wp-s3cr3t';"), "line 9: $table_prefix must be letters"),
        (wpConfig() + "\n$x = 'unterminated s3cr3t", "line 11: a quoted string is never closed"),
    ])
    func refusesBadSettings(text: String, reason: String) {
        #expect {
            _ = try parse(text)
        } throws: { error in
            explains(error, "\(error)".contains(reason) && !"\(error)".contains("s3cr3t"))
        }
    }

    @Test("The first define wins, as in PHP; a later expression for the same key is ignored")
    func firstDefineWins() throws {
        let config = try parse(wpConfig(extra: "define('DB_PASSWORD', getenv('X'));\ndefine('DB_NAME', 'other');"))
        #expect(config.password == "s3cr3t-Pa55")
        #expect(config.location.database == "shop")
    }

    @Test("A heredoc elsewhere does not confuse the reader")
    func heredoc() throws {
        let config = try parse(wpConfig(extra: "$x = <<<EOT\ndefine('DB_NAME', 'in_heredoc');\n  EOT;\n"))
        #expect(config.location.database == "shop")
    }

    @Test("A file larger than 1 MiB, a binary file, a directory or a FIFO is refused without content")
    func refusesNonConfigFiles() throws {
        let scratch = try Scratch()
        let big = try scratch.write("big.php", wpConfig() + "\n//" + String(repeating: "x", count: 2 << 20), mode: 0o644)
        var binary = Data(wpConfig().utf8)
        binary.append(contentsOf: [0, 0xff, 0xfe, 0x7f, 0x00] + Array("binary-s3cr3t".utf8))
        let binaryFile = try scratch.write("binary.php", binary, mode: 0o644)
        let fifo = scratch.path + "/fifo.php"
        #expect(mkfifo(fifo, 0o600) == 0)
        for (file, reason) in [(big, "larger than 1 MiB"), (binaryFile, "not a text file"),
                               (scratch.path, "not a regular file"), (fifo, "not a regular file"),
                               (scratch.path + "/missing.php", "cannot read")] {
            #expect {
                _ = try WordPressConfig.read(path: file)
            } throws: { error in
                explains(error, "\(error)".contains(file) && "\(error)".contains(reason)
                    && !"\(error)".contains("s3cr3t") && !"\(error)".contains("shop"))
            }
        }
    }

    @Test("A symbolic link to wp-config.php is followed; its password is read at open time")
    func symlinkAndPassword() throws {
        let scratch = try Scratch()
        let real = try scratch.write("wp-config-real.php", wpConfig(), mode: 0o640)
        let link = scratch.path + "/wp-config.php"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: real)
        let config = try WordPressConfig.read(path: link)
        #expect(config.location.credentials == .wpConfig(link))
        #expect(try config.location.password() == "s3cr3t-Pa55")
        // Read again when opened: a changed password is the one used.
        try scratch.write("wp-config-real.php", wpConfig(password: "'rotated'"), mode: 0o640)
        #expect(try config.location.password() == "rotated")
    }

    @Test("No error description holds the password")
    func passwordNeverInErrors() throws {
        let secret = "Zq9-unique-password-!x"
        let texts = [
            wpConfig(password: "'\(secret)'", host: "'bad host'"),
            wpConfig(password: "'\(secret)'", prefix: "$table_prefix = '\(secret)';"),
            wpConfig(name: "''", password: "'\(secret)'"),
            wpConfig(password: "\"\(secret)$x\""),
            wpConfig(password: "'\(secret)' . getenv('X')"),
            "<?php define('DB_PASSWORD', \"\(secret)\\0\");" + wpConfig().dropFirst(5),
            "<?php define('DB_USER', '\(secret)\u{1}');" + wpConfig().dropFirst(5),
        ]
        for text in texts {
            do {
                _ = try parse(text)
                Issue.record("parsed: expected an error")
            } catch {
                #expect(!"\(error)".contains(secret), "\(error)")
            }
        }
    }
}

@Suite("MySQL configuration: agent.json and options")
struct MySQLAgentConfigurationTests {
    private func configFile(_ scratch: Scratch, _ plugin: String) throws -> String {
        try scratch.write("agent-\(UUID()).json", #"{"plugins": [{"name": "molam-form", "plugin_dir": "/srv/p", "#
            + plugin + "}]}")
    }

    @Test("password_file beside a mysql db; allow_wide_grants reaches the site")
    func passwordFile() throws {
        let scratch = try Scratch()
        let path = try configFile(scratch, #""db": "mysql://wp@localhost/shop", "password_file": "/etc/molam/db-pass", "allow_wide_grants": true"#)
        let configuration = try AgentConfiguration.load(path: path)
        let site = try #require(configuration.sites.first)
        #expect(site.database == .mysql(MySQLLocation(
            user: "wp", host: "localhost", database: "shop", credentials: .passwordFile("/etc/molam/db-pass"))))
        #expect(site.allowWideGrants)
        #expect(site.tablePrefix == "wp_")
    }

    @Test("wp_config stands in for db and brings the table prefix; an explicit table_prefix wins")
    func wordPressConfig() throws {
        let scratch = try Scratch()
        let wp = try scratch.write("wp-config.php", wpConfig(prefix: "$table_prefix = 'shop7_';"), mode: 0o644)
        let path = try configFile(scratch, #""wp_config": "\#(wp)""#)
        let site = try #require(try AgentConfiguration.load(path: path).sites.first)
        #expect(site.database == .mysql(MySQLLocation(
            user: "shopuser", host: "localhost", database: "shop", charset: "utf8mb4", credentials: .wpConfig(wp))))
        #expect(site.tablePrefix == "shop7_")
        #expect(!site.allowWideGrants)
        #expect(!"\(site.database)".contains("s3cr3t"))
        let explicit = try configFile(scratch, #""wp_config": "\#(wp)", "table_prefix": "wp_""#)
        #expect(try AgentConfiguration.load(path: explicit).sites.first?.tablePrefix == "wp_")
        let overridden = try AgentConfiguration.resolve(
            configPath: path, pluginDirectory: nil, database: nil, stateDirectory: "/s", tablePrefix: "")
        #expect(overridden.sites.first?.tablePrefix == "")
    }

    @Test("Bad plugins[] entries name the file and the key", arguments: [
        (#""db": "mysql://wp@localhost/shop", "wp_config": "/srv/wp-config.php""#,
         "key 'plugins[0].db' and 'plugins[0].wp_config' both name the database"),
        (#""db": "sqlite:///srv/site.db", "password_file": "/etc/pw""#,
         "key 'plugins[0].password_file': a password file goes with a mysql:// database"),
        (#""wp_config": "/srv/wp-config.php", "password_file": "/etc/pw""#, "key 'plugins[0].password_file'"),
        (#""db": "mysql://wp@localhost/shop", "password_file": "etc/pw""#,
         "key 'plugins[0].password_file' must be an absolute path"),
        (#""wp_config": "wp-config.php""#, "key 'plugins[0].wp_config' must be an absolute path"),
        (#""db": "mysql://wp@localhost/shop", "allow_wide_grants": "yes""#,
         "key 'plugins[0].allow_wide_grants' must be true or false"),
        (#""db": "sqlite:///srv/site.db", "allow_wide_grants": true"#,
         "key 'plugins[0].allow_wide_grants': applies to a MySQL database only"),
        (#""db": "mysql://wp:pw@localhost/shop""#, "key 'plugins[0].db': the mysql:// DSN holds a password"),
        (#""table_prefix": "wp_""#, "key 'plugins[0].db' is missing"),
    ])
    func refuses(entry: String, message: String) throws {
        let scratch = try Scratch()
        let wp = try scratch.write("wp-config.php", wpConfig(), mode: 0o644)
        let path = try configFile(scratch, entry.replacingOccurrences(of: "/srv/wp-config.php", with: wp))
        #expect {
            _ = try AgentConfiguration.load(path: path)
        } throws: { error in
            explains(error, "\(error)".hasPrefix(path + ": ") && "\(error)".contains(message)
                && !"\(error)".contains("\n"))
        }
    }

    @Test("A wp-config.php problem found while loading agent.json names wp-config.php and the line")
    func wordPressProblemWhileLoading() throws {
        let scratch = try Scratch()
        let wp = try scratch.write("wp-config.php", wpConfig(password: "getenv('DB_PW')"), mode: 0o644)
        let path = try configFile(scratch, #""wp_config": "\#(wp)""#)
        #expect {
            _ = try AgentConfiguration.load(path: path)
        } throws: { error in
            "\(error)".contains(wp + ": line 5: DB_PASSWORD")
        }
    }

    @Test("--wp-config, --db-password-file and --allow-wide-grants")
    func options() throws {
        let scratch = try Scratch()
        let wp = try scratch.write("wp-config.php", wpConfig(prefix: "$table_prefix = 'shop7_';"), mode: 0o644)
        let fromWordPress = try AgentConfiguration.resolve(
            configPath: nil, pluginDirectory: "/srv/p", database: nil, stateDirectory: "/s", wordPressConfig: wp,
            allowWideGrants: true)
        let site = try #require(fromWordPress.sites.first)
        #expect(site.database == .mysql(MySQLLocation(
            user: "shopuser", database: "shop", charset: "utf8mb4", credentials: .wpConfig(wp))))
        #expect(site.tablePrefix == "shop7_")
        #expect(site.allowWideGrants)
        let prefixed = try AgentConfiguration.resolve(
            configPath: nil, pluginDirectory: "/srv/p", database: nil, stateDirectory: "/s", tablePrefix: "x_",
            wordPressConfig: wp)
        #expect(prefixed.sites.first?.tablePrefix == "x_")

        let withFile = try AgentConfiguration.resolve(
            configPath: nil, pluginDirectory: "/srv/p", database: "mysql://wp@db.example.com:3307/shop",
            stateDirectory: "/s", databasePasswordFile: "/etc/molam/db-pass")
        #expect(withFile.sites.first?.database == .mysql(MySQLLocation(
            user: "wp", host: "db.example.com", port: 3307, database: "shop",
            credentials: .passwordFile("/etc/molam/db-pass"))))
        #expect(withFile.sites.first?.allowWideGrants == false)

        let refused: [(() throws -> AgentConfiguration, String)] = [
            ({ try AgentConfiguration.resolve(configPath: nil, pluginDirectory: "/p", database: "sqlite:///a.db",
                                              stateDirectory: "/s", wordPressConfig: wp) }, "--db and --wp-config"),
            ({ try AgentConfiguration.resolve(configPath: nil, pluginDirectory: "/p", database: "sqlite:///a.db",
                                              stateDirectory: "/s", databasePasswordFile: "/pw") },
             "--db-password-file: a password file goes with a mysql:// database"),
            ({ try AgentConfiguration.resolve(configPath: nil, pluginDirectory: "/p", database: nil,
                                              stateDirectory: "/s", databasePasswordFile: "/pw", wordPressConfig: wp) },
             "--db-password-file: the database comes from wp-config.php"),
            ({ try AgentConfiguration.resolve(configPath: nil, pluginDirectory: "/p", database: "sqlite:///a.db",
                                              stateDirectory: "/s", allowWideGrants: true) },
             "--allow-wide-grants: applies to a MySQL database only"),
        ]
        for (resolve, message) in refused {
            #expect {
                _ = try resolve()
            } throws: { error in
                explains(error, "\(error)".contains(message))
            }
        }
    }
}
