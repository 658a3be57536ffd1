// swift-tools-version:6.0
// molam-upgrade: safe upgrades of the Molam payment plugin. No Swift package dependencies:
// Foundation plus five system C libraries, each imported by exactly one thin wrapper target.
import PackageDescription

let package = Package(
    name: "molam-upgrade",
    products: [
        .executable(name: "molam-upgrade", targets: ["molam-upgrade"]),
        .library(name: "UpgradeKit", targets: ["UpgradeKit"]),
    ],
    targets: [
        // System libraries (Debian packages named in `providers`).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CMariaDB", pkgConfig: "libmariadb", providers: [.apt(["libmariadb-dev"])]),
        // What Swift cannot call directly (renameat2 needs _GNU_SOURCE).
        .target(name: "CSupport"),

        // Thin wrappers: the only code that sees the C libraries.
        .target(name: "MolamSQLite", dependencies: ["CSQLite"]),
        .target(name: "MolamArchive", dependencies: ["CArchive"]),
        .target(name: "MolamCrypto", dependencies: ["CCrypto"]),
        .target(name: "MolamHTTP", dependencies: ["CCurl"]),
        .target(name: "MolamMySQL", dependencies: ["CMariaDB"]),

        // All behaviour.
        .target(name: "UpgradeKit", dependencies: [
            "MolamSQLite", "MolamArchive", "MolamCrypto", "MolamHTTP", "MolamMySQL", "CSupport",
        ]),
        // Argument parsing, output and exit codes; no logic.
        .executableTarget(name: "molam-upgrade", dependencies: ["UpgradeKit"]),
        // Pure Swift helpers shared by the test targets (loopback HTTP server, private MariaDB
        // server); no C library.
        .target(name: "TestSupport"),

        .testTarget(
            name: "UpgradeKitTests",
            dependencies: [
                "UpgradeKit", "MolamSQLite", "MolamArchive", "MolamCrypto", "MolamHTTP", "MolamMySQL",
                "TestSupport",
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "molam-upgrade", "UpgradeKit", "MolamSQLite", "MolamArchive", "MolamCrypto", "MolamHTTP", "MolamMySQL",
                "TestSupport",
            ]
        ),
    ]
)
