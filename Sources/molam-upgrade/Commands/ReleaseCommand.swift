import Foundation
import UpgradeKit

/// `release keygen` and `release sign`: the plugin team's side of release signatures.
enum ReleaseCommand: AgentCommand {
    static let spec = CommandSpec(
        name: "release",
        abstract: "Create a release-signing key pair, or sign a release archive's metadata (for plugin CI).",
        arguments: "keygen --out PREFIX | sign --key FILE --archive PATH [--url URL]",
        options: [
            OptionSpec(names: ["--out"], value: "PREFIX",
                       help: "keygen: write PREFIX.key (private, mode 0600) and PREFIX.pub; never overwrite."),
            OptionSpec(names: ["--key"], value: "FILE",
                       help: "sign: the private key from keygen; refused if group or others can read it."),
            OptionSpec(names: ["--archive"], value: "PATH",
                       help: "sign: the release archive (.zip, .tar.gz, .tar.zst)."),
            OptionSpec(names: ["--url"], value: "URL",
                       help: "sign: the https:// download URL to publish (default: the archive's file:// URL, "
                           + "which agents refuse to download: give --url for a release they will fetch)."),
            OptionSpec(names: ["--plugin"], value: "NAME",
                       help: "sign: fail unless the archive's manifest names plugin NAME."),
            OptionSpec(names: ["--version"], value: "V",
                       help: "sign: fail unless the archive's manifest has version V."),
        ],
        discussion: """
            sign prints the release metadata JSON the central API serves. The Ed25519 signature covers the
            plugin name, version, SHA-256 and size, not the URL. Sites trust the key through the line in
            PREFIX.pub, listed in agent.json's release_public_keys.
            """)

    /// The action (keygen, sign) is a positional argument, checked by `run`.
    static let readsPositionals = true

    static func run(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        guard let action = arguments.positionals.first else {
            throw UsageError(description: "release needs an action: keygen or sign", command: "release")
        }
        if arguments.positionals.count > 1 {
            throw UsageError(
                description: "unexpected argument '\(arguments.positionals[1])' for 'release \(action)'",
                command: "release")
        }
        switch action {
        case "keygen":
            try refuse(["--key", "--archive", "--url", "--plugin", "--version"], for: action, in: arguments)
            return try keygen(arguments, output: output)
        case "sign":
            try refuse(["--out"], for: action, in: arguments)
            return try sign(arguments, output: output)
        default:
            throw UsageError(
                description: "unknown release action '\(action)' (expected keygen or sign)",
                command: "release")
        }
    }

    private static func keygen(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let prefix = try required("--out", for: "keygen", in: arguments)
        let generated = try ReleaseSigning.keygen(prefix: prefix)
        if output.json {
            output.emitJSON([
                "private_key_file": generated.privateKeyPath,
                "public_key_file": generated.publicKeyPath,
                "public_key": generated.publicKey.text,
                "key_id": generated.publicKey.keyID,
            ])
        } else {
            output.line(generated.publicKey.text)
        }
        return .ok
    }

    /// Prints the release metadata JSON: what the central API serves for this release.
    private static func sign(_ arguments: ParsedArguments, output: Output) throws -> ExitCode {
        let keyPath = try required("--key", for: "sign", in: arguments)
        let archive = try required("--archive", for: "sign", in: arguments)
        let release = try ReleaseSigning.sign(
            archive: archive, keyPath: keyPath, downloadURL: arguments.value("--url"),
            plugin: arguments.value("--plugin"), version: try Commands.version(arguments, "--version"))
        output.emitJSON(release.jsonObject)
        return .ok
    }

    private static func required(
        _ option: String, for action: String, in arguments: ParsedArguments
    ) throws -> String {
        guard let value = arguments.value(option) else {
            throw UsageError(description: "release \(action) needs \(option)", command: "release")
        }
        return value
    }

    private static func refuse(
        _ options: [String], for action: String, in arguments: ParsedArguments
    ) throws {
        if let given = options.first(where: { arguments.value($0) != nil }) {
            throw UsageError(
                description: "option '\(given)' does not apply to 'release \(action)'", command: "release")
        }
    }
}
