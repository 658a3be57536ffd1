import Foundation
import MolamCrypto
#if canImport(Glibc)
import Glibc
#endif

/// `check`: what `upgrade` would decide about a release, and why, without taking the lock or
/// writing anything.
public enum Check {
    public enum Decision: String, Sendable { case upgrade, skip, refuse }

    public struct Result: Sendable {
        public var plugin: String
        public var installedVersion: String
        public var releaseVersion: String?
        public var decision: Decision
        public var reason: String
        public var exitCode: ExitCode
    }

    public static func run(_ options: Pipeline.UpgradeOptions, context: UpgradeContext) throws(UpgradeError) -> Result {
        try Pipeline.validate(sha256: options.sha256)
        let installed: PluginManifest
        do {
            installed = try Pipeline.openSite(context.site).0
        } catch let error as UpgradeError {
            throw error
        } catch {
            throw .configuration("\(error)")
        }
        func result(_ decision: Decision, _ release: String?, _ reason: String, _ code: ExitCode) -> Result {
            Result(plugin: installed.name, installedVersion: installed.version.description, releaseVersion: release,
                   decision: decision, reason: reason, exitCode: code)
        }
        let actual: String
        do {
            actual = try hashFile(options.archive)
        } catch {
            throw .configuration("release archive \(options.archive): \(error.message)")
        }
        guard actual == options.sha256.lowercased() else {
            return result(.refuse, nil, "SHA-256 of \(options.archive) is \(actual), expected \(options.sha256.lowercased())",
                          .refused)
        }
        let target: PluginManifest
        do {
            guard let data = try SafeExtractor.readMember(named: PluginManifest.fileName, fromArchive: options.archive) else {
                return result(.refuse, nil, "release archive \(options.archive) has no \(PluginManifest.fileName)", .refused)
            }
            target = try PluginManifest.parse(data, source: "\(options.archive): \(PluginManifest.fileName)")
        } catch {
            return result(.refuse, nil, "\(error)", .refused)
        }
        do {
            try Pipeline.checkTarget(target, installed: installed, options: options)
        } catch let error as Pipeline.AlreadyInstalled {
            return result(.skip, target.version.description, "\(error)", .ok)
        } catch {
            return result(.refuse, target.version.description, "\(error)", .refused)
        }
        return result(.upgrade, target.version.description,
                      "would upgrade \(installed.name) \(installed.version) → \(target.version)", .ok)
    }

    static func hashFile(_ path: String) throws(SystemError) -> String {
        let fd = try systemCall("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        guard let hasher = try? SHA256() else { throw SystemError(call: "EVP_MD_CTX_new", path: path, errno: ENOMEM) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try systemCall("read", path: path) { read(fd, &buffer, buffer.count) }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return hasher.finalizeHex()
    }
}
