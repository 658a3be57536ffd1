import Foundation
import MolamArchive
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory per test, removed (read-only subdirectories included) when the test is done.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.path + "/molam-archive-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    deinit {
        removeContents(of: path)
        rmdir(path)
    }

    func sub(_ name: String) -> String { path + "/" + name }

    /// Creates and returns an empty directory `name`.
    func directory(_ name: String) throws -> String {
        let dir = sub(name)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

enum Tool {
    /// Runs a real command-line tool, failing the test if it does not exit 0.
    static func run(_ arguments: [String], in directory: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(arguments.joined(separator: " ")) failed")
    }
}

enum Tree {
    static func write(_ path: String, _ text: String, mode: mode_t) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        #expect(chmod(path, mode) == 0)
    }

    static func mode(_ path: String) -> UInt32 {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        return UInt32(info.st_mode) & 0o7777
    }

    static func mtime(_ path: String) -> Int {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        return info.st_mtim.tv_sec
    }

    /// Every path below `path`, relative, sorted; symlinks not followed.
    static func listing(_ path: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: path) else { return [] }
        return enumerator.compactMap { $0 as? String }.sorted()
    }
}

/// Builds a tar with libarchive through our own writer: names are written verbatim, hostile or not.
func makeTar(
    _ path: String, filter: ArchiveWriter.Filter = .none, _ build: (ArchiveWriter) throws -> Void
) throws {
    let writer = try ArchiveWriter(path: path, format: .paxRestricted, filter: filter)
    try build(writer)
    try writer.close()
}

extension ArchiveWriter {
    func file(_ name: String, _ text: String, mode: UInt32 = 0o644) throws {
        let bytes = Array(text.utf8)
        try addFile(path: name, mode: mode, mtime: 1_000_000_000, size: Int64(bytes.count))
        try writeData(bytes)
    }
}
