import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A plugin tree the web server's user owns (and may write to), upgraded by an agent running as root.
@Suite("ownership of the new tree")
struct OwnershipTests {
    @Test("The new tree is given the old tree's owner and top-directory mode inside staging, before the swap",
          .enabled(if: geteuid() == 0, "needs root to give files away"))
    func newTreeMatchesOldOwner() throws {
        let site = try AcmePay.site()
        try shell(["chown", "-R", "33:33", site.pluginDirectory])
        chmod(site.pluginDirectory, 0o750)
        let release = try AcmePay.release(site, version: "1.1.0", format: .tarGz)
        // Staged files must already be the web user's when the swap happens: checked at after-stage.
        let staged = try startTool(
            ["upgrade", "--archive", release.path, "--sha256", release.sha256] + site.siteOptions,
            environment: ["MOLAM_UPGRADE_FAULTS": "after-stage=kill"])
        #expect(try staged.wait().status == 128 + SIGKILL)
        let work = site.stateDirectory + "/work"
        let run = try #require(try FileManager.default.contentsOfDirectory(atPath: work).first)
        let stagedTree = work + "/" + run + "/stage/acme-pay"
        #expect(try owners(stagedTree) == ["33:33"])
        #expect(try site.run(["recover"]).status == 0)

        let result = try site.upgrade(release)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try site.installedVersion() == "1.1.0")
        #expect(try owners(site.pluginDirectory) == ["33:33"])
        var info = stat()
        #expect(lstat(site.pluginDirectory, &info) == 0 && info.st_mode & 0o7777 == 0o750)
        // The web user can still read and run its plugin.
        let read = Process()
        read.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        read.arguments = ["-u", "www-data", "--", "cat", site.pluginDirectory + "/acme-pay.php"]
        let output = Pipe()
        read.standardOutput = output
        try read.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        read.waitUntilExit()
        #expect(read.terminationStatus == 0 && text.contains("Version: 1.1.0"), "\(text)")
    }

    @Test("The work area next to the plugin is refused when it is not the agent's alone",
          .enabled(if: canMountTmpfsForOwnership, "needs root and a tmpfs mount (another filesystem for the state)"))
    func hiddenWorkAreaMustBeOurs() throws {
        let site = try AcmePay.site()
        // The state directory on another filesystem than the plugin puts the work area next to it.
        let mount = site.root + "/wp-content/plugins"
        let other = site.root + "/other-fs"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try shell(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", other])
        defer { _ = try? shell(["umount", other]) }
        let state = other + "/state"
        let planted = mount + "/.molam-upgrade-work"
        try FileManager.default.createDirectory(atPath: planted, withIntermediateDirectories: true)
        try shell(["chown", "33:33", planted])
        chmod(planted, 0o777)
        let before = try site.snapshot()
        let release = try AcmePay.release(site, version: "1.1.0", format: .zip)
        let result = try runTool(["upgrade", "--archive", release.path, "--sha256", release.sha256,
                                  "--plugin-dir", site.pluginDirectory, "--db", "sqlite://" + site.databasePath,
                                  "--state-dir", state])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains(".molam-upgrade-work"))
        #expect(try site.snapshot() == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: planted).isEmpty)
    }
}

/// The distinct "uid:gid" pairs of every entry under `root`, itself included (lstat, no following).
func owners(_ root: String) throws -> Set<String> {
    var found: Set<String> = []
    var info = stat()
    guard lstat(root, &info) == 0 else { throw TestFailure("lstat \(root)") }
    found.insert("\(info.st_uid):\(info.st_gid)")
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let relative = enumerator?.nextObject() as? String {
        guard lstat(root + "/" + relative, &info) == 0 else { throw TestFailure("lstat \(relative)") }
        found.insert("\(info.st_uid):\(info.st_gid)")
    }
    return found
}

/// Whether this test process may mount a tmpfs (root with CAP_SYS_ADMIN), tried once.
let canMountTmpfsForOwnership: Bool = {
    guard geteuid() == 0 else { return false }
    let probe = FileManager.default.temporaryDirectory.appendingPathComponent("tmpfs-probe-\(UUID())").path
    guard (try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)) != nil else {
        return false
    }
    defer { try? FileManager.default.removeItem(atPath: probe) }
    guard (try? shell(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe])) != nil else { return false }
    return (try? shell(["umount", probe])) != nil
}()
