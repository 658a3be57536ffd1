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

    static let year2001 = 978_307_200

    static func setMtime(_ path: String, _ seconds: Int) {
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0)
    }

    static func owner(_ path: String) -> (uid: UInt32, gid: UInt32)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (info.st_uid, info.st_gid)
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

/// Runs a python3 script that builds zips byte by byte (APPNOTE.TXT's layout, no shortcuts) where
/// python's zipfile cannot: overlapping entries, central records pointing elsewhere, zip64 fields,
/// sizes that lie. `script` runs after the `Zip` builder below is defined; `sys.argv[1:]` are
/// `arguments`.
enum ZipForge {
    static let prelude = #"""
        import struct, sys, zlib

        class Zip:
            """Local headers and data in `body`; central records written by `save`."""
            def __init__(self):
                self.body = bytearray()
                self.entries = []

            def add(self, name, data=b'', mode=0o100644, deflate=True, declared=None):
                name = name.encode() if isinstance(name, str) else name
                data = data.encode() if isinstance(data, str) else data
                method = 8 if deflate else 0
                if deflate:
                    c = zlib.compressobj(9, zlib.DEFLATED, -15)
                    stored = c.compress(data) + c.flush()
                else:
                    stored = data
                size = len(data) if declared is None else declared
                entry = dict(name=name, method=method, crc=zlib.crc32(data), csize=len(stored), usize=size,
                             offset=len(self.body), mode=mode)
                self.body += struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, method, 0, 0x21, entry['crc'],
                                         entry['csize'], size, len(name), 0) + name + stored
                self.entries.append(entry)
                return entry

            def save(self, path, zip64=False):
                central = bytearray()
                for e in self.entries:
                    usize, csize, offset, extra = e['usize'], e['csize'], e['offset'], b''
                    if zip64:
                        extra = struct.pack('<HHQQQ', 1, 24, usize, csize, offset)
                        usize = csize = offset = 0xffffffff
                    central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 0x031e, 20, 0, e['method'], 0,
                                           0x21, e['crc'], csize, usize, len(e['name']), len(extra), 0, 0, 0,
                                           e['mode'] << 16, offset) + e['name'] + extra
                end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(self.entries), len(self.entries),
                                  len(central), len(self.body), 0)
                with open(path, 'wb') as f:
                    f.write(bytes(self.body) + bytes(central) + end)

        """#

    static func run(_ script: String, _ arguments: [String], in directory: String) throws {
        try Tool.run(["python3", "-c", prelude + script] + arguments, in: directory)
    }
}
