import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// The archive attack matrix: hostile releases of acme-pay 1.1.0, each built at test time by python's
/// tarfile and zipfile (or byte by byte where they refuse to), run through the built binary against a
/// site with 1.0.0 installed.
///
/// Every attack must end in exit 4 with one line on stderr, the site exactly as it was, nothing
/// written outside the staging area (a canary directory outside the site, and the whole site but the
/// state directory, compared before and after) and an empty work area. Every attack that can be
/// decided from the headers is run a second time with the `mid-extract` fault point set to kill the
/// agent after its first extracted file: exiting 4 rather than dying proves not a byte was written.
/// Hostile permission bits are not an attack on their own: those releases install, sanitised.
@Suite("archive attacks, end to end")
struct ArchiveAttackTests {
    enum Outcome: Sendable {
        /// Exit 4; `beforeWriting`: decidable from the headers, so also run with the kill fault.
        case refused(beforeWriting: Bool)
        /// Exit 0, and no entry of the live tree keeps setuid, setgid, sticky or group/other write.
        case sanitised
    }

    struct Attack: Sendable, CustomStringConvertible {
        let file: String
        let outcome: Outcome
        /// Part of the refusal's one line that shows it was refused for this attack's reason.
        let reason: String
        /// Python, run after `builderPrelude`, that writes `OUT/<file>`.
        let build: String
        var extra: [String] = []

        var description: String { file }
    }

    static let attacks: [Attack] = {
        let escaped = "escapes the plugin directory"
        var list: [Attack] = []
        func refused(_ file: String, _ reason: String, _ build: String, extra: [String] = []) {
            list.append(Attack(file: file, outcome: .refused(beforeWriting: true), reason: reason, build: build,
                               extra: extra))
        }
        func refusedAfterWriting(_ file: String, _ reason: String, _ build: String, extra: [String] = []) {
            list.append(Attack(file: file, outcome: .refused(beforeWriting: false), reason: reason, build: build,
                               extra: extra))
        }
        // Escapes through names. ESCAPE climbs to / and down into the canary directory.
        refused("slip-dotdot.zip", escaped, "zip_(F, lambda z: zadd(z, ESCAPE, PAYLOAD))")
        refused("slip-dotdot.tar.gz", escaped, "tar(F, lambda t: tadd(t, ESCAPE, PAYLOAD))")
        refused("slip-dotdot.tar.zst", escaped, "tar(F, lambda t: tadd(t, ESCAPE, PAYLOAD), compress='zst')")
        refused("slip-backslash.zip", "contains a backslash",
                "zip_(F, lambda z: zadd(z, ESCAPE.replace('/', '\\\\'), PAYLOAD))")
        refused("slip-backslash.tar.gz", "contains a backslash",
                "tar(F, lambda t: tadd(t, ESCAPE.replace('/', '\\\\'), PAYLOAD))")
        refused("absolute.zip", "is an absolute path",
                "zip_(F, lambda z: zadd(z, CANARY + '/pwned.php', PAYLOAD))")
        refused("absolute.tar.gz", "is an absolute path",
                "tar(F, lambda t: tadd(t, CANARY + '/pwned.php', PAYLOAD))")
        // Escapes through links.
        refused("symlink-then-file.tar.gz", "symbolic link", """
            tar(F, lambda t: (tadd(t, TOP + '/escape', type=tarfile.SYMTYPE, linkname=CANARY),
                              tadd(t, TOP + '/escape/pwned.php', PAYLOAD)))
            """)
        refused("symlink-then-file.zip", "symbolic link", """
            zip_(F, lambda z: (zadd(z, TOP + '/escape', CANARY.encode(), 0o777, stat.S_IFLNK),
                               zadd(z, TOP + '/escape/pwned.php', PAYLOAD)))
            """)
        refused("hardlink-outside.tar.gz", "hard link", """
            tar(F, lambda t: tadd(t, TOP + '/pwned.php', type=tarfile.LNKTYPE, linkname=CANARY + '/canary.txt'))
            """)
        refused("dir-then-symlink.tar.gz", "symbolic link", """
            tar(F, lambda t: (tadd(t, TOP + '/lib/', mode=0o755, type=tarfile.DIRTYPE),
                              tadd(t, TOP + '/lib', type=tarfile.SYMTYPE, linkname=CANARY),
                              tadd(t, TOP + '/lib/pwned.php', PAYLOAD)))
            """)
        refused("dir-then-symlink.zip", "symbolic link", """
            zip_(F, lambda z: (zadd(z, TOP + '/lib/', None, 0o755),
                               zadd(z, TOP + '/lib', CANARY.encode(), 0o777, stat.S_IFLNK),
                               zadd(z, TOP + '/lib/pwned.php', PAYLOAD)))
            """)
        // Two entries for one path: the second would silently replace reviewed code.
        let clash = "clashes with an earlier entry"
        refused("duplicate.zip", clash, "zip_(F, lambda z: zadd(z, TOP + '/acme-pay.php', PAYLOAD))")
        refused("duplicate.tar.gz", clash, "tar(F, lambda t: tadd(t, TOP + '/acme-pay.php', PAYLOAD))")
        refused("case-only.zip", clash, "zip_(F, lambda z: zadd(z, TOP + '/Acme-Pay.php', PAYLOAD))")
        refused("case-only.tar.gz", clash, "tar(F, lambda t: tadd(t, TOP + '/src/gateway/Gateway.php', PAYLOAD))")
        // Special files.
        refused("char-device.tar.gz", "character device",
                "tar(F, lambda t: tadd(t, TOP + '/null', type=tarfile.CHRTYPE, dev=(1, 3)))")
        refused("block-device.tar.gz", "block device",
                "tar(F, lambda t: tadd(t, TOP + '/disk', type=tarfile.BLKTYPE, dev=(8, 0)))")
        refused("fifo.tar.gz", "FIFO", "tar(F, lambda t: tadd(t, TOP + '/pipe', type=tarfile.FIFOTYPE))")
        refused("char-device.zip", "character device",
                "zip_(F, lambda z: zadd(z, TOP + '/null', b'', 0o666, stat.S_IFCHR))")
        refused("block-device.zip", "block device",
                "zip_(F, lambda z: zadd(z, TOP + '/disk', b'', 0o660, stat.S_IFBLK))")
        refused("fifo.zip", "FIFO", "zip_(F, lambda z: zadd(z, TOP + '/pipe', b'', 0o644, stat.S_IFIFO))")
        refused("socket.zip", "socket", "zip_(F, lambda z: zadd(z, TOP + '/sock', b'', 0o755, stat.S_IFSOCK))")
        // Names no filesystem or reviewer should have to handle.
        refused("invalid-utf8.zip", "is not valid UTF-8", """
            zip_(F, lambda z: zadd(z, TOP + '/bad-XXXX.php', PAYLOAD))
            patch(F, b'bad-XXXX', b'bad-\\xff\\xfe\\xc0!')
            """)
        refused("invalid-utf8.tar.gz", "is not valid UTF-8",
                "tar(F, lambda t: tadd(t, TOP + '/bad-\\udcff\\udcfe.php', PAYLOAD))")
        refused("control-chars.zip", "contains a control character",
                "zip_(F, lambda z: zadd(z, TOP + '/evil\\x1b[2J\\r.php', PAYLOAD))")
        refused("control-chars.tar.gz", "contains a control character",
                "tar(F, lambda t: tadd(t, TOP + '/evil\\n.php', PAYLOAD))")
        refused("long-component.zip", "path component longer than 255 bytes",
                "zip_(F, lambda z: zadd(z, TOP + '/' + 'c' * 300 + '.php', PAYLOAD))")
        refused("long-component.tar.gz", "path component longer than 255 bytes",
                "tar(F, lambda t: tadd(t, TOP + '/' + 'c' * 300 + '.php', PAYLOAD))")
        refused("long-path.zip", "is longer than 4096 bytes", "zip_(F, lambda z: zadd(z, LONG_PATH, PAYLOAD))")
        refused("long-path.tar.gz", "is longer than 4096 bytes", "tar(F, lambda t: tadd(t, LONG_PATH, PAYLOAD))")
        refused("deep.zip", "is nested deeper than 64 levels", "zip_(F, lambda z: zadd(z, DEEP_PATH, PAYLOAD))")
        refused("deep.tar.gz", "is nested deeper than 64 levels", "tar(F, lambda t: tadd(t, DEEP_PATH, PAYLOAD))")
        // Resource exhaustion.
        refused("ratio-bomb.zip", "compression ratio over 200:1",
                "zip_(F, lambda z: zadd(z, TOP + '/zeros.bin', bytes(64 << 20)))")
        refused("ratio-bomb.tar.gz", "compression ratio over 200:1",
                "tar(F, lambda t: tadd(t, TOP + '/zeros.bin', bytes(64 << 20)))")
        refused("overlapping.zip", "overlaps entry", "overlapping(F)")
        refused("million-entries.tar.gz", "more than 100000 entries", "million_entries(F)")
        refused("names-in-total.tar.gz", "entry names over 8 MiB in total", """
            tar(F, lambda t: [tadd(t, TOP + '/%05d/' % i + '/'.join(['n' * 250] * 15) + '.php')
                              for i in range(1000)])
            """)
        // Broken or inconsistent containers.
        refused("local-header-signature.zip", "has no local header", "bad_local_signature(F)")
        refused("local-central-names.zip", "is not the name the zip's central directory lists",
                "local_central_mismatch(F)")
        refused("truncated.zip", "cannot be read", "truncated_zip(F)")
        refused("truncated.tar.gz", "cannot be read", "truncated_tar(F)")
        refused("two-top-directories.tar.gz", "exactly one top directory",
                "tar(F, lambda t: tadd(t, 'wp-config-backdoor/x.php', PAYLOAD))")
        // Only seen once bytes are written: lying sizes, and manifests checked after staging.
        refusedAfterWriting("understated-bomb.zip", "compression ratio over 200:1", "understated_bomb(F)")
        refusedAfterWriting("other-plugin.zip", "holds plugin 'other-pay'",
                            "zip_(F, items=tree(lambda m: dict(m, name='other-pay')))")
        refusedAfterWriting("other-plugin.tar.gz", "holds plugin 'other-pay'",
                            "tar(F, items=tree(lambda m: dict(m, name='other-pay')))")
        refusedAfterWriting("other-version.zip", "not the requested 1.2.0", "zip_(F)", extra: ["--to", "1.2.0"])
        refusedAfterWriting("other-version.tar.gz", "not the requested 1.2.0", "tar(F)", extra: ["--to", "1.2.0"])
        // Accepted, with setuid, setgid, sticky and group/other write stripped.
        for file in ["hostile-modes.zip", "hostile-modes.tar.gz", "hostile-modes.tar.zst"] {
            let build = file.hasSuffix(".zip") ? "zip_(F, items=hostile_modes())"
                : "tar(F, items=hostile_modes()\(file.hasSuffix(".zst") ? ", compress='zst'" : ""))"
            list.append(Attack(file: file, outcome: .sanitised, reason: "", build: build))
        }
        return list
    }()

    /// Defines `tar`, `zip_`, the `Zip` byte builder and the composite attacks. argv: the acme-pay
    /// 1.1.0 tree, the output directory, the canary directory.
    static let builderPrelude = #"""
        import gzip, io, json, os, random, stat, struct, subprocess, sys, tarfile, warnings, zipfile, zlib
        warnings.simplefilter('ignore')  # zipfile warns about the duplicate it is asked to write
        TREE, OUT, CANARY = sys.argv[1], sys.argv[2], sys.argv[3]
        TOP = 'acme-pay'
        PAYLOAD = b"<?php system($_GET['c']);\n"
        ESCAPE = TOP + '/' + '../' * 40 + CANARY.lstrip('/') + '/pwned.php'
        LONG_PATH = TOP + '/' + '/'.join(['%03d' % i + 'd' * 197 for i in range(25)]) + '/x.php'
        DEEP_PATH = TOP + '/' + 'd/' * 200 + 'x.php'

        def tree(manifest=None):
            """(name, data or None for a directory, mode) for acme-pay 1.1.0: the top directory, then
            molam-plugin.json (so a run that writes anything writes it first), then the rest."""
            items = []
            for path, dirs, files in os.walk(TREE):
                dirs.sort()
                rel = os.path.relpath(path, os.path.dirname(TREE))
                items.append((rel + '/', None, 0o755))
                for name in sorted(files):
                    full = os.path.join(path, name)
                    items.append((rel + '/' + name, open(full, 'rb').read(), os.stat(full).st_mode & 0o7777))
            key = TOP + '/molam-plugin.json'
            first = [item for item in items if item[0] == key]
            if manifest:
                first = [(key, json.dumps(manifest(json.loads(first[0][1]))).encode(), 0o644)]
            return items[:1] + first + [item for item in items[1:] if item[0] != key]

        def hostile_modes():
            return [(n, d, (0o3777 if d is None else m | 0o7066)) for n, d, m in tree()]

        def tadd(t, name, data=b'', mode=0o644, type=tarfile.REGTYPE, linkname='', dev=(0, 0)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.mtime = type, mode, linkname, 1000000000
            info.devmajor, info.devminor = dev
            if type == tarfile.REGTYPE:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)

        def tar(name, attack=None, items=None, compress='gz'):
            path = os.path.join(OUT, name)
            raw = path + '.tar' if compress == 'zst' else path
            with tarfile.open(raw, 'w:gz' if compress == 'gz' else 'w', format=tarfile.GNU_FORMAT,
                              encoding='utf-8', errors='surrogateescape') as t:
                for n, data, mode in (items if items is not None else tree()):
                    if data is None:
                        tadd(t, n, mode=mode, type=tarfile.DIRTYPE)
                    else:
                        tadd(t, n, data, mode)
                if attack:
                    attack(t)
            if compress == 'zst':
                subprocess.run(['zstd', '-q', '--rm', raw, '-o', path], check=True)

        def zadd(z, name, data=b'', mode=0o644, kind=stat.S_IFREG):
            info = zipfile.ZipInfo(name, date_time=(2001, 1, 1, 0, 0, 0))
            info.create_system = 3  # Unix: external attributes carry st_mode
            if data is None:
                kind, data = stat.S_IFDIR, b''
            info.external_attr = (kind | mode) << 16 | (0x10 if kind == stat.S_IFDIR else 0)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)

        def zip_(name, attack=None, items=None):
            with zipfile.ZipFile(os.path.join(OUT, name), 'w') as z:
                for n, data, mode in (items if items is not None else tree()):
                    zadd(z, n, data, mode)
                if attack:
                    attack(z)

        def patch(name, old, new):
            path = os.path.join(OUT, name)
            data = open(path, 'rb').read()
            assert len(old) == len(new) and old in data
            open(path, 'wb').write(data.replace(old, new))

        class Zip:
            """A zip written record by record (APPNOTE.TXT 4.3), for layouts zipfile will not write."""
            def __init__(self):
                self.body = bytearray()
                self.entries = []

            def add(self, name, data=b'', mode=0o100644, deflate=True, declared=None):
                name = name.encode()
                if deflate:
                    c = zlib.compressobj(9, zlib.DEFLATED, -15)
                    stored = c.compress(data) + c.flush()
                else:
                    stored = data
                size = len(data) if declared is None else declared
                e = dict(name=name, method=8 if deflate else 0, crc=zlib.crc32(data), csize=len(stored),
                         usize=size, offset=len(self.body), mode=mode)
                self.body += struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, e['method'], 0, 0x21, e['crc'],
                                         e['csize'], size, len(name), 0) + name + stored
                self.entries.append(e)
                return e

            def add_tree(self):
                for n, data, mode in tree():
                    if data is None:
                        self.add(n, b'', 0o040755, deflate=False)
                    else:
                        self.add(n, data, 0o100000 | mode)

            def save(self, name):
                central = bytearray()
                for e in self.entries:
                    central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 0x031e, 20, 0, e['method'], 0, 0x21,
                                           e['crc'], e['csize'], e['usize'], len(e['name']), 0, 0, 0, 0,
                                           e['mode'] << 16, e['offset']) + e['name']
                end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(self.entries), len(self.entries),
                                  len(central), len(self.body), 0)
                with open(os.path.join(OUT, name), 'wb') as f:
                    f.write(bytes(self.body) + bytes(central) + end)

        def overlapping(name):
            # A better zip bomb's "quoted overlap": vendor.php's local header and data sit inside
            # kernel.php's stored data, so two listed files share bytes.
            inner = Zip()
            inner.add(TOP + '/vendor.php', PAYLOAD * 64, deflate=False)
            z = Zip()
            z.add_tree()
            kernel = z.add(TOP + '/kernel.php', bytes(inner.body), deflate=False)
            quoted = dict(inner.entries[0], offset=kernel['offset'] + 30 + len(kernel['name']))
            z.entries.append(quoted)
            z.save(name)

        def bad_local_signature(name):
            z = Zip()
            z.add_tree()
            e = z.add(TOP + '/extra.php', PAYLOAD)
            z.body[e['offset']:e['offset'] + 4] = b'PK\x07\x08'
            z.save(name)

        def local_central_mismatch(name):
            z = Zip()
            z.add_tree()
            e = z.add(TOP + '/shown.php', b'<?php // reviewed\n')
            at = e['offset'] + 30
            z.body[at:at + len(e['name'])] = (TOP + '/other.php').encode()
            z.save(name)

        def understated_bomb(name):
            z = Zip()
            z.add_tree()
            z.add(TOP + '/zeros.bin', bytes(8 << 20), declared=1000)
            z.save(name)

        def truncated_zip(name):
            zip_(name, lambda z: zadd(z, TOP + '/noise.bin', random.randbytes(200000)))
            path = os.path.join(OUT, name)
            data = open(path, 'rb').read()
            open(path, 'wb').write(data[:len(data) * 3 // 5])

        def truncated_tar(name):
            tar(name, lambda t: tadd(t, TOP + '/noise.bin', random.randbytes(200000)))
            path = os.path.join(OUT, name)
            data = open(path, 'rb').read()
            open(path, 'wb').write(data[:len(data) * 3 // 5])

        def million_entries(name):
            # Raw ustar headers, acme-pay/e/0000000 to acme-pay/e/0999999, built a thousand at a time:
            # one block of 1000 headers per possible digit sum of the thousands (the checksum only
            # depends on that), with the thousands spliced in by bytes.replace.
            head = bytearray()
            for n, data, mode in tree():
                info = tarfile.TarInfo(n)
                info.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
                info.mode, info.size, info.mtime = mode, len(data or b''), 1000000000
                head += info.tobuf(tarfile.USTAR_FORMAT, 'utf-8', 'strict')
                if data:
                    head += data + bytes(-len(data) % 512)
            template = tarfile.TarInfo('x')
            template.mode, template.mtime = 0o644, 1000000000
            block = bytearray(template.tobuf(tarfile.USTAR_FORMAT, 'utf-8', 'strict'))
            block[0:100] = bytes(100)
            block[148:156] = b' ' * 8
            base = sum(block)
            before, after = bytes(block[100:148]), bytes(block[156:])
            prefix = (TOP + '/e/').encode()
            units = [prefix + b'0000%03d' % unit for unit in range(1000)]
            blocks = [b''.join(n + bytes(100 - len(n)) + before + b'%06o\0 ' % (base + sum(n) + shift) + after
                               for n in units) for shift in range(37)]
            with gzip.open(os.path.join(OUT, name), 'wb', compresslevel=1) as g:
                g.write(head)
                for thousands in range(1000):
                    digits = b'%04d' % thousands
                    g.write(blocks[sum(digits) - 4 * 48].replace(prefix + b'0000', prefix + digits))
                g.write(bytes(1024))

        """#

    /// Builds every attack archive once, in one python3 process.
    final class Workshop: Sendable {
        let base: String
        var tree: String { base + "/tree/acme-pay" }
        var archives: String { base + "/archives" }
        /// Outside every site; absolute, symlink, hard link and traversal entries all aim here.
        var canary: String { base + "/outside" }

        init() throws {
            base = FileManager.default.temporaryDirectory.path + "/molam-attacks-\(UUID().uuidString)"
            for directory in [base + "/tree", base + "/archives", base + "/outside"] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            try Data("canary: nothing may change me\n".utf8)
                .write(to: URL(fileURLWithPath: canary + "/canary.txt"))
            try AcmePay.write(version: "1.1.0", into: base + "/tree")
            // Two builders side by side: the million-entry archive takes as long as all the others.
            let (slow, quick) = ArchiveAttackTests.attacks.partitioned { $0.file.hasPrefix("million") }
            let builders = try [slow, quick].map { attacks in
                let calls = attacks.map { "F = \(pythonString($0.file))\n\($0.build)" }
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                let script = ArchiveAttackTests.builderPrelude + calls.joined(separator: "\n")
                process.arguments = ["python3", "-c", script, tree, archives, canary]
                try process.run()
                return process
            }
            for builder in builders {
                builder.waitUntilExit()
                guard builder.terminationStatus == 0 else {
                    throw TestFailure("the attack archive builder failed")
                }
            }
        }

        deinit { try? FileManager.default.removeItem(atPath: base) }
    }

    /// What one attack did, as failures to report (empty when all held).
    struct Verdict: Sendable {
        let attack: Attack
        var failures: [String] = []
        /// Whether the run with the kill fault also exited 4.
        var refusedBeforeWriting = false
    }

    @Test("Every archive attack is refused: exit 4, one line, nothing outside staging; hostile modes sanitised")
    func attackMatrix() async throws {
        let workshop = try Workshop()
        // Control: the kill fault does fire on a release that gets as far as writing a file, so an
        // exit 4 under it means the refusal came first.
        let control = try Self.killControl(workshop)
        #expect(control == 128 + SIGKILL, "mid-extract=kill did not kill a good release's extraction: \(control)")

        let verdicts = try await withThrowingTaskGroup(of: Verdict.self) { group in
            var verdicts: [Verdict] = []
            // The slowest first, so it does not become the tail.
            let (slow, quick) = Self.attacks.partitioned { $0.file.hasPrefix("million") }
            var pending = (slow + quick)[...]
            // Two at a time: each run is mostly fsync and process start, so this halves the wall time
            // on two cores without oversubscribing them.
            func start(_ attack: Attack) {
                group.addTask { try await Self.offThePool { try Self.run(attack, workshop) } }
            }
            for _ in 0..<2 {
                if let attack = pending.popFirst() { start(attack) }
            }
            while let verdict = try await group.next() {
                verdicts.append(verdict)
                if let attack = pending.popFirst() { start(attack) }
            }
            return verdicts
        }
        #expect(verdicts.count == Self.attacks.count)
        for verdict in verdicts {
            for failure in verdict.failures { Issue.record("\(verdict.attack.file): \(failure)") }
        }
        let clean = verdicts.filter(\.failures.isEmpty)
        let refused = clean.filter { if case .refused = $0.attack.outcome { true } else { false } }
        let early = refused.filter(\.refusedBeforeWriting)
        let sanitised = clean.filter { if case .sanitised = $0.attack.outcome { true } else { false } }
        print("archive attack matrix: \(refused.count) attacks refused with exit 4 (\(early.count) before writing "
              + "a byte), \(sanitised.count) sanitised and accepted")
        print("  refused: " + refused.map(\.attack.file).sorted().joined(separator: ", "))
        print("  sanitised: " + sanitised.map(\.attack.file).sorted().joined(separator: ", "))
    }

    /// Runs blocking work (child processes, waitpid) on a Dispatch thread rather than the concurrency
    /// pool, which the rest of the suite needs.
    static func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result(catching: body)) }
        }
    }

    static func killControl(_ workshop: Workshop) throws -> Int32 {
        let site = try AcmePay.site()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try runTool(
            ["upgrade", "--archive", release.path, "--sha256", release.sha256] + site.siteOptions,
            environment: ["MOLAM_UPGRADE_FAULTS": "mid-extract=kill"])
        return result.status
    }

    static func run(_ attack: Attack, _ workshop: Workshop) throws -> Verdict {
        var verdict = Verdict(attack: attack)
        func check(_ condition: Bool, _ failure: @autoclosure () -> String) {
            if !condition { verdict.failures.append(failure()) }
        }
        let site = try AcmePay.site()
        try FileManager.default.createDirectory(atPath: site.root + "/outside", withIntermediateDirectories: true)
        try Data("site canary\n".utf8).write(to: URL(fileURLWithPath: site.root + "/outside/canary.txt"))
        let path = workshop.archives + "/" + attack.file
        guard FileManager.default.fileExists(atPath: path) else {
            verdict.failures.append("the builder did not write \(path)")
            return verdict
        }
        let release = (path: path, sha256: try sha256(ofFile: path))
        let before = try site.snapshot()
        let siteBefore = try Self.everythingButState(site)
        let canaryBefore = try TreeSnapshot.take(workshop.canary)

        switch attack.outcome {
        case .sanitised:
            let result = try site.upgrade(release, extra: attack.extra)
            check(result.status == 0, "exit \(result.status), expected 0: \(result.stderr)")
            check((try? site.installedVersion()) == "1.1.0", "1.1.0 is not installed")
            let live = try TreeSnapshot.take(site.pluginDirectory)
            let unsafe = try Self.specialOrWritableModes(site.pluginDirectory)
            check(unsafe.isEmpty, "live entries keep special or group/other-write bits: \(unsafe)")
            check(live.entries.count > 5, "the live tree is suspiciously small: \(live)")
        case .refused(let beforeWriting):
            var runs: [(label: String, environment: [String: String])] = [("", [:])]
            if beforeWriting {
                runs.append(("with mid-extract=kill: ", ["MOLAM_UPGRADE_FAULTS": "mid-extract=kill"]))
            }
            for (label, environment) in runs {
                let result = try runTool(
                    ["upgrade", "--archive", release.path, "--sha256", release.sha256] + attack.extra
                        + site.siteOptions,
                    environment: environment)
                check(result.status == 4, label + "exit \(result.status), expected 4: \(result.stderr)")
                check(result.stderrLines.count == 1, label + "stderr is not one line: \(result.stderr)")
                let line = result.stderrLines.first ?? ""
                // Every refusal names the archive as the user gave it, not the agent's copy.
                check(line.contains(release.path),
                      label + "the line does not name the archive: \(line)")
                check(line.contains(attack.reason),
                      label + "refused for another reason than '\(attack.reason)': \(line)")
                check((try? site.snapshot()) == before, label + "the site changed")
                check((try? Self.everythingButState(site)) == siteBefore,
                      label + "something outside the state directory changed")
                check((try? TreeSnapshot.take(workshop.canary)) == canaryBefore,
                      label + "the canary directory changed")
                let workArea = site.stateDirectory + "/work"
                let work = (try? FileManager.default.contentsOfDirectory(atPath: workArea)) ?? []
                check(work.isEmpty, label + "the work area is not empty: \(work)")
            }
            verdict.refusedBeforeWriting = beforeWriting && verdict.failures.isEmpty
        }
        return verdict
    }

    /// Every path under the site's root but the state directory, with kind, mode and content hash.
    static func everythingButState(_ site: TestSite) throws -> TreeSnapshot {
        var snapshot = try TreeSnapshot.take(site.root)
        snapshot.entries = snapshot.entries.filter { $0.key != "state" && !$0.key.hasPrefix("state/") }
        return snapshot
    }

    /// Entries under `root` whose mode has setuid, setgid, sticky, group-write or other-write set.
    static func specialOrWritableModes(_ root: String) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else {
            throw TestFailure("walk \(root)")
        }
        var found: [String] = []
        for relative in [""] + enumerator.compactMap({ $0 as? String }) {
            var info = stat()
            guard lstat(root + "/" + relative, &info) == 0 else { throw TestFailure("lstat \(relative)") }
            if info.st_mode & 0o7022 != 0 {
                found.append("'\(relative)' \(String(info.st_mode & 0o7777, radix: 8))")
            }
        }
        return found
    }
}

extension Array {
    /// (matching, the rest), each in order.
    func partitioned(_ isIncluded: (Element) -> Bool) -> ([Element], [Element]) {
        (filter(isIncluded), filter { !isIncluded($0) })
    }
}

/// A python string literal for `text` (file names here are plain ASCII).
private func pythonString(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
}
