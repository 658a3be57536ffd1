import CSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// PHP's own syntax check of every PHP file of a staged release, run in `stage` before anything
/// changes: a release that cannot even be compiled would turn the whole shop into WordPress's
/// "critical error" page the moment it is swapped in.
///
/// The host's `php` compiles each file without running it (`opcache_compile_file`, one process for
/// the whole tree: a process per file costs ~10 ms, 50 s for a WooCommerce-sized plugin); a file it
/// cannot compile is checked again with `php -l`, whose message and line are the ones reported.
/// Where opcache cannot be loaded, every file goes through `php -l`. The check runs as the tree's
/// owner (never root when the tree is someone else's: a parser is code too), with no php.ini (`-n`:
/// no `auto_prepend_file`, no extension the host loads), and, under a root agent, sees the staged
/// tree at the live plugin path in a mount namespace of its own (the staging folder is private).
struct PHPSyntaxCheck {
    /// Where `php` is looked for when the configuration names none; never a PATH search as root.
    static let defaultLocations = ["/usr/bin/php", "/usr/local/bin/php", "/bin/php"]

    /// A file PHP cannot compile: relative path, line (when PHP gave one) and PHP's message.
    struct Failure: Sendable, Equatable, CustomStringConvertible {
        var file: String
        var line: Int?
        var message: String

        var description: String { "\(file)\(line.map { " line \($0)" } ?? ""): \(message)" }
    }

    struct Result: Sendable {
        var filesChecked: Int
        var failures: [Failure]
        var php: String
        /// Why nothing could be concluded (the check's user cannot read the tree), when so.
        var skipped: String?
        /// Files a compiling process did not conclude on (no opcache, or it died), checked with
        /// `php -l` one at a time instead: ~15 ms each.
        var checkedOneByOne = 0
    }

    let php: String
    let timeoutSeconds: Double

    /// The configured `php`, or the first of `defaultLocations` that exists; nil when PHP is not on
    /// the host (then there is nothing to check with, and no PHP site to break either).
    static func find(configured: String?) -> String? {
        if let configured { return configured }
        return defaultLocations.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The relative paths of the PHP files in `tree`, sorted. The staged tree holds no links.
    static func phpFiles(in tree: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: tree) else { return [] }
        var files: [String] = []
        while let path = walker.nextObject() as? String {
            guard path.lowercased().hasSuffix(".php"), !path.contains("\n") else { continue }
            if walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular { files.append(path) }
        }
        return files.sorted()
    }

    /// Checks every PHP file of the staged tree `tree`, which will become `liveDirectory`.
    /// `scratch` is a private folder of the run's for the lists of files.
    func check(tree: String, liveDirectory: String, scratch: String, skipping: [String] = []) throws -> Result {
        let files = Self.phpFiles(in: tree).filter { file in
            !skipping.contains { $0.hasSuffix("/") ? file.hasPrefix($0) : file == $0 }
        }
        guard !files.isEmpty else { return Result(filesChecked: 0, failures: [], php: php) }
        let program = try Program(php: php, tree: tree, liveDirectory: liveDirectory)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var suspects: [Failure] = []
        for part in try compileAll(files, program: program, scratch: scratch) {
            suspects += part
        }
        // `php -l` decides, and gives the message and line people know.
        var failures: [Failure] = []
        for suspect in suspects {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else {
                throw SyntaxCheckError(
                    "PHP syntax check of \(files.count) files did not finish in \(Int(timeoutSeconds)) s")
            }
            if let failure = try program.lint(suspect.file, timeout: min(remaining, 30)) {
                if failure.message.hasPrefix("Could not open input file") {
                    // Not the release's fault: this host's permissions keep the check's user out.
                    return Result(
                        filesChecked: 0, failures: [], php: php,
                        skipped: "PHP syntax check skipped: \(program.userDescription) cannot read \(failure.file) "
                            + "at \(liveDirectory)")
                }
                failures.append(failure)
                if failures.count >= 5 { break }
            }
        }
        return Result(
            filesChecked: files.count, failures: failures, php: php,
            checkedOneByOne: suspects.filter { $0.message.isEmpty }.count)
    }

    /// Files per compiling process below which one process does it all: starting PHP costs ~20 ms.
    static let filesPerProcess = 500

    /// The one-process compile (`compileAllArguments`) of `files`, split across up to one process per
    /// core (every other file to each, so both get deep and shallow trees alike): the suspects each
    /// part found, all of its files when it could not conclude. Compiling is CPU-bound and the parts
    /// share nothing: on the reference workload's 3,492 files, `stage` took 1.85–3.43 s with two
    /// processes against 2.23–4.51 s with one (four alternating pairs on a 2-core machine).
    private func compileAll(_ files: [String], program: Program, scratch: String) throws -> [[Failure]] {
        let cores = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4))
        let count = max(1, min(cores, files.count / Self.filesPerProcess))
        let parts = (0..<count).map { part in stride(from: part, to: files.count, by: count).map { files[$0] } }
        let lists = parts.indices.map { scratch + "/php-files-\($0).txt" }
        defer { for list in lists { unlink(list) } }
        for (list, part) in zip(lists, parts) {
            try Data(part.joined(separator: "\n").utf8 + [0x0a]).write(to: URL(fileURLWithPath: list))
        }
        let outcomes = LockedState([Int: Swift.Result<ChildProcess.Outcome, any Error>]())
        let timeout = timeoutSeconds
        DispatchQueue.concurrentPerform(iterations: parts.count) { number in
            let outcome = Swift.Result { try program.run(Self.compileAllArguments, inputFile: lists[number], timeout: timeout) }
            outcomes.withLock { $0[number] = outcome }
        }
        return try parts.enumerated().map { number, part in
            guard let outcome = try outcomes.withLock({ $0[number] })?.get() else {
                throw SyntaxCheckError("PHP syntax check of \(files.count) files: part \(number) did not run")
            }
            if outcome.timedOut {
                throw SyntaxCheckError("PHP syntax check of \(files.count) files did not finish in \(Int(timeout)) s")
            }
            return Self.suspects(outcome.outputTail, of: part)
        }
    }

    /// What one compiling process reported for `files`: the files it could not compile; every file when
    /// it could not conclude (no opcache, or the process broke), for `php -l` to check one by one.
    static func suspects(_ output: String, of files: [String]) -> [Failure] {
        let lines = output.split(separator: "\n").map(String.init)
        let failed = lines.filter { $0.hasPrefix("FAIL\t") }.compactMap { line -> Failure? in
            let fields = line.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count == 4 else { return nil }
            return Failure(file: String(fields[1]), line: Int(fields[2]), message: String(fields[3]))
        }
        // Done, or stopped early after many failures: those are enough to refuse the release.
        if lines.contains("DONE\t\(files.count)") || (!failed.isEmpty && !lines.contains("NOOPCACHE")) {
            return failed
        }
        return files.map { Failure(file: $0, line: nil, message: "") }
    }

    /// "PHP Parse error:  syntax error, unexpected … in includes/x.php on line 3".
    static func parse(_ output: String, file: String) -> Failure {
        let lines = output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let line = lines.first(where: { $0.contains(" error: ") || $0.contains("error:") }) else {
            return Failure(file: file, line: nil, message: lines.first ?? "php -l failed")
        }
        var message = line
        for prefix in ["PHP ", ""] {
            for kind in ["Parse error:", "Fatal error:", "Warning:"] where message.hasPrefix(prefix + kind) {
                message = String(message.dropFirst((prefix + kind).count)).trimmingCharacters(in: .whitespaces)
            }
        }
        var lineNumber: Int?
        if let range = message.range(of: " on line ", options: .backwards) {
            lineNumber = Int(message[range.upperBound...].prefix { $0.isNumber })
            message = String(message[..<range.lowerBound])
            if let inRange = message.range(of: " in ", options: .backwards) {
                message = String(message[..<inRange.lowerBound])
            }
        }
        return Failure(file: file, line: lineNumber, message: String(message.prefix(300)))
    }

    /// `php -n` with opcache loaded for the CLI: compiles (never runs) each file named on stdin and
    /// prints `FAIL\tfile\tline\tmessage` for those it cannot compile (twenty at most), then
    /// `DONE\tcount`. `NOOPCACHE` when opcache could not be loaded. `optimization_level=0`: a syntax
    /// check needs PHP's compiler, not opcache's optimizer passes, which raise no error of their own and
    /// took 45 % of the check's time (1.7 s → 0.95 s for the reference workload's 3,492 files).
    static let compileAllArguments = [
        "-n", "-d", "zend_extension=opcache", "-d", "opcache.enable_cli=1", "-d", "opcache.memory_consumption=1024",
        "-d", "opcache.interned_strings_buffer=64", "-d", "opcache.max_accelerated_files=1000000",
        "-d", "opcache.file_cache=", "-d", "opcache.optimization_level=0",
        "-d", "display_errors=0", "-d", "log_errors=0", "-d", "memory_limit=1024M",
        "-r", """
        if (!function_exists('opcache_compile_file')) { echo "NOOPCACHE\\n"; exit(3); }
        $n = 0; $bad = 0;
        $clean = function ($t) { return substr(str_replace(["\\n", "\\r", "\\t"], ' ', (string)$t), 0, 160); };
        while (($f = fgets(STDIN)) !== false) {
            $f = rtrim($f, "\\n"); if ($f === '') continue; $n++;
            error_clear_last();
            try { $ok = @opcache_compile_file($f); }
            catch (\\Throwable $e) { echo "FAIL\\t$f\\t", $e->getLine(), "\\t", $clean($e->getMessage()), "\\n"; $ok = true; $bad++; }
            if (!$ok) { $e = error_get_last(); echo "FAIL\\t$f\\t0\\t", $clean($e['message'] ?? 'cannot be compiled'), "\\n"; $bad++; }
            if ($bad >= 20) exit(1);
        }
        echo "DONE\\t$n\\n";
        """,
    ]

    /// The host's `php`, opened once and run by descriptor as the tree's owner.
    /// Its descriptors and settings never change once opened: compiling processes may share it.
    private final class Program: Sendable {
        let executable: Int32
        let tree: Int32
        let treePath: String
        let liveDirectory: String
        let user: FileOwner?

        init(php: String, tree treePath: String, liveDirectory: String) throws {
            executable = open(php, csys_o_path() | O_CLOEXEC)
            guard executable >= 0 else {
                throw SyntaxCheckError("php \(php) cannot be opened: \(String(cString: strerror(errno)))")
            }
            tree = open(treePath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard tree >= 0 else {
                close(executable)
                throw SyntaxCheckError("staged tree \(treePath) cannot be opened: \(String(cString: strerror(errno)))")
            }
            self.treePath = treePath
            self.liveDirectory = liveDirectory
            if geteuid() == 0 {
                let owner = FileOwner.of(treePath)
                user = owner.flatMap { $0.uid == 0 ? nil : $0 }
                    ?? FileOwner(uid: Accounts.nobody.uid, gid: Accounts.nogroup)
            } else {
                user = nil
            }
        }

        deinit {
            close(executable)
            close(tree)
        }

        var userDescription: String {
            user.map { SmokeUser.describe(uid: $0.uid, gid: $0.gid) } ?? SmokeUser.describe(uid: geteuid(), gid: getegid())
        }

        func run(_ arguments: [String], inputFile: String?, timeout: Double) throws -> ChildProcess.Outcome {
            var input: Int32? = nil
            if let inputFile {
                let fd = open(inputFile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else {
                    throw SyntaxCheckError("\(inputFile) cannot be opened: \(String(cString: strerror(errno)))")
                }
                input = fd
            }
            defer { if let input { close(input) } }
            let view = ChildProcess.canShowStagedTree ? (tree: treePath, at: liveDirectory) : nil
            do {
                return try ChildProcess.run(
                    executable: executable, arguments: ["php"] + arguments, directory: tree,
                    environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": Accounts.nobody.home],
                    timeoutSeconds: timeout, as: user, input: input, view: view)
            } catch {
                throw SyntaxCheckError("php cannot be started: \(error)")
            }
        }

        /// `php -l file`: nil when PHP finds no error, else its message and line.
        func lint(_ file: String, timeout: Double) throws -> Failure? {
            let outcome = try run(["-n", "-d", "display_errors=1", "-l", file], inputFile: nil, timeout: timeout)
            if outcome.exitStatus == 0 { return nil }
            if outcome.timedOut { return Failure(file: file, line: nil, message: "php -l timed out") }
            return PHPSyntaxCheck.parse(outcome.outputTail, file: file)
        }
    }
}

/// The syntax check itself could not run (not: a file failed it).
struct SyntaxCheckError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
