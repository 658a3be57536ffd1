import MolamArchive

/// Why an entry name cannot be used as a relative path below the plugin directory, or nil if it can.
/// Returns the components on success. Shared by release extraction, the manifest peek and restores.
func entryComponents(
    _ bytes: [UInt8], isDirectory: Bool, limits: ExtractionLimits
) -> Result<[String], EntryNameProblem> {
    var bytes = bytes
    // Directory entries conventionally end in "/" (tar and zip alike); anything else may not.
    if isDirectory, bytes.count > 1, bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
    if bytes.isEmpty { return .failure(.init("has an empty name")) }
    if bytes.count > limits.maxPathBytes {
        return .failure(.init("is longer than \(limits.maxPathBytes) bytes"))
    }
    if bytes.first == UInt8(ascii: "/") { return .failure(.init("is an absolute path")) }
    if bytes.contains(UInt8(ascii: "\\")) {
        // Windows tools treat it as a separator, so 'a\..\..\x' would escape there.
        return .failure(.init("contains a backslash"))
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        return .failure(.init("is not valid UTF-8"))
    }
    if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
        return .failure(.init("contains a control character"))
    }
    let components = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    if components.contains("..") { return .failure(.init("escapes the plugin directory")) }
    if components.contains(where: { $0.isEmpty || $0 == "." }) {
        return .failure(.init("has an empty or '.' path component"))
    }
    if components.contains(where: { $0.utf8.count > limits.maxComponentBytes }) {
        return .failure(.init("has a path component longer than \(limits.maxComponentBytes) bytes"))
    }
    if components.count > limits.maxDepth {
        return .failure(.init("is nested deeper than \(limits.maxDepth) levels"))
    }
    return .success(components)
}

struct EntryNameProblem: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Admits a release archive's entries one at a time, enforcing everything that can be decided from the
/// headers: kinds, names, one top directory, duplicates, entry count, total name bytes, and for zips the
/// central directory's records and layout. Data limits are the caller's.
struct EntryChecker {
    /// The archive as refusals name it.
    let archive: String
    /// Where to read it (for a zip's central directory).
    let path: String
    let limits: ExtractionLimits
    private(set) var topName: String?
    private(set) var entryCount = 0
    /// Every path seen so far, explicit or implied by a deeper entry, keyed case-insensitively (and,
    /// through String's equality, up to Unicode canonical equivalence): the exact bytes and whether
    /// it is a directory.
    private var seen: [String: (bytes: [UInt8], isDirectory: Bool)] = [:]
    private var explicit: Set<String> = []
    /// Total bytes of the paths in `seen`, held to `maxNameBytes`.
    private var seenBytes = 0
    /// For zips: names the central directory lists and not yet matched by an entry.
    private var centralNames: [[UInt8]: Int]?

    init(archive: String, path: String? = nil, limits: ExtractionLimits) {
        self.archive = archive
        self.path = path ?? archive
        self.limits = limits
    }

    /// The entry's path components, the first being the top directory. `isZip` comes from the reader.
    mutating func admit(_ info: ArchiveEntryInfo, isZip: Bool) throws(ArchiveRefusal) -> [String] {
        entryCount += 1
        if isZip { try matchCentralDirectory(info) }
        if entryCount > limits.maxEntries {
            throw .limitExceeded(archive: archive, limit: "more than \(limits.maxEntries) entries")
        }
        let name = info.displayPath
        let isDirectory: Bool
        switch info.kind {
        case .file: isDirectory = false
        case .directory: isDirectory = true
        case .symlink: throw .forbiddenEntry(archive: archive, entry: name, kind: "symbolic link")
        case .hardlink: throw .forbiddenEntry(archive: archive, entry: name, kind: "hard link")
        case .characterDevice: throw .forbiddenEntry(archive: archive, entry: name, kind: "character device")
        case .blockDevice: throw .forbiddenEntry(archive: archive, entry: name, kind: "block device")
        case .fifo: throw .forbiddenEntry(archive: archive, entry: name, kind: "FIFO")
        case .socket: throw .forbiddenEntry(archive: archive, entry: name, kind: "socket")
        case .unknown: throw .forbiddenEntry(archive: archive, entry: name, kind: "entry of unknown type")
        }
        let components: [String]
        switch entryComponents(info.pathBytes, isDirectory: isDirectory, limits: limits) {
        case .success(let value): components = value
        case .failure(let problem): throw .unsafePath(archive: archive, entry: name, reason: problem.reason)
        }
        if let topName {
            if Array(components[0].utf8) != Array(topName.utf8) {
                throw .notSingleTopDirectory(archive: archive, found: [topName, components[0]])
            }
        } else {
            topName = components[0]
        }
        if components.count == 1 && !isDirectory {
            throw .notSingleTopDirectory(archive: archive, found: [components[0] + " (a file)"])
        }
        // Parents are implied directories: a file there is a clash.
        var prefix = ""
        for component in components.dropLast() {
            prefix = prefix.isEmpty ? component : prefix + "/" + component
            try record(prefix, isDirectory: true, explicit: false, entry: name)
        }
        try record(components.joined(separator: "/"), isDirectory: isDirectory, explicit: true, entry: name)
        return components
    }

    /// Refuses a zip entry whose name (from its local header, see `ZipCentralDirectory`) is not one the
    /// central directory lists. On the first entry, reads the central directory and holds every
    /// record to the rules entries are held to, as `unzip` and a reviewer would read it: libarchive
    /// rewrites some of what it says (backslashes in names become slashes; a FIFO becomes a regular
    /// file), and what the release says it contains must be acceptable as said.
    private mutating func matchCentralDirectory(_ info: ArchiveEntryInfo) throws(ArchiveRefusal) {
        if centralNames == nil {
            let directory: ZipCentralDirectory
            do {
                directory = try ZipCentralDirectory.read(path: path, maxEntries: limits.maxEntries)
            } catch {
                throw refusal(error)
            }
            for entry in directory.entries { try checkCentralRecord(entry) }
            centralNames = directory.names.reduce(into: [:]) { $0[$1, default: 0] += 1 }
        }
        guard let remaining = centralNames?[info.pathBytes], remaining > 0 else {
            throw .unsafePath(archive: archive, entry: info.displayPath,
                              reason: "is not the name the zip's central directory lists")
        }
        centralNames?[info.pathBytes] = remaining - 1
    }

    private func refusal(_ problem: ZipCentralDirectory.Problem) -> ArchiveRefusal {
        switch problem {
        case .malformed(let reason):
            return .unreadable(archive: archive, reason: "zip central directory: \(reason)")
        case .tooManyEntries(let declared):
            return .limitExceeded(archive: archive, limit: "more than \(limits.maxEntries) entries "
                                  + "(the zip declares \(declared))")
        case .entry(let name, let reason):
            return .inconsistent(archive: archive, entry: ArchiveEntryInfo.display(name), reason: reason)
        case .overlap(let name, let other):
            return .overlappingEntries(archive: archive, entry: ArchiveEntryInfo.display(name),
                                       other: ArchiveEntryInfo.display(other))
        }
    }

    /// A central-directory record's own file type and name, before libarchive's reading of them.
    private func checkCentralRecord(_ entry: ZipCentralDirectory.Entry) throws(ArchiveRefusal) {
        let name = ArchiveEntryInfo.display(entry.name)
        let kind: String? = switch entry.unixFileType {
        case 0, 0o100000, 0o040000: nil
        case 0o120000: "symbolic link"
        case 0o020000: "character device"
        case 0o060000: "block device"
        case 0o010000: "FIFO"
        case 0o140000: "socket"
        default: "entry of unknown type"
        }
        if let kind { throw .forbiddenEntry(archive: archive, entry: name, kind: kind) }
        let isDirectory = entry.unixFileType == 0o040000 || entry.name.last == UInt8(ascii: "/")
        if case .failure(let problem) = entryComponents(entry.name, isDirectory: isDirectory, limits: limits) {
            throw .unsafePath(archive: archive, entry: name, reason: problem.reason)
        }
    }

    private mutating func record(
        _ path: String, isDirectory: Bool, explicit isExplicit: Bool, entry: String
    ) throws(ArchiveRefusal) {
        let key = path.lowercased()
        let bytes = Array(path.utf8)
        if let earlier = seen[key] {
            // Same key but other bytes: a case-only (or normalisation-only) twin, which would collide
            // on case-insensitive filesystems and confuses every reviewer.
            if earlier.bytes != bytes || earlier.isDirectory != isDirectory {
                throw .duplicate(archive: archive, entry: entry)
            }
        } else {
            seenBytes += bytes.count
            if seenBytes > limits.maxNameBytes {
                let limit = "entry names over \(formatBytes(Int64(limits.maxNameBytes))) in total"
                throw .limitExceeded(archive: archive, limit: limit)
            }
            seen[key] = (bytes, isDirectory)
        }
        if isExplicit {
            if explicit.contains(key) { throw .duplicate(archive: archive, entry: entry) }
            explicit.insert(key)
        }
    }
}
