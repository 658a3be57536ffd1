import Foundation
import MolamCrypto
import Testing

@Suite("Ed25519 over libcrypto")
struct Ed25519Tests {
    /// RFC 8032 section 7.1, tests 1 and 2: seed, public key, message, signature.
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let seed: String
        let publicKey: String
        let message: String
        let signature: String

        var testDescription: String { name }
    }

    static let vectors = [
        Vector(
            name: "RFC 8032 test 1 (empty message)",
            seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            message: "",
            signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        Vector(
            name: "RFC 8032 test 2 (one byte)",
            seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            message: "72",
            signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ]

    @Test("RFC 8032 vectors: the seed gives the public key and the signature, which verifies",
          arguments: vectors)
    func rfc8032(_ vector: Vector) throws {
        let key = try Ed25519PrivateKey(rawSeed: try hex(vector.seed))
        let publicKey = try key.publicKey
        #expect(publicKey.rawRepresentation == (try hex(vector.publicKey)))
        let message = try hex(vector.message)
        let signature = try key.signature(for: message)
        #expect(signature == (try hex(vector.signature)))
        let fromRaw = try Ed25519PublicKey(rawRepresentation: try hex(vector.publicKey))
        #expect(fromRaw == publicKey)
        #expect(fromRaw.isValidSignature(try hex(vector.signature), for: message))
    }

    @Test("A flipped bit anywhere in the message or the signature fails verification")
    func flippedBits() throws {
        let key = try Ed25519PrivateKey.generate()
        let publicKey = try key.publicKey
        let message = Data("molam-release-signature-v1\nplugin_name=molam-form\n".utf8)
        let signature = try key.signature(for: message)
        #expect(signature.count == 64)
        #expect(publicKey.isValidSignature(signature, for: message))
        for index in [0, message.count / 2, message.count - 1] {
            var altered = message
            altered[index] ^= 0x01
            #expect(!publicKey.isValidSignature(signature, for: altered), "message byte \(index)")
        }
        for index in [0, 31, 32, 63] {
            var altered = signature
            altered[index] ^= 0x80
            #expect(!publicKey.isValidSignature(altered, for: message), "signature byte \(index)")
        }
        #expect(!publicKey.isValidSignature(signature, for: message + Data([0])))
        let other = try Ed25519PrivateKey.generate().publicKey
        #expect(!other.isValidSignature(signature, for: message))
    }

    @Test("Wrong-length keys, seeds and signatures fail cleanly")
    func wrongLengths() throws {
        for count in [0, 31, 33, 64] {
            #expect(throws: CryptoError.self) { try Ed25519PublicKey(rawRepresentation: Data(count: count)) }
            #expect(throws: CryptoError.self) { try Ed25519PrivateKey(rawSeed: Data(count: count)) }
        }
        let key = try Ed25519PrivateKey.generate()
        let publicKey = try key.publicKey
        let signature = try key.signature(for: Data("m".utf8))
        for wrong in [Data(), signature.prefix(63), signature + Data([0]), Data(count: 128)] {
            #expect(!publicKey.isValidSignature(wrong, for: Data("m".utf8)), "\(wrong.count) bytes")
        }
        // 32 bytes that are not a point on the curve: a key, as bytes, but it verifies nothing.
        let notAPoint = try Ed25519PublicKey(rawRepresentation: Data(repeating: 0xff, count: 32))
        #expect(!notAPoint.isValidSignature(signature, for: Data("m".utf8)))
    }

    @Test("A slice of a larger buffer is accepted as a key and stored from index 0")
    func slices() throws {
        let vector = Self.vectors[1]
        let padded = Data([0xaa]) + (try hex(vector.publicKey)) + Data([0xbb])
        let key = try Ed25519PublicKey(rawRepresentation: padded.dropFirst().dropLast())
        #expect(key.rawRepresentation.startIndex == 0)
        #expect(key.isValidSignature(try hex(vector.signature), for: try hex(vector.message)))
    }

    @Test("A generated key survives a PKCS#8 PEM round trip and keeps signing as itself")
    func pemRoundTrip() throws {
        let key = try Ed25519PrivateKey.generate()
        let pem = try key.pemRepresentation()
        let text = String(decoding: pem, as: UTF8.self)
        #expect(text.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(text.hasSuffix("-----END PRIVATE KEY-----\n"))
        let reloaded = try Ed25519PrivateKey(pem: pem)
        #expect(try reloaded.publicKey == key.publicKey)
        let message = Data("round trip".utf8)
        #expect(try key.publicKey.isValidSignature(try reloaded.signature(for: message), for: message))
        // Ed25519 signatures are deterministic: the same key signs the same bytes identically.
        #expect(try reloaded.signature(for: message) == key.signature(for: message))
    }

    @Test("The RFC 8032 seed written as PEM reads back to the same key")
    func pemFromSeed() throws {
        let vector = Self.vectors[0]
        let key = try Ed25519PrivateKey(rawSeed: try hex(vector.seed))
        let reloaded = try Ed25519PrivateKey(pem: try key.pemRepresentation())
        #expect(try reloaded.publicKey.rawRepresentation == (try hex(vector.publicKey)))
    }

    @Test("A PEM that is not an unencrypted Ed25519 private key is refused with a CryptoError", arguments: [
        "", "not a pem at all", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        NotEd25519PEMs.p256, NotEd25519PEMs.x25519, NotEd25519PEMs.encryptedEd25519,
    ])
    func foreignPEM(_ text: String) throws {
        #expect(throws: CryptoError.self) { try Ed25519PrivateKey(pem: Data(text.utf8)) }
    }

    @Test("A key of another type is refused by name, so the user knows which file they gave")
    func foreignTypeNamed() throws {
        do {
            _ = try Ed25519PrivateKey(pem: Data(NotEd25519PEMs.p256.utf8))
            Issue.record("a P-256 key was accepted as Ed25519")
        } catch {
            #expect(error.message.contains("EC"), "\(error)")
            #expect(error.message.contains("not Ed25519"), "\(error)")
        }
    }

    @Test("A failed verification leaves nothing in libcrypto's error queue for later calls to report")
    func errorQueueLeftEmpty() throws {
        let garbage = Data("not a pem".utf8)
        func pemError() -> String {
            do {
                _ = try Ed25519PrivateKey(pem: garbage)
                return "accepted"
            } catch {
                return error.message
            }
        }
        // The error queue is per thread, and a synchronous test stays on one thread. OpenSSL 3.0
        // queues nothing for these failures today; the test holds the behaviour if a release starts to.
        let alone = pemError()
        let notAPoint = try Ed25519PublicKey(rawRepresentation: Data(repeating: 0xff, count: 32))
        let key = try Ed25519PrivateKey.generate()
        let signature = try key.signature(for: Data("x".utf8))
        #expect(!notAPoint.isValidSignature(signature, for: Data("x".utf8)))
        #expect(!(try key.publicKey.isValidSignature(Data(count: 64), for: Data("x".utf8))))
        #expect(pemError() == alone)
    }

    /// Keys of other kinds, made with `openssl genpkey` for these tests only (the last one encrypted
    /// with the passphrase "ci-test", which must make loading fail, never prompt).
    enum NotEd25519PEMs {
        static let p256 = """
            -----BEGIN PRIVATE KEY-----
            MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpVCtSUxWOL3+xAUJ
            QFvGFu5ZWgH91wJyHZ1zKTSgqsyhRANCAAS+1jfBPPYrLOrj0Ck12gz59CJcSk4i
            kjXVKeEGGtgvH4MSFzejQrDjzS4u677YrfJIzjYqXQ31JS9kYo/ALszI
            -----END PRIVATE KEY-----

            """
        static let x25519 = """
            -----BEGIN PRIVATE KEY-----
            MC4CAQAwBQYDK2VuBCIEIHACc07ezLYfjrE4O+1aVmSQhARWfn0zo0bDc4sCWbZA
            -----END PRIVATE KEY-----

            """
        static let encryptedEd25519 = """
            -----BEGIN ENCRYPTED PRIVATE KEY-----
            MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjdZRJOvD0xCAICCAAw
            DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEELJZ1ugSPt8rVKHtHKFeq0wEQJNQ
            2RQ9ZPZQCfwYozoPvb26qVfg0rywIuAoJNWqMKHXpz28EbrNd+tu5wD2YK94SZbY
            bLlOhSErxy0giuelHZ8=
            -----END ENCRYPTED PRIVATE KEY-----

            """
    }
}

/// Bytes from hexadecimal text; test data only, so a bad digit is a broken test.
func hex(_ text: String) throws -> Data {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { throw HexError(text: text) }
    var bytes = Data()
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
            throw HexError(text: text)
        }
        bytes.append(byte)
    }
    return bytes
}

struct HexError: Error, CustomStringConvertible {
    let text: String
    var description: String { "not hexadecimal: \(text)" }
}
