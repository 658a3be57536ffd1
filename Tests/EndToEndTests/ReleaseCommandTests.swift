import Foundation
import Testing
import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// Permission bits of a file, as `ls -l` would show them.
private func mode(_ path: String) -> mode_t {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return info.st_mode & 0o7777
}

@Suite("release keygen and sign, as a plugin team's CI runs them")
struct ReleaseCommandTests {
    @Test("keygen then sign: the printed release verifies under the .pub key",
          arguments: ReleaseFormat.allCases)
    func keygenAndSign(_ format: ReleaseFormat) throws {
        let site = try TestSite(pluginName: "molam-form")
        let prefix = site.root + "/ci/release"
        try FileManager.default.createDirectory(atPath: site.root + "/ci", withIntermediateDirectories: true)

        let keygen = try runTool(["release", "keygen", "--out", prefix, "--json"])
        #expect(keygen.status == 0, "\(keygen.stderr)")
        let generated = try #require(
            try JSONSerialization.jsonObject(with: Data(keygen.stdout.utf8)) as? [String: Any])
        #expect(generated["private_key_file"] as? String == prefix + ".key")
        #expect(generated["public_key_file"] as? String == prefix + ".pub")
        #expect(mode(prefix + ".key") == 0o600)
        #expect(mode(prefix + ".pub") == 0o644)
        let pub = try String(contentsOfFile: prefix + ".pub", encoding: .utf8)
        #expect(pub == (generated["public_key"] as? String ?? "?") + "\n")
        #expect(pub.hasPrefix("ed25519:"))

        let archive = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: format)
        let sign = try runTool(["release", "sign", "--key", prefix + ".key", "--archive", archive.path])
        #expect(sign.status == 0, "\(sign.stderr)")
        #expect(sign.stderr.isEmpty)
        let release = try ReleaseMetadata.decode(
            Data(sign.stdout.utf8), source: "release sign", expectedPlugin: "unused")
        #expect(release.pluginName == "molam-form")
        #expect(release.version.description == "4.0.0")
        #expect(release.sha256 == archive.sha256)
        #expect(release.downloadURL == "file://" + archive.path)
        let size = try FileManager.default.attributesOfItem(atPath: archive.path)[.size] as? Int
        #expect(release.sizeBytes == Int64(size ?? -1))
        let key = try ReleasePublicKey(text: pub)
        #expect(try ReleaseSignature.verify(release, keys: [key]) == generated["key_id"] as? String)

        // What the central API serves is this JSON; an edited copy no longer verifies.
        var edited = release
        edited.version = SemanticVersion("4.0.1") ?? release.version
        #expect(throws: ReleaseSignatureError.self) { try ReleaseSignature.verify(edited, keys: [key]) }
    }

    @Test("Without --json keygen prints only the public key line")
    func keygenPlain() throws {
        let site = try TestSite(pluginName: "molam-form")
        let result = try runTool(["release", "keygen", "--out", site.root + "/k"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == (try String(contentsOfFile: site.root + "/k.pub", encoding: .utf8)))
    }

    @Test("A second keygen to the same prefix exits 2 and leaves the old key pair untouched")
    func keygenNoOverwrite() throws {
        let site = try TestSite(pluginName: "molam-form")
        let prefix = site.root + "/release"
        #expect(try runTool(["release", "keygen", "--out", prefix]).status == 0)
        let key = FileManager.default.contents(atPath: prefix + ".key")
        let pub = FileManager.default.contents(atPath: prefix + ".pub")
        let again = try runTool(["release", "keygen", "--out", prefix])
        #expect(again.status == 2)
        #expect(again.stderrLines.count == 1)
        #expect(again.stderr.contains(prefix + ".key"), "\(again.stderr)")
        #expect(FileManager.default.contents(atPath: prefix + ".key") == key)
        #expect(FileManager.default.contents(atPath: prefix + ".pub") == pub)
        #expect(mode(prefix + ".key") == 0o600)
    }

    @Test("A key file that group or others can read is refused with exit 2 and one line naming it")
    func groupReadableKey() throws {
        let site = try TestSite(pluginName: "molam-form")
        let prefix = site.root + "/release"
        #expect(try runTool(["release", "keygen", "--out", prefix]).status == 0)
        #expect(chmod(prefix + ".key", 0o640) == 0)
        let archive = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .zip)
        let result = try runTool(["release", "sign", "--key", prefix + ".key", "--archive", archive.path])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains(prefix + ".key") && result.stderr.contains("0640"), "\(result.stderr)")
    }

    @Test("sign refuses a version that disagrees with the archive (exit 2) and a non-archive (exit 4)")
    func signRefusals() throws {
        let site = try TestSite(pluginName: "molam-form")
        let prefix = site.root + "/release"
        #expect(try runTool(["release", "keygen", "--out", prefix]).status == 0)
        let archive = try site.release(from: TestSite.fixturePlugin("4.0.0"), format: .tarGz)
        let sign = ["release", "sign", "--key", prefix + ".key", "--archive"]
        let wrongVersion = try runTool(sign + [archive.path, "--version", "4.0.1"])
        #expect(wrongVersion.status == 2)
        #expect(wrongVersion.stderr.contains("does not match"), "\(wrongVersion.stderr)")
        let notArchive = try runTool(sign + [prefix + ".pub"])
        #expect(notArchive.status == 4, "\(notArchive.stderr)")
        #expect(notArchive.stderrLines.count == 1)
        let agreeing = try runTool(sign + [archive.path, "--plugin", "molam-form", "--version", "4.0.0",
                                          "--url", "https://releases.example/molam-form-4.0.0.tar.gz"])
        #expect(agreeing.status == 0, "\(agreeing.stderr)")
        let url = try ReleaseMetadata.decode(
            Data(agreeing.stdout.utf8), source: "release sign", expectedPlugin: "unused").downloadURL
        #expect(url == "https://releases.example/molam-form-4.0.0.tar.gz")
    }

    @Test("A missing or unknown action, or an option of the other action, is a usage error", arguments: [
        ["release"], ["release", "publish"], ["release", "keygen"],
        ["release", "keygen", "extra", "--out", "x"], ["release", "sign", "--archive", "a.zip"], ["release", "keygen", "--out", "x", "--archive", "a.zip"],
    ])
    func usage(_ arguments: [String]) throws {
        let result = try runTool(arguments)
        #expect(result.status == 2)
        #expect(result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("release --help"), "\(result.stderr)")
    }
}
