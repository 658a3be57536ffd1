import Foundation
import MolamCrypto
import Testing
@testable import UpgradeKit
#if canImport(Glibc)
import Glibc
#endif

/// A release as the API would serve it, signed by `key` when one is given.
private func release(signedBy key: Ed25519PrivateKey? = nil) throws -> ReleaseMetadata {
    var release = ReleaseMetadata(
        pluginName: "molam-form", version: try #require(SemanticVersion("4.0.0")),
        downloadURL: "https://releases.molam.example/molam-form-4.0.0.zip",
        sha256: String(repeating: "ab", count: 32), sizeBytes: 1_234_567)
    if let key { release.signature = try ReleaseSignature.sign(release, with: key) }
    return release
}

private func publicKey(of key: Ed25519PrivateKey) throws -> ReleasePublicKey {
    try ReleasePublicKey(text: "ed25519:" + key.publicKey.rawRepresentation.base64EncodedString())
}

@Suite("release signatures")
struct ReleaseSignatureTests {
    enum Tamper: String, CaseIterable, Sendable {
        case plugin, version, sha256, size
    }

    @Test("With no keys configured any release is accepted, signed, unsigned or garbled")
    func noKeys() throws {
        var unsigned = try release()
        #expect(try ReleaseSignature.verify(unsigned, keys: []) == nil)
        #expect(try ReleaseSignature.verify(release(signedBy: .generate()), keys: []) == nil)
        unsigned.signature = "%%% not base64"
        #expect(try ReleaseSignature.verify(unsigned, keys: []) == nil)
    }

    @Test("With keys configured an unsigned release is refused as unsigned")
    func unsigned() throws {
        let key = try publicKey(of: .generate())
        #expect(throws: ReleaseSignatureError.unsigned(plugin: "molam-form", version: "4.0.0")) {
            try ReleaseSignature.verify(release(), keys: [key])
        }
    }

    @Test("A signed release verifies and names the key that signed it")
    func signed() throws {
        let signer = try Ed25519PrivateKey.generate()
        let key = try publicKey(of: signer)
        let signed = try release(signedBy: signer)
        #expect(try ReleaseSignature.verify(signed, keys: [key]) == key.keyID)
        #expect(Data(base64Encoded: signed.signature ?? "")?.count == 64)
    }

    @Test("Changing any signed fact breaks the signature", arguments: Tamper.allCases)
    func tampered(_ field: Tamper) throws {
        let signer = try Ed25519PrivateKey.generate()
        var altered = try release(signedBy: signer)
        switch field {
        case .plugin: altered.pluginName = "molam-forms"
        case .version: altered.version = SemanticVersion("4.0.1") ?? altered.version
        case .sha256: altered.sha256 = String(repeating: "ab", count: 31) + "ac"
        case .size: altered.sizeBytes += 1
        }
        let expected = ReleaseSignatureError.badSignature(
            plugin: altered.pluginName, version: altered.version.description)
        #expect(throws: expected) {
            try ReleaseSignature.verify(altered, keys: [publicKey(of: signer)])
        }
    }

    @Test("The download URL is not signed, so a release can move to a mirror")
    func urlNotSigned() throws {
        let signer = try Ed25519PrivateKey.generate()
        var moved = try release(signedBy: signer)
        moved.downloadURL = "https://mirror.example/molam-form-4.0.0.zip"
        #expect(try ReleaseSignature.verify(moved, keys: [publicKey(of: signer)]) != nil)
    }

    @Test("A signature by a key that is not configured is a bad signature")
    func otherKey() throws {
        let signed = try release(signedBy: .generate())
        #expect(throws: ReleaseSignatureError.badSignature(plugin: "molam-form", version: "4.0.0")) {
            try ReleaseSignature.verify(
                signed, keys: [publicKey(of: .generate()), publicKey(of: .generate())])
        }
    }

    @Test("With two keys, a release signed by the second verifies under it (key rotation)")
    func rotation() throws {
        let old = try publicKey(of: .generate())
        let signer = try Ed25519PrivateKey.generate()
        let new = try publicKey(of: signer)
        #expect(try ReleaseSignature.verify(release(signedBy: signer), keys: [old, new]) == new.keyID)
        #expect(old.keyID != new.keyID)
    }

    @Test("A signature that is not base64 of 64 bytes is malformed", arguments: [
        "", "not base64!", Data(count: 63).base64EncodedString(), Data(count: 65).base64EncodedString(),
        Data(count: 64).base64EncodedString().dropLast().description,
    ])
    func malformedSignature(_ signature: String) throws {
        var garbled = try release()
        garbled.signature = signature
        #expect(throws: ReleaseSignatureError.malformedSignature(plugin: "molam-form", version: "4.0.0")) {
            try ReleaseSignature.verify(garbled, keys: [publicKey(of: .generate())])
        }
    }

    @Test("Key text parses with or without the ed25519: prefix, and with the .pub file's newline")
    func keyText() throws {
        let raw = try Ed25519PrivateKey.generate().publicKey.rawRepresentation
        let base64 = raw.base64EncodedString()
        let forms = ["ed25519:" + base64, base64, "ed25519:\(base64)\n", "  \(base64)  ", "ED25519:" + base64]
        for form in forms {
            let key = try ReleasePublicKey(text: form)
            #expect(key.key.rawRepresentation == raw, "\(form)")
            #expect(key.text == "ed25519:" + base64)
        }
    }

    @Test("Key text of the wrong length, not base64, empty or of another type is a malformed key",
          arguments: [
        "", "ed25519:", Data(count: 31).base64EncodedString(),
        "ed25519:" + Data(count: 33).base64EncodedString(), "ed25519:" + Data(count: 64).base64EncodedString(), "ed25519:not*base64",
        "rsa:" + Data(count: 32).base64EncodedString(), "-----BEGIN PRIVATE KEY-----",
    ])
    func malformedKey(_ text: String) throws {
        #expect {
            try ReleasePublicKey(text: text)
        } throws: { error in
            guard let error = error as? ReleaseSignatureError, case .malformedKey(let message) = error else {
                return false
            }
            // The message describes the text, never repeats it: it might be a pasted private key.
            let body = text.replacingOccurrences(of: "ed25519:", with: "")
            return body.count < 8 || !message.contains(body)
        }
    }

    @Test("A wrong-length key says how many bytes it has")
    func wrongLengthMessage() {
        #expect(throws: ReleaseSignatureError.malformedKey(
            "release public key is 31 bytes, not 32 (an Ed25519 public key)")) {
            try ReleasePublicKey(text: Data(count: 31).base64EncodedString())
        }
    }

    @Test("The key ID is the first 16 hex characters of the SHA-256 of the raw key")
    func keyID() throws {
        let vector = Ed25519Tests.vectors[0]
        let key = try ReleasePublicKey(text: try hex(vector.publicKey).base64EncodedString())
        let expected = SHA256.hex(try SHA256.digest(of: [UInt8](try hex(vector.publicKey))))
        #expect(key.keyID == String(expected.prefix(16)))
        #expect(key.keyID.count == 16)
    }

    @Test("Errors read as one line naming the release")
    func descriptions() {
        #expect(ReleaseSignatureError.unsigned(plugin: "molam-form", version: "4.0.0").description
                == "release molam-form 4.0.0 is not signed, but release_public_keys are configured")
        let errors: [ReleaseSignatureError] = [
            .badSignature(plugin: "molam-form", version: "4.0.0"),
            .malformedSignature(plugin: "molam-form", version: "4.0.0"),
        ]
        for error in errors {
            #expect(error.description.hasPrefix("release molam-form 4.0.0 "))
            #expect(!error.description.contains("\n"))
        }
    }
}

@Suite("release signing for plugin CI")
struct ReleaseSigningTests {
    /// A release archive holding molam-form with `manifest`, built with our own writer.
    static func archive(in directory: TemporaryDirectory, manifest: String) throws -> String {
        let path = directory.sub("release.tar")
        try makeTar(path) { writer in
            try writer.addDirectory(path: "molam-form", mode: 0o755)
            try writer.file("molam-form/molam-plugin.json", manifest)
            try writer.file("molam-form/molam-form.php", "<?php // molam-form\n")
        }
        return path
    }

    static let manifest = #"{"name": "molam-form", "version": "4.0.0", "tables": ["wp_molam_orders"]}"#

    @Test("keygen writes a 0600 PKCS#8 key and a 0644 one-line public key that match")
    func keygen() throws {
        let directory = try TemporaryDirectory()
        let generated = try ReleaseSigning.keygen(prefix: directory.sub("release"))
        #expect(generated.privateKeyPath == directory.sub("release.key"))
        #expect(Tree.mode(generated.privateKeyPath) == 0o600)
        #expect(Tree.mode(generated.publicKeyPath) == 0o644)
        let pub = try String(contentsOfFile: generated.publicKeyPath, encoding: .utf8)
        #expect(pub == generated.publicKey.text + "\n")
        let pem = try #require(FileManager.default.contents(atPath: generated.privateKeyPath))
        #expect(try ReleasePublicKey(Ed25519PrivateKey(pem: pem).publicKey) == generated.publicKey)
    }

    @Test("keygen refuses to overwrite either file and leaves the existing one as it was")
    func keygenNoOverwrite() throws {
        let directory = try TemporaryDirectory()
        let first = try ReleaseSigning.keygen(prefix: directory.sub("release"))
        let before = FileManager.default.contents(atPath: first.privateKeyPath)
        #expect(throws: UpgradeError.self) { try ReleaseSigning.keygen(prefix: directory.sub("release")) }
        #expect(FileManager.default.contents(atPath: first.privateKeyPath) == before)

        // Only a .pub is in the way: the .key made on the way is removed again.
        try Data("ed25519:old\n".utf8).write(to: URL(fileURLWithPath: directory.sub("other.pub")))
        #expect(throws: UpgradeError.self) { try ReleaseSigning.keygen(prefix: directory.sub("other")) }
        #expect(!FileManager.default.fileExists(atPath: directory.sub("other.key")))
        #expect(try String(contentsOfFile: directory.sub("other.pub"), encoding: .utf8) == "ed25519:old\n")
    }

    @Test("sign hashes the archive, reads name and version from its manifest, and signs")
    func sign() throws {
        let directory = try TemporaryDirectory()
        let generated = try ReleaseSigning.keygen(prefix: directory.sub("release"))
        let archive = try Self.archive(in: directory, manifest: Self.manifest)
        let release = try ReleaseSigning.sign(archive: archive, keyPath: generated.privateKeyPath)
        #expect(release.pluginName == "molam-form")
        #expect(release.version.description == "4.0.0")
        let bytes = try #require(FileManager.default.contents(atPath: archive))
        #expect(release.sha256 == (try SHA256.hexDigest(of: bytes)))
        #expect(release.sizeBytes == Int64(bytes.count))
        #expect(release.downloadURL == "file://" + archive)
        let keyID = try ReleaseSignature.verify(release, keys: [generated.publicKey])
        #expect(keyID == generated.publicKey.keyID)

        let agreeing = try ReleaseSigning.sign(
            archive: archive, keyPath: generated.privateKeyPath, downloadURL: "https://cdn.example/r.tar",
            plugin: "molam-form", version: SemanticVersion("4.0.0"))
        #expect(agreeing.downloadURL == "https://cdn.example/r.tar")
        #expect(agreeing.signature == release.signature)
    }

    @Test("sign refuses --plugin or --version that disagree with the manifest (exit 2)")
    func disagreement() throws {
        let directory = try TemporaryDirectory()
        let key = try ReleaseSigning.keygen(prefix: directory.sub("release")).privateKeyPath
        let archive = try Self.archive(in: directory, manifest: Self.manifest)
        for (plugin, version) in [("molam-pay", nil), (nil, SemanticVersion("4.0.1"))] {
            do {
                _ = try ReleaseSigning.sign(archive: archive, keyPath: key, plugin: plugin, version: version)
                Issue.record("signed despite \(plugin ?? "") \(version?.description ?? "")")
            } catch {
                #expect(error.exitCode == .usage, "\(error)")
                #expect(error.description.contains("does not match"), "\(error)")
            }
        }
    }

    @Test("sign refuses a key file that group or others can read, naming the file and its mode")
    func keyPermissions() throws {
        let directory = try TemporaryDirectory()
        let key = try ReleaseSigning.keygen(prefix: directory.sub("release")).privateKeyPath
        let archive = try Self.archive(in: directory, manifest: Self.manifest)
        for mode: mode_t in [0o640, 0o604, 0o644] {
            #expect(chmod(key, mode) == 0)
            do {
                _ = try ReleaseSigning.sign(archive: archive, keyPath: key)
                Issue.record("a key of mode \(String(mode, radix: 8)) was used")
            } catch {
                #expect(error.exitCode == .usage)
                #expect(error.description.contains(key), "\(error)")
                #expect(error.description.contains("mode 0" + String(mode, radix: 8)), "\(error)")
            }
        }
        #expect(chmod(key, 0o400) == 0)
        #expect(try ReleaseSigning.sign(archive: archive, keyPath: key).signature != nil)
    }

    @Test("sign refuses an archive that is not a release (exit 4) and a key that is not one (exit 2)")
    func badInputs() throws {
        let directory = try TemporaryDirectory()
        let generated = try ReleaseSigning.keygen(prefix: directory.sub("release"))
        let notArchive = directory.sub("notes.txt")
        try Data("just text".utf8).write(to: URL(fileURLWithPath: notArchive))
        let noManifest = directory.sub("bare.tar")
        try makeTar(noManifest) { writer in
            try writer.addDirectory(path: "molam-form", mode: 0o755)
            try writer.file("molam-form/readme.txt", "hi")
        }
        let badManifest = try Self.archive(
            in: directory, manifest: #"{"name": "Molam Form", "version": "4"}"#)
        for archive in [notArchive, noManifest, badManifest] {
            do {
                _ = try ReleaseSigning.sign(archive: archive, keyPath: generated.privateKeyPath)
                Issue.record("\(archive) was signed")
            } catch {
                #expect(error.exitCode == .refused, "\(archive): \(error)")
            }
        }
        // The public key file in place of the private one (made private so the mode check passes).
        #expect(chmod(generated.publicKeyPath, 0o600) == 0)
        do {
            _ = try ReleaseSigning.sign(archive: noManifest, keyPath: generated.publicKeyPath)
            Issue.record("a .pub file was used as a private key")
        } catch {
            #expect(error.exitCode == .usage, "\(error)")
            #expect(error.description.contains("not an unencrypted PKCS#8 Ed25519 private key"))
        }
        do {
            _ = try ReleaseSigning.sign(
                archive: directory.sub("missing.zip"), keyPath: generated.privateKeyPath)
            Issue.record("a missing archive was signed")
        } catch {
            #expect(error.exitCode == .usage, "\(error)")
        }
    }
}
