import Foundation
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// Carrying preserved paths between real directories: what is copied, what is skipped.
@Suite("preserved paths")
struct PreservedPathsTests {
    @Test("A FIFO, a socket-like oddity or a link under a preserved path is skipped and reported, never opened")
    func oddEntriesSkipped() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("molam-preserve-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let live = base + "/live", staged = base + "/staged"
        try FileManager.default.createDirectory(atPath: live + "/certs/sub", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: true)
        try "pem".write(toFile: live + "/certs/sub/a.pem", atomically: false, encoding: .utf8)
        #expect(mkfifo(live + "/certs/pipe", 0o644) == 0)
        #expect(mkfifo(live + "/config.php", 0o644) == 0)
        try FileManager.default.createSymbolicLink(atPath: live + "/certs/up", withDestinationPath: "..")
        let manifest = PluginManifest(
            name: "p", version: try #require(SemanticVersion("1.0.0")), tables: [],
            preserve: ["certs/", "config.php", "missing/file.txt"])
        let summary = try PreservedPaths.carry(installed: manifest, release: manifest, from: live, into: staged)
        #expect(summary.carried == ["certs/"])
        #expect(Set(summary.skipped) == ["certs/pipe (a FIFO)", "certs/up (a symbolic link)", "config.php (a FIFO)"])
        #expect(try String(contentsOfFile: staged + "/certs/sub/a.pem", encoding: .utf8) == "pem")
        #expect(!FileManager.default.fileExists(atPath: staged + "/certs/pipe"))
        #expect(!FileManager.default.fileExists(atPath: staged + "/config.php"))
        #expect(!FileManager.default.fileExists(atPath: staged + "/missing"))
        // Copied, not moved.
        #expect(FileManager.default.fileExists(atPath: live + "/certs/sub/a.pem"))
    }
}
