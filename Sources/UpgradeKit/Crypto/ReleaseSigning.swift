import Foundation
import MolamCrypto
#if canImport(Glibc)
import Glibc
#endif

/// What `molam-upgrade release` does for plugin teams' CI: make a signing key pair, and turn a release
/// archive into the signed metadata the central API serves. Errors are `UpgradeError`s:
/// `.configuration` (exit 2) for keys, options and files the user named; `.refused` (exit 4) for an
/// archive that is not a release.
public enum ReleaseSigning {
    /// The files `keygen` wrote and the public key, as it goes into `release_public_keys`.
    public struct GeneratedKey: Sendable {
        public let privateKeyPath: String
        public let publicKeyPath: String
        public let publicKey: ReleasePublicKey
    }

    /// Writes a new key pair to `PREFIX.key` (PKCS#8 PEM, 0600) and `PREFIX.pub` (one line,
    /// `ed25519:<base64>`, 0644). Neither file may exist: overwriting a signing key would orphan
    /// every site that trusts it.
    public static func keygen(prefix: String) throws(UpgradeError) -> GeneratedKey {
        guard !prefix.isEmpty, !prefix.hasSuffix("/") else {
            throw .configuration("--out '\(prefix)' must be a file name prefix, such as keys/release")
        }
        let privatePath = prefix + ".key"
        let publicPath = prefix + ".pub"
        let publicKey: ReleasePublicKey
        do {
            let key = try Ed25519PrivateKey.generate()
            var pem = try key.pemRepresentation()
            // The PEM is the secret itself: wiped from memory once written.
            defer { pem.resetBytes(in: 0..<pem.count) }
            publicKey = try ReleasePublicKey(try key.publicKey)
            try createNew(privatePath, contents: pem, mode: 0o600)
        } catch let error as UpgradeError {
            throw error
        } catch {
            throw .failed("cannot generate a release-signing key: \(error)")
        }
        do {
            try createNew(publicPath, contents: Data((publicKey.text + "\n").utf8), mode: 0o644)
        } catch {
            // Half a key pair is of no use; the private key was made by this call, so it goes.
            unlink(privatePath)
            throw error
        }
        do {
            // Made absolute: syncParent of a bare name such as "release.key" would open "".
            try FileSystem.syncParent(of: URL(fileURLWithPath: privatePath).path)
        } catch {
            throw .configuration("\(error)")
        }
        return GeneratedKey(privateKeyPath: privatePath, publicKeyPath: publicPath, publicKey: publicKey)
    }

    /// The signed metadata of a release archive. Plugin name and version come from the archive's own
    /// `molam-plugin.json`; `plugin` and `version`, when given, must agree with it (a CI job that
    /// built the wrong tree stops here). `downloadURL` defaults to the archive's `file://` URL.
    public static func sign(
        archive: String, keyPath: String, downloadURL: String? = nil, plugin: String? = nil,
        version: SemanticVersion? = nil
    ) throws(UpgradeError) -> ReleaseMetadata {
        let key = try loadPrivateKey(keyPath)
        let (sha256, size) = try hash(archive: archive)
        let manifest = try manifest(of: archive)
        let source = "\(archive), whose \(PluginManifest.fileName)"
        if let plugin, plugin != manifest.name {
            throw .configuration("--plugin \(plugin) does not match \(source) names \(manifest.name)")
        }
        if let version, version != manifest.version {
            throw .configuration("--version \(version) does not match \(source) says \(manifest.version)")
        }
        let url = downloadURL ?? URL(fileURLWithPath: archive).standardizedFileURL.absoluteString
        // The API's decoder refuses line breaks in fields; refusing them here keeps the two in step.
        guard !url.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw .configuration("--url must be one line")
        }
        var release = ReleaseMetadata(
            pluginName: manifest.name, version: manifest.version, downloadURL: url, sha256: sha256,
            sizeBytes: size)
        do {
            release.signature = try ReleaseSignature.sign(release, with: key)
        } catch {
            throw .failed("cannot sign \(archive): \(error)")
        }
        return release
    }

    /// Reads a PEM private key, refusing one that group or others may read: a signing key that
    /// leaked to another account on a CI runner can sign releases for every merchant.
    static func loadPrivateKey(_ path: String) throws(UpgradeError) -> Ed25519PrivateKey {
        let fd: Int32
        do {
            fd = try systemCall("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        } catch {
            throw .configuration("cannot read key file: \(error)")
        }
        defer { close(fd) }
        // fstat on the open descriptor: the mode checked is the mode of the file read.
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw .configuration("key file \(path) is not a regular file")
        }
        let mode = info.st_mode & 0o7777
        guard mode & 0o077 == 0 else {
            throw .configuration("key file \(path) has mode \(octal(mode)), readable by group or others; "
                + "run 'chmod 600 \(path)'")
        }
        guard info.st_size <= 64 << 10 else {
            throw .configuration("key file \(path) is larger than 64 KiB; it is not a PEM private key")
        }
        var pem: Data
        do {
            pem = try readAll(fd, path: path)
        } catch {
            throw .configuration("cannot read key file: \(error)")
        }
        defer { pem.resetBytes(in: 0..<pem.count) }
        do {
            return try Ed25519PrivateKey(pem: pem)
        } catch {
            throw .configuration(
                "key file \(path) is not an unencrypted PKCS#8 Ed25519 private key (\(error.message))")
        }
    }

    /// The archive's SHA-256 and size, read once in chunks so memory stays flat for any size.
    static func hash(archive path: String) throws(UpgradeError) -> (sha256: String, size: Int64) {
        do {
            let fd = try systemCall("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) }
            defer { close(fd) }
            guard let hasher = try? SHA256() else {
                throw SystemError(call: "EVP_MD_CTX_new", path: path, errno: ENOMEM)
            }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var size: Int64 = 0
            while true {
                let count = try systemCall("read", path: path) { read(fd, &buffer, buffer.count) }
                if count == 0 { break }
                buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                size += Int64(count)
            }
            return (hasher.finalizeHex(), size)
        } catch {
            throw .configuration("cannot read release archive: \(error)")
        }
    }

    static func manifest(of archive: String) throws(UpgradeError) -> PluginManifest {
        let data: Data?
        do {
            data = try SafeExtractor.readMember(named: PluginManifest.fileName, fromArchive: archive)
        } catch {
            throw .refused("\(error)")
        }
        guard let data else {
            throw .refused(
                "release archive \(archive) has no \(PluginManifest.fileName) in its top directory")
        }
        do {
            return try PluginManifest.parse(data, source: "\(archive): \(PluginManifest.fileName)")
        } catch {
            throw .refused("\(error)")
        }
    }

    /// Creates `path`, which must not exist, with exactly `mode` (whatever the umask), durably.
    /// If anything fails after the file was created, it is removed.
    private static func createNew(_ path: String, contents: Data, mode: mode_t) throws(UpgradeError) {
        let fd: Int32
        do {
            // O_EXCL: never replace an existing key, and never follow a symlink planted at the path.
            fd = try systemCall("open", path: path) {
                open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            }
        } catch where error.errno == EEXIST {
            throw .configuration(
                "\(path) already exists; refusing to overwrite it (move it away or choose another --out)")
        } catch {
            throw .configuration("cannot create \(path): \(error.message)")
        }
        do {
            try systemCall("fchmod", path: path) { fchmod(fd, mode) }
            try writeAll(fd, contents, path: path)
            try systemCall("fsync", path: path) { fsync(fd) }
            close(fd)
        } catch {
            close(fd)
            unlink(path)
            throw .configuration("cannot write \(path): \(error.message)")
        }
    }

    private static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(SystemError) {
        let bytes = [UInt8](data)
        var offset = 0
        while offset < bytes.count {
            let start = offset
            offset += try systemCall("write", path: path) {
                bytes[start...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            }
        }
    }

    private static func readAll(_ fd: Int32, path: String) throws(SystemError) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        // The buffer held the key: zeroed before it is freed.
        defer { for index in buffer.indices { buffer[index] = 0 } }
        while true {
            let count = try systemCall("read", path: path) { read(fd, &buffer, buffer.count) }
            if count == 0 { return data }
            data.append(contentsOf: buffer[0..<count])
        }
    }

    private static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
