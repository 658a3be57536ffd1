import Foundation
import MolamArchive
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

@Suite struct SafeExtractorTests {
    static let pluginJSON = #"{"name":"molam-form","version":"4.0.0"}"#

    /// A plugin tree with hostile modes and old mtimes, the way a careless release build might ship it.
    private func makePluginSource(in temp: TemporaryDirectory) throws -> String {
        let source = try temp.directory("src")
        let plugin = try temp.directory("src/molam-form")
        try FileManager.default.createDirectory(atPath: plugin + "/bin", withIntermediateDirectories: true)
        try Tree.write(plugin + "/molam-plugin.json", Self.pluginJSON, mode: 0o666)
        try Tree.write(plugin + "/bin/smoke", "#!/bin/sh\nexit 0\n", mode: 0o4777)
        try Tree.write(plugin + "/readonly.php", "<?php\n", mode: 0o400)
        #expect(chmod(plugin + "/bin", 0o777) == 0)
        try Tool.run(["touch", "-h", "-d", "2001-01-01", "molam-form/bin/smoke", "molam-form/readonly.php",
                      "molam-form/molam-plugin.json", "molam-form/bin", "molam-form"], in: source)
        return source
    }

    private func checkExtracted(_ archive: String, temp: TemporaryDirectory) throws {
        let started = Int(Date().timeIntervalSince1970)
        let stage = try temp.directory("stage")
        let tree = try SafeExtractor.extract(archive: archive, into: stage)
        let root = stage + "/molam-form"
        #expect(tree.root == root)
        #expect(tree.topName == "molam-form")
        #expect(tree.fileCount == 3)
        #expect(tree.directoryCount == 2)
        let manifest = try String(contentsOfFile: root + "/molam-plugin.json", encoding: .utf8)
        #expect(manifest == Self.pluginJSON)
        #expect(tree.bytesWritten == Int64(manifest.utf8.count + 17 + 6))
        // Group/other write, setuid dropped; owner read/write added.
        #expect(Tree.mode(root + "/molam-plugin.json") == 0o644)
        #expect(Tree.mode(root + "/bin/smoke") == 0o755)
        #expect(Tree.mode(root + "/readonly.php") == 0o600)
        #expect(Tree.mode(root + "/bin") == 0o755)
        for path in ["/molam-plugin.json", "/bin/smoke", "/readonly.php"] {
            #expect(Tree.mtime(root + path) >= started, "\(path) kept the archive's mtime")
        }
        #expect(Tree.listing(stage) == ["molam-form", "molam-form/bin", "molam-form/bin/smoke",
                                        "molam-form/molam-plugin.json", "molam-form/readonly.php"])
    }

    @Test("a zip made by zip extracts with its bytes, sanitised modes and fresh mtimes")
    func goodZip() throws {
        let temp = try TemporaryDirectory()
        let source = try makePluginSource(in: temp)
        try Tool.run(["zip", "-qr", temp.sub("r.zip"), "molam-form"], in: source)
        try checkExtracted(temp.sub("r.zip"), temp: temp)
    }

    @Test("a tar.gz made by tar extracts with its bytes, sanitised modes and fresh mtimes")
    func goodTarGz() throws {
        let temp = try TemporaryDirectory()
        let source = try makePluginSource(in: temp)
        try Tool.run(["tar", "-czf", temp.sub("r.tar.gz"), "molam-form"], in: source)
        try checkExtracted(temp.sub("r.tar.gz"), temp: temp)
    }

    @Test("a tar.zst made by tar and zstd extracts with its bytes, sanitised modes and fresh mtimes")
    func goodTarZst() throws {
        let temp = try TemporaryDirectory()
        let source = try makePluginSource(in: temp)
        try Tool.run(["tar", "-cf", temp.sub("r.tar"), "molam-form"], in: source)
        try Tool.run(["zstd", "-q", temp.sub("r.tar"), "-o", temp.sub("r.tar.zst")], in: source)
        try checkExtracted(temp.sub("r.tar.zst"), temp: temp)
    }

    @Test("the manifest is read from the archive without extracting anything")
    func peekManifest() throws {
        let temp = try TemporaryDirectory()
        let source = try makePluginSource(in: temp)
        try Tool.run(["zip", "-qr", temp.sub("r.zip"), "molam-form"], in: source)
        let data = try SafeExtractor.readMember(named: "molam-plugin.json", fromArchive: temp.sub("r.zip"))
        #expect(data.map { String(decoding: $0, as: UTF8.self) } == Self.pluginJSON)
        #expect(try SafeExtractor.readMember(named: "absent.json", fromArchive: temp.sub("r.zip")) == nil)
    }

    @Test("non-ASCII UTF-8 names from zip and tar arrive byte for byte")
    func utf8Names() throws {
        let temp = try TemporaryDirectory()
        let source = try temp.directory("src")
        try FileManager.default.createDirectory(atPath: source + "/p/çà",
                                                withIntermediateDirectories: true)
        try Tree.write(source + "/p/çà/café.php", "x", mode: 0o644)
        try Tool.run(["zip", "-qr", temp.sub("r.zip"), "p"], in: source)
        try Tool.run(["tar", "-cf", temp.sub("r.tar"), "p"], in: source)
        for archive in ["r.zip", "r.tar"] {
            let stage = try temp.directory("stage-" + archive)
            _ = try SafeExtractor.extract(archive: temp.sub(archive), into: stage)
            #expect(Tree.listing(stage) == ["p", "p/çà", "p/çà/café.php"], "\(archive)")
        }
    }

    // MARK: - Refusals

    /// Extracts `archive` into `<temp>/out/stage`, expecting a refusal `matches` accepts, then checks
    /// that nothing is left in the stage and nothing appeared next to it or in the temp directory.
    /// With `beforeWriting`, also that nothing was ever created in the stage: the header pass refused
    /// it. (Creating or removing anything in a directory updates its mtime, which starts in 2001.)
    private func expectRefusal(
        _ archive: String, temp: TemporaryDirectory, limits: ExtractionLimits = .default,
        beforeWriting: Bool = true, betweenPasses: () -> Void = {},
        sourceLocation: SourceLocation = #_sourceLocation, _ matches: (ArchiveRefusal) -> Bool
    ) throws {
        let before = Tree.listing(temp.path)
        let stage = try temp.directory("out/stage")
        Tree.setMtime(stage, Tree.year2001)
        do {
            let tree = try SafeExtractor.extract(
                archive: archive, into: stage, limits: limits, owner: nil, betweenPasses: betweenPasses)
            Issue.record("extracted \(tree.root) instead of refusing", sourceLocation: sourceLocation)
        } catch {
            #expect(matches(error), "unexpected refusal: \(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(archive), sourceLocation: sourceLocation)
            #expect(!error.description.contains("\n"), sourceLocation: sourceLocation)
        }
        if beforeWriting {
            #expect(Tree.mtime(stage) == Tree.year2001, "the stage was written to before the refusal",
                    sourceLocation: sourceLocation)
        } else {
            #expect(Tree.mtime(stage) != Tree.year2001,
                    "refused before writing: this case tests the limits enforced while writing",
                    sourceLocation: sourceLocation)
        }
        #expect(Tree.listing(stage).isEmpty, "left behind in stage", sourceLocation: sourceLocation)
        #expect(Tree.listing(temp.path) == Set(before + ["out", "out/stage"]).sorted(),
                "something was written outside the stage", sourceLocation: sourceLocation)
    }

    @Test("an entry climbing out with '../' is refused")
    func traversal() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.addDirectory(path: "p/", mode: 0o755)
            try writer.file("p/ok.php", "ok")
            try writer.file("p/../../evil", "pwned")
        }
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .unsafePath(_, "p/../../evil", "escapes the plugin directory") = $0 { return true }
            return false
        }
    }

    @Test("an absolute entry name is refused")
    func absolute() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.file("p/ok.php", "ok")
            try writer.file(temp.sub("evil"), "pwned")
        }
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .unsafePath(_, _, "is an absolute path") = $0 { return true }
            return false
        }
    }

    @Test("a backslash in an entry name is refused")
    func backslash() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in try writer.file("p\\..\\evil", "x") }
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .unsafePath(_, _, "contains a backslash") = $0 { return true }
            return false
        }
    }

    @Test("a name that is not valid UTF-8 is refused")
    func invalidUTF8() throws {
        let temp = try TemporaryDirectory()
        let source = try temp.directory("src")
        try FileManager.default.createDirectory(atPath: source + "/p", withIntermediateDirectories: true)
        // Swift strings cannot hold the byte 0xff, so the file is named by the shell.
        try Tool.run(["sh", "-c", "printf x > \"p/bad$(printf '\\377')\""], in: source)
        try Tool.run(["tar", "-cf", temp.sub("r.tar"), "p"], in: source)
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .unsafePath(_, "p/bad\\xff", "is not valid UTF-8") = $0 { return true }
            return false
        }
    }

    @Test("zip entries are held to the same rules: traversal and ratio bombs made by python's zipfile")
    func hostileZips() throws {
        let temp = try TemporaryDirectory()
        let script = """
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
                z.writestr('p/ok.php', 'ok')
                z.writestr('p/../../evil', 'x')
            with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:
                z.writestr('p/zeros', bytes(8 << 20))
            """
        try Tool.run(["python3", "-c", script, temp.sub("t.zip"), temp.sub("bomb.zip")], in: temp.path)
        try expectRefusal(temp.sub("t.zip"), temp: temp) {
            if case .unsafePath(_, "p/../../evil", "escapes the plugin directory") = $0 { return true }
            return false
        }
        try expectRefusal(temp.sub("bomb.zip"), temp: temp) {
            if case .limitExceeded(_, "compression ratio over 200:1") = $0 { return true }
            return false
        }
    }

    @Test("a zip whose local header names another file than its central directory is refused")
    func zipLocalCentralMismatch() throws {
        let temp = try TemporaryDirectory()
        // Stream readers trust local headers, unzip trusts the central directory: a zip that disagrees
        // can show a reviewer one file and install another.
        let script = """
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_STORED) as z:
                z.writestr('p/aa.php', 'AAAA')
                z.writestr('p/bb.php', 'BBBB')
            data = bytearray(open(sys.argv[1], 'rb').read())
            at = data.index(b'p/aa.php')
            data[at:at + 8] = b'p/zz.php'
            open(sys.argv[1], 'wb').write(bytes(data))
            """
        try Tool.run(["python3", "-c", script, temp.sub("m.zip")], in: temp.path)
        try expectRefusal(temp.sub("m.zip"), temp: temp) {
            if case .unsafePath(_, "p/zz.php", "is not the name the zip's central directory lists") = $0 {
                return true
            }
            return false
        }
    }

    @Test("symlink, hard link and FIFO entries are refused")
    func forbiddenKinds() throws {
        let cases: [(String, (ArchiveWriter) throws -> Void)] = [
            ("symbolic link", { try $0.addSymlink(path: "p/link", target: "/etc/passwd") }),
            ("hard link", { try $0.addHardlink(path: "p/hard", target: "p/ok.php") }),
            ("FIFO", { try $0.addFIFO(path: "p/fifo") }),
        ]
        for (kind, add) in cases {
            let temp = try TemporaryDirectory()
            try makeTar(temp.sub("r.tar")) { writer in
                try writer.file("p/ok.php", "ok")
                try add(writer)
            }
            try expectRefusal(temp.sub("r.tar"), temp: temp) {
                if case .forbiddenEntry(_, _, kind) = $0 { return true }
                return false
            }
        }
    }

    @Test("two top directories are refused")
    func twoTops() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.file("a/x.php", "x")
            try writer.file("b/y.php", "y")
        }
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .notSingleTopDirectory(_, ["a", "b"]) = $0 { return true }
            return false
        }
    }

    @Test("a duplicate path is refused")
    func duplicate() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.file("p/a.php", "first")
            try writer.file("p/a.php", "second")
        }
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .duplicate(_, "p/a.php") = $0 { return true }
            return false
        }
    }

    @Test("paths differing only in case are refused")
    func caseDuplicate() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.file("p/Lib/a.php", "first")
            try writer.file("p/lib/b.php", "second")
        }
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .duplicate(_, "p/lib/b.php") = $0 { return true }
            return false
        }
    }

    @Test("a file where a directory already is is refused")
    func fileDirectoryClash() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.file("p/lib/a.php", "x")
            try writer.file("p/lib", "y")
        }
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .duplicate(_, "p/lib") = $0 { return true }
            return false
        }
    }

    @Test("more entries than the limit are refused")
    func tooManyEntries() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            for index in 0..<5 { try writer.file("p/\(index).php", "x") }
        }
        var limits = ExtractionLimits.default
        limits.maxEntries = 3
        try expectRefusal(temp.sub("r.tar"), temp: temp, limits: limits) {
            if case .limitExceeded(_, "more than 3 entries") = $0 { return true }
            return false
        }
    }

    @Test("names that would hold too much memory in total are refused before writing")
    func tooManyNameBytes() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            for index in 0..<40 {
                try writer.file("p/\(index)-" + String(repeating: "n", count: 200) + "/x.php", "x")
            }
        }
        var limits = ExtractionLimits.default
        limits.maxNameBytes = 8 << 10
        try expectRefusal(temp.sub("r.tar"), temp: temp, limits: limits) {
            if case .limitExceeded(_, "entry names over 8 KiB in total") = $0 { return true }
            return false
        }
        // The same archive within the default limit extracts.
        let stage = try temp.directory("stage")
        #expect(try SafeExtractor.extract(archive: temp.sub("r.tar"), into: stage).fileCount == 40)
    }

    @Test("a compression-ratio bomb with honest headers is refused before writing")
    func ratioBomb() throws {
        let temp = try TemporaryDirectory()
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        try makeTar(temp.sub("r.tar.zst"), filter: .zstd(level: 3)) { writer in
            try writer.addFile(path: "p/zeros.bin", mode: 0o644, size: Int64(zeros.count))
            try writer.writeData(zeros)
        }
        var limits = ExtractionLimits.default
        limits.maxRatio = 10
        try expectRefusal(temp.sub("r.tar.zst"), temp: temp, limits: limits) {
            if case .limitExceeded(_, "compression ratio over 10:1") = $0 { return true }
            return false
        }
    }

    @Test("headers declaring more bytes than the total limit are refused before writing")
    func tooManyBytes() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.file("p/a.php", String(repeating: "a", count: 3000))
        }
        var limits = ExtractionLimits.default
        limits.maxTotalBytes = 2048
        try expectRefusal(temp.sub("r.tar"), temp: temp, limits: limits) {
            if case .limitExceeded(_, "its headers declare over 2 KiB") = $0 { return true }
            return false
        }
    }

    @Test("a truncated archive is refused as unreadable")
    func truncated() throws {
        let temp = try TemporaryDirectory()
        let random = (0..<200_000).map { _ in UInt8.random(in: 0...255) }
        try makeTar(temp.sub("r.tar.gz"), filter: .gzip) { writer in
            try writer.file("p/a.php", "first")
            try writer.addFile(path: "p/random.bin", mode: 0o644, size: Int64(random.count))
            try writer.writeData(random)
        }
        let full = try Data(contentsOf: URL(fileURLWithPath: temp.sub("r.tar.gz")))
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: temp.sub("r.tar.gz")))
        try expectRefusal(temp.sub("r.tar.gz"), temp: temp) {
            if case .unreadable = $0 { return true }
            return false
        }
    }

    @Test("a file that is not an archive is refused as unreadable, an empty archive as empty")
    func garbageAndEmpty() throws {
        let temp = try TemporaryDirectory()
        try Data("not an archive at all".utf8).write(to: URL(fileURLWithPath: temp.sub("junk.zip")))
        try expectRefusal(temp.sub("junk.zip"), temp: temp) {
            if case .unreadable = $0 { return true }
            return false
        }
        try makeTar(temp.sub("empty.tar")) { _ in }
        let stage = try temp.directory("empty-stage")
        #expect {
            try SafeExtractor.extract(archive: temp.sub("empty.tar"), into: stage)
        } throws: { error in
            if case .empty = error as? ArchiveRefusal { return true }
            return false
        }
    }

    @Test("a destination that is not empty is refused before reading the archive")
    func nonEmptyDestination() throws {
        let temp = try TemporaryDirectory()
        let stage = try temp.directory("stage")
        try Tree.write(stage + "/already", "x", mode: 0o644)
        #expect {
            try SafeExtractor.extract(archive: temp.sub("none.zip"), into: stage)
        } throws: { error in
            if case .io(let system) = error as? ArchiveRefusal { return system.errno == ENOTEMPTY }
            return false
        }
        #expect(Tree.listing(stage) == ["already"])
    }

    // MARK: - Header pass

    @Test("every entry is admitted before any is written: a bad last entry leaves the stage untouched")
    func badLastEntryWritesNothing() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.addDirectory(path: "p/", mode: 0o755)
            for index in 0..<50 { try writer.file("p/\(index).php", "<?php // \(index)") }
            try writer.addSymlink(path: "p/zz-link", target: "/etc")
        }
        try expectRefusal(temp.sub("r.tar"), temp: temp) {
            if case .forbiddenEntry(_, "p/zz-link", "symbolic link") = $0 { return true }
            return false
        }
    }

    /// A deflated entry of 8 MiB of zeros whose local and central headers both claim `declared` bytes.
    private func understatedZip(_ path: String, declared: Int, in temp: TemporaryDirectory) throws {
        let script = """
            z = Zip()
            z.add('p/ok.php', 'ok')
            z.add('p/zeros.bin', bytes(8 << 20), declared=\(declared))
            z.save(sys.argv[1])
            """
        try ZipForge.run(script, [path], in: temp.path)
    }

    @Test("headers that understate sizes do not get past the limits on bytes actually written")
    func understatedSizes() throws {
        let temp = try TemporaryDirectory()
        try understatedZip(temp.sub("ratio.zip"), declared: 1000, in: temp)
        try expectRefusal(temp.sub("ratio.zip"), temp: temp, beforeWriting: false) {
            if case .limitExceeded(_, "compression ratio over 200:1") = $0 { return true }
            return false
        }
        var limits = ExtractionLimits.default
        limits.maxTotalBytes = 512 << 10
        try understatedZip(temp.sub("total.zip"), declared: 1000, in: temp)
        try expectRefusal(temp.sub("total.zip"), temp: temp, limits: limits, beforeWriting: false) {
            if case .limitExceeded(_, "over 512 KiB written") = $0 { return true }
            return false
        }
    }

    @Test("an archive that reads differently on the second pass is refused and its writes removed")
    func changedBetweenPasses() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.file("p/a.php", "a")
            try writer.file("p/b.php", "b")
        }
        try makeTar(temp.sub("renamed.tar")) { writer in
            try writer.file("p/a.php", "a")
            try writer.file("p/c.php", "c")
        }
        try makeTar(temp.sub("shorter.tar")) { writer in try writer.file("p/a.php", "a") }
        // Replaced in place (same inode, same path), as a process with write access could.
        func replace(with other: String) -> () -> Void {
            return {
                let bytes = FileManager.default.contents(atPath: temp.sub(other)) ?? Data()
                let handle = FileHandle(forWritingAtPath: temp.sub("r.tar"))
                handle?.truncateFile(atOffset: 0)
                handle?.write(bytes)
                handle?.closeFile()
            }
        }
        try expectRefusal(temp.sub("r.tar"), temp: temp, beforeWriting: false,
                          betweenPasses: replace(with: "renamed.tar")) {
            if case .inconsistent(_, "p/c.php", let reason) = $0 { return reason.contains("the archive changed") }
            return false
        }
        try makeTar(temp.sub("r2.tar")) { writer in
            try writer.file("p/a.php", "a")
            try writer.file("p/b.php", "b")
        }
        try FileManager.default.removeItem(atPath: temp.sub("r.tar"))
        try FileManager.default.moveItem(atPath: temp.sub("r2.tar"), toPath: temp.sub("r.tar"))
        try expectRefusal(temp.sub("r.tar"), temp: temp, beforeWriting: false,
                          betweenPasses: replace(with: "shorter.tar")) {
            if case .inconsistent(_, "p/b.php", let reason) = $0 { return reason.contains("vanished") }
            return false
        }
    }

    @Test("refusals name the archive as the caller asks, from the header pass and from extraction alike")
    func displayName() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("headers.tar")) { writer in try writer.file("p/../evil", "x") }
        try understatedZip(temp.sub("written.zip"), declared: 1000, in: temp)
        for archive in ["headers.tar", "written.zip"] {
            let stage = try temp.directory("stage-" + archive)
            #expect {
                try SafeExtractor.extract(
                    archive: temp.sub(archive), into: stage, displayName: "https://example.test/r")
            } throws: { error in
                let text = (error as? ArchiveRefusal)?.description ?? ""
                return text.hasPrefix("release archive https://example.test/r: ") && !text.contains(temp.path)
            }
        }
    }

    // MARK: - Zip layout

    @Test("overlapping zip entries (a better zip bomb's construction) are refused before writing")
    func overlappingZipEntries() throws {
        let temp = try TemporaryDirectory()
        // Quoted overlap: b's local header and data sit inside a's stored data, so the central
        // directory lists two files that share bytes. Full overlap: two central records, one local
        // header.
        let script = """
            inner = Zip()
            inner.add('p/b.php', 'bbbb', deflate=False)
            z = Zip()
            z.add('p/ok.php', 'ok')
            a = z.add('p/a.php', bytes(inner.body), deflate=False)
            b = dict(inner.entries[0])
            b['offset'] = a['offset'] + 30 + len(a['name'])
            z.entries.append(b)
            z.save(sys.argv[1])

            z = Zip()
            a = z.add('p/a.php', 'aaaa')
            twin = dict(a)
            twin['name'] = b'p/c.php'
            z.entries.append(twin)
            z.save(sys.argv[2])
            """
        try ZipForge.run(script, [temp.sub("quoted.zip"), temp.sub("full.zip")], in: temp.path)
        try expectRefusal(temp.sub("quoted.zip"), temp: temp) {
            if case .overlappingEntries(_, "p/b.php", "p/a.php") = $0 { return true }
            return false
        }
        try expectRefusal(temp.sub("full.zip"), temp: temp) {
            if case .overlappingEntries(_, "p/c.php", "p/a.php") = $0 { return true }
            return false
        }
    }

    @Test("a central record pointing at no local header, or running into the central directory, is refused")
    func zipCentralRecordsOutOfPlace() throws {
        let temp = try TemporaryDirectory()
        let script = """
            z = Zip()
            z.add('p/a.php', 'aaaa')
            b = z.add('p/b.php', 'bbbb')
            b['offset'] += 1
            z.save(sys.argv[1])

            z = Zip()
            z.add('p/a.php', 'aaaa')
            b = z.add('p/b.php', 'bbbb')
            b['csize'] += 40
            z.save(sys.argv[2])
            """
        try ZipForge.run(script, [temp.sub("signature.zip"), temp.sub("long.zip")], in: temp.path)
        try expectRefusal(temp.sub("signature.zip"), temp: temp) {
            if case .inconsistent(_, "p/b.php", let reason) = $0 { return reason.hasPrefix("has no local header") }
            return false
        }
        try expectRefusal(temp.sub("long.zip"), temp: temp) {
            if case .inconsistent(_, "p/b.php", "runs into the central directory") = $0 { return true }
            return false
        }
    }

    @Test("a well-formed zip whose central records use zip64 fields extracts")
    func zip64CentralRecords() throws {
        let temp = try TemporaryDirectory()
        let script = """
            z = Zip()
            z.add('p/a.php', 'aaaa')
            z.add('p/b.php', 'bbbb' * 100)
            z.save(sys.argv[1], zip64=True)
            """
        try ZipForge.run(script, [temp.sub("z64.zip")], in: temp.path)
        let stage = try temp.directory("stage")
        let tree = try SafeExtractor.extract(archive: temp.sub("z64.zip"), into: stage)
        #expect(tree.fileCount == 2)
        let text = try String(contentsOfFile: stage + "/p/b.php", encoding: .utf8)
        #expect(text == String(repeating: "bbbb", count: 100))
    }

    @Test("a zip declaring more entries than the limit is refused from its end record")
    func zipEntryCountFromEndRecord() throws {
        let temp = try TemporaryDirectory()
        let script = """
            z = Zip()
            for i in range(5):
                z.add('p/%d.php' % i, 'x')
            z.save(sys.argv[1])
            """
        try ZipForge.run(script, [temp.sub("many.zip")], in: temp.path)
        var limits = ExtractionLimits.default
        limits.maxEntries = 3
        try expectRefusal(temp.sub("many.zip"), temp: temp, limits: limits) {
            if case .limitExceeded(_, "more than 3 entries (the zip declares 5)") = $0 { return true }
            return false
        }
    }

    @Test("a zip's central directory is held to the rules as written, before libarchive rewrites it",
          arguments: ["fifo", "backslash"])
    func centralRecordsAsWritten(kind: String) throws {
        let temp = try TemporaryDirectory()
        // libarchive 3.6 reads a FIFO in a zip as a regular file, and a backslash in a zip name as
        // a slash; unzip and a reviewer see the FIFO and the backslash.
        let script = """
            import stat, sys, zipfile
            with zipfile.ZipFile(sys.argv[1], 'w') as z:
                z.writestr('p/ok.php', 'ok')
                info = zipfile.ZipInfo('p/pipe' if sys.argv[2] == 'fifo' else 'p\\..\\..\\evil.php')
                info.create_system = 3
                info.external_attr = ((stat.S_IFIFO if sys.argv[2] == 'fifo' else stat.S_IFREG) | 0o644) << 16
                z.writestr(info, 'x')
            """
        try Tool.run(["python3", "-c", script, temp.sub("r.zip"), kind], in: temp.path)
        try expectRefusal(temp.sub("r.zip"), temp: temp) {
            switch (kind, $0) {
            case ("fifo", .forbiddenEntry(_, "p/pipe", "FIFO")): return true
            case ("backslash", .unsafePath(_, "p\\..\\..\\evil.php", "contains a backslash")): return true
            default: return false
            }
        }
    }

    // MARK: - Ownership

    @Test("with an owner, every file and directory created is given to it; without, to us",
          .enabled(if: geteuid() == 0, "changing a file's owner needs root (CAP_CHOWN)"))
    func ownership() throws {
        let temp = try TemporaryDirectory()
        try makeTar(temp.sub("r.tar")) { writer in
            try writer.addDirectory(path: "p/", mode: 0o755)
            try writer.file("p/a.php", "a", mode: 0o4755)
            // Implied directories: no entries of their own.
            try writer.file("p/lib/deep/b.php", "b")
            try writer.addDirectory(path: "p/lib/", mode: 0o2775)
        }
        let owner = FileOwner(uid: 4242, gid: 4343)
        let stage = try temp.directory("owned")
        _ = try SafeExtractor.extract(archive: temp.sub("r.tar"), into: stage, owner: owner)
        let listing = Tree.listing(stage)
        #expect(listing == ["p", "p/a.php", "p/lib", "p/lib/deep", "p/lib/deep/b.php"])
        for path in listing {
            let found = Tree.owner(stage + "/" + path)
            #expect(found?.uid == 4242 && found?.gid == 4343, "\(path) is owned by \(String(describing: found))")
        }
        // chown(2) happened before the mode was set, so it could not have widened or kept special bits.
        #expect(Tree.mode(stage + "/p/a.php") == 0o755)
        #expect(Tree.mode(stage + "/p/lib") == 0o755)
        // The destination is the caller's, and without an owner nothing is given away.
        #expect(Tree.owner(stage)?.uid == 0)
        let plain = try temp.directory("plain")
        _ = try SafeExtractor.extract(archive: temp.sub("r.tar"), into: plain)
        #expect(Tree.listing(plain).allSatisfy { Tree.owner(plain + "/" + $0)?.uid == geteuid() })
    }
}
