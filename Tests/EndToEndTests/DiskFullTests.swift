import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// Why tmpfs filesystems cannot be mounted here (not root, no CAP_SYS_ADMIN in this container), or nil
/// when they can. Decided once, by mounting one.
let tmpfsUnavailableReason: String? = {
    guard geteuid() == 0 else { return "not running as root" }
    let probe = FileManager.default.temporaryDirectory.path + "/molam-tmpfs-probe-\(UUID().uuidString)"
    guard mkdir(probe, 0o700) == 0 else { return "mkdir \(probe): \(String(cString: strerror(errno)))" }
    defer { rmdir(probe) }
    guard mount("tmpfs", probe, "tmpfs", 0, "size=64k") == 0 else {
        return "mount -t tmpfs: \(String(cString: strerror(errno)))"
    }
    umount2(probe, Int32(MNT_DETACH))
    return nil
}()

let canMountTmpfs = tmpfsUnavailableReason == nil

/// A small tmpfs mounted at `path` (created if missing) for one test: a filesystem that really runs
/// out of space. Unmounted by `unmount()` or at the latest in `deinit`, lazily (MNT_DETACH), so a
/// descriptor some child still holds cannot keep the test's directory from being removed.
final class TmpfsMount {
    let path: String
    private var mounted = false
    /// The site the mount point is in, kept alive until the mount is gone: its `deinit` removes the
    /// directory the mount sits in.
    private let site: TestSite

    init(at path: String, size: Int, in site: TestSite) throws {
        self.path = path
        self.site = site
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(size),mode=0755") == 0 else {
            let reason = String(cString: strerror(errno))
            throw TestFailure("mount -t tmpfs -o size=\(size) tmpfs \(path): \(reason)")
        }
        mounted = true
    }

    deinit { unmount() }

    func unmount() {
        if mounted { umount2(path, Int32(MNT_DETACH)) }
        mounted = false
    }

    /// Bytes an unprivileged writer could still use.
    var freeBytes: Int64 {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return 0 }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }
}

/// `count` bytes that no compressor can shrink.
func randomBytes(_ count: Int) throws -> Data {
    guard let urandom = FileHandle(forReadingAtPath: "/dev/urandom") else {
        throw TestFailure("open /dev/urandom")
    }
    defer { try? urandom.close() }
    guard let data = try urandom.read(upToCount: count), data.count == count else {
        throw TestFailure("short read from /dev/urandom")
    }
    return data
}

/// Writes zeros into `path` until only about `leaving` bytes are free on `mount` (tmpfs allocates
/// what is written, zeros included).
func fill(_ mount: TmpfsMount, leaving: Int64, path: String) throws {
    let chunk = Data(count: 64 * 1024)
    guard FileManager.default.createFile(atPath: path, contents: nil),
          let handle = FileHandle(forWritingAtPath: path) else { throw TestFailure("create \(path)") }
    defer { try? handle.close() }
    while mount.freeBytes > leaving + Int64(chunk.count) {
        try handle.write(contentsOf: chunk)
    }
}

extension TestSite {
    /// Moves `wp-content/plugins` onto a fresh tmpfs of `size` bytes, keeping modes, so the plugin's
    /// filesystem (and the hidden work directory next to it) is one that can fill up. The state
    /// directory stays where it was, on another filesystem.
    func movePluginsOntoTmpfs(size: Int) throws -> TmpfsMount {
        let plugins = root + "/wp-content/plugins"
        let aside = root + "/wp-content/plugins-aside"
        try FileManager.default.moveItem(atPath: plugins, toPath: aside)
        let mount = try TmpfsMount(at: plugins, size: size, in: self)
        try shell(["cp", "-a", aside + "/" + pluginName, plugins + "/"])
        try FileManager.default.removeItem(atPath: aside)
        return mount
    }

    /// What is left of runs in the work areas: `<state>/work/*` and `.molam-upgrade-work/*` next to the
    /// plugin (its `.htaccess`, which stays, excepted).
    func workLeftovers() -> [String] {
        let areas = [stateDirectory + "/work", (pluginDirectory as NSString).deletingLastPathComponent
                     + "/.molam-upgrade-work"]
        return areas.flatMap { area in
            ((try? FileManager.default.contentsOfDirectory(atPath: area)) ?? [])
                .filter { $0 != ".htaccess" }.map { area + "/" + $0 }
        }
    }

    /// Backups a crash or a failure left half-written.
    func partialBackups() -> [String] {
        let directory = stateDirectory + "/backups/" + pluginName
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(".partial-") }
    }
}

/// The agent on a full disk: every step that writes fails cleanly with exit 1, one line naming the lack
/// of space, and the site exactly as it was. Each scenario mounts a tmpfs small enough that the step
/// under test really gets ENOSPC from the kernel.
@Suite("disk full", .enabled(if: canMountTmpfs, "cannot mount tmpfs here: \(tmpfsUnavailableReason ?? "")"))
struct DiskFullTests {
    /// The checks every scenario ends with; `step` is a part of the one stderr line that says what failed.
    private func expectNothingChanged(
        _ site: TestSite, before: SiteSnapshot, result: ProcessResult, step: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(result.status == 1, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderrLines.count == 1, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.lowercased().contains("no space left"), "\(result.stderr)",
                sourceLocation: sourceLocation)
        #expect(result.stderr.contains(step), "\(result.stderr)", sourceLocation: sourceLocation)
        let after = try site.snapshot()
        #expect(after.tree == before.tree, sourceLocation: sourceLocation)
        #expect(after.databaseDump == before.databaseDump, sourceLocation: sourceLocation)
        // Its content, not its bytes: the shadow tables made before the backup failed came and went.
        #expect(site.partialBackups().isEmpty, sourceLocation: sourceLocation)
        #expect(site.workLeftovers().isEmpty, "\(site.workLeftovers())", sourceLocation: sourceLocation)
        let status = try site.run(["status"])
        #expect(status.status == 0, "\(status.stderr)", sourceLocation: sourceLocation)
        #expect(status.stdout.contains(try site.installedVersion()), sourceLocation: sourceLocation)
    }

    @Test("A state directory too small for the backup: exit 1 before any change, one line, no partial backup")
    func backupOutOfSpace() throws {
        let site = try AcmePay.site()
        // A live tree of 6 MiB that zstd cannot shrink, backed up into a 2 MiB state directory.
        try randomBytes(6 << 20).write(to: URL(fileURLWithPath: site.pluginDirectory + "/public/assets.bin"))
        let state = try TmpfsMount(at: site.stateDirectory, size: 2 << 20, in: site)
        defer { state.unmount() }
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", format: .tarGz)

        let result = try site.upgrade(release)
        try expectNothingChanged(site, before: before, result: result, step: "backup of acme-pay 1.0.0 failed")
        #expect(try site.installedVersion() == "1.0.0")
        // Nothing left taking space either: the failed archive was removed.
        #expect(state.freeBytes > 1 << 20)
    }

    @Test("A plugin filesystem too small to stage the release: exit 1 before any change, one line")
    func stagingOutOfSpace() throws {
        let site = try AcmePay.site()
        // 4 MiB next to the plugin: the 3 MiB release archive is copied there, its 3 MiB tree does not fit.
        let plugins = try site.movePluginsOntoTmpfs(size: 4 << 20)
        defer { plugins.unmount() }
        let parent = site.root + "/build-big"
        let tree = try AcmePay.write(version: "1.1.0", into: parent)
        try randomBytes(3 << 20).write(to: URL(fileURLWithPath: tree + "/public/assets.bin"))
        let release = try site.release(from: tree, format: .tarZst)
        let before = try site.snapshot()

        let result = try site.upgrade(release)
        try expectNothingChanged(site, before: before, result: result, step: "staging failed, nothing was changed")
        #expect(!FileManager.default.fileExists(atPath: site.stateDirectory + "/backups/acme-pay"))
        #expect(plugins.freeBytes > 3 << 20)
    }

    @Test("A rollback restoring from the backup archive with no room: exit 1, still upgraded; with room, it works")
    func restoreOutOfSpace() throws {
        let site = try AcmePay.site()
        let plugins = try site.movePluginsOntoTmpfs(size: 8 << 20)
        defer { plugins.unmount() }
        // 1.0.0 carries 2 MiB that 1.1.0 does not: restoring 1.0.0 needs that much room.
        let assets = try randomBytes(2 << 20)
        try assets.write(to: URL(fileURLWithPath: site.pluginDirectory + "/public/assets.bin"))
        let original = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let upgraded = try site.upgrade(release)
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        #expect(try site.installedVersion() == "1.1.0")

        // The kept tree of 1.0.0 is gone: the rollback has only the backup archive to work from.
        let runs = site.workLeftovers()
        #expect(runs.contains { FileManager.default.fileExists(atPath: $0 + "/stage/acme-pay/public/assets.bin") },
                "\(runs)")
        for run in runs { try FileSystem.removeTree(run) }
        try fill(plugins, leaving: 512 << 10, path: site.root + "/wp-content/plugins/filler")
        let before = try site.snapshot()

        let result = try site.run(["rollback", "--restore-tables"])
        // The line names the filesystem that is full: the work area next to the plugin.
        try expectNothingChanged(site, before: before, result: result,
                                 step: "/wp-content/plugins/.molam-upgrade-work/")
        #expect(try site.installedVersion() == "1.1.0")

        // The failure was the space and nothing else: freed, the same rollback restores 1.0.0 exactly.
        try FileManager.default.removeItem(atPath: site.root + "/wp-content/plugins/filler")
        let retried = try site.run(["rollback", "--restore-tables"])
        #expect(retried.status == 0, "\(retried.stderr)")
        let after = try site.snapshot()
        #expect(after.tree == original.tree)
        #expect(after.databaseDumpWithoutQuarantine == original.databaseDump)
    }
}
