import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who runs a smoke command: never anyone with more rights than the least privileged user who could
/// have written it.
///
/// Whoever can write the file, or any directory from it up to "/", can change what runs (a web user
/// who owns `wp-content/plugins` can replace the whole plugin tree). So:
/// - a component writable by everyone: `nobody:nogroup`;
/// - otherwise the writers are every non-root *owner* of a component (an owner can `chmod` the
///   mode bits away, so `u+w` proves nothing) and every non-root group with `g+w`;
/// - no writer but root: the agent's own user (the only case where root stays root);
/// - one user `u`, and any writing group is `u`'s primary group: `u` with that group;
/// - no user and one group `g`: `nobody` with group `g`;
/// - anything else: `nobody:nogroup`, so no writer gains another's rights.
///
/// A sticky directory (`/tmp`, mode 1777) lets its other writers add entries but not rename or
/// delete someone else's, so its group and other write bits do not count; its owner does, and the
/// owner of the entry below it is counted as that entry's owner.
/// Supplementary groups are never given.
struct SmokeUser: Sendable, Equatable {
    /// nil: the agent's own user, no switch.
    var owner: FileOwner?

    static let nobodyUID: UInt32 = 65534

    /// Decides from the path's components; `primaryGroup` looks a user's primary group up.
    static func decide(
        _ chain: [SmokePathEntry], primaryGroup: (UInt32) -> UInt32? = Accounts.primaryGroup
    ) -> SmokeUser {
        let nobody = FileOwner(uid: Accounts.nobody.uid, gid: Accounts.nogroup)
        var users = Set<UInt32>()
        var groups = Set<UInt32>()
        for entry in chain {
            if entry.uid != 0 { users.insert(entry.uid) }
            if entry.isDirectory && entry.mode & UInt32(S_ISVTX) != 0 { continue }
            if entry.mode & 0o002 != 0 { return SmokeUser(owner: nobody) }
            if entry.mode & 0o020 != 0 && entry.gid != 0 { groups.insert(entry.gid) }
        }
        if users.isEmpty && groups.isEmpty { return SmokeUser(owner: nil) }
        if users.count == 1, let user = users.first {
            if let primary = primaryGroup(user), groups.isSubset(of: [primary]) {
                return SmokeUser(owner: FileOwner(uid: user, gid: primary))
            }
            if primaryGroup(user) == nil && groups.isEmpty {
                return SmokeUser(owner: FileOwner(uid: user, gid: Accounts.nogroup))
            }
            return SmokeUser(owner: nobody)
        }
        if users.isEmpty && groups.count == 1, let group = groups.first {
            return SmokeUser(owner: FileOwner(uid: nobody.uid, gid: group))
        }
        return SmokeUser(owner: nobody)
    }

    /// "www-data", "nobody:www-data" (a group other than the user's primary one), or "uid 1234".
    static func describe(uid: UInt32, gid: UInt32) -> String {
        let name = Accounts.userName(uid) ?? "uid \(uid)"
        if Accounts.primaryGroup(uid) == gid { return name }
        return name + ":" + (Accounts.groupName(gid) ?? "\(gid)")
    }
}

/// Reads the user and group databases (getpwuid_r / getgrgid_r: reentrant, no shared buffer).
enum Accounts {
    static var nobody: (uid: UInt32, home: String) {
        withPasswd(name: "nobody") { ($0.pw_uid, String(cString: $0.pw_dir)) }
            ?? (SmokeUser.nobodyUID, "/nonexistent")
    }

    static var nogroup: UInt32 {
        withGroup(name: "nogroup") { $0.gr_gid } ?? withGroup(name: "nobody") { $0.gr_gid } ?? 65534
    }

    static func primaryGroup(_ uid: UInt32) -> UInt32? { withPasswd(uid: uid) { $0.pw_gid } }

    static func userName(_ uid: UInt32) -> String? { withPasswd(uid: uid) { String(cString: $0.pw_name) } }

    static func groupName(_ gid: UInt32) -> String? {
        lookUp(group(), { getgrgid_r(gid, $0, $1, $2, $3) }) { String(cString: $0.gr_name) }
    }

    private static func withPasswd<T>(uid: UInt32, _ body: (passwd) -> T) -> T? {
        lookUp(passwd(), { getpwuid_r(uid, $0, $1, $2, $3) }, body)
    }

    private static func withPasswd<T>(name: String, _ body: (passwd) -> T) -> T? {
        lookUp(passwd(), { getpwnam_r(name, $0, $1, $2, $3) }, body)
    }

    private static func withGroup<T>(name: String, _ body: (group) -> T) -> T? {
        lookUp(group(), { getgrnam_r(name, $0, $1, $2, $3) }, body)
    }

    /// The four `get*_r` calls share one contract: they fill `entry`, point its strings into the
    /// caller's buffer, and leave `result` nil when there is no such user or group. `body` reads the
    /// entry while the buffer is still alive.
    private static func lookUp<Entry, T>(
        _ empty: Entry,
        _ call: (
            UnsafeMutablePointer<Entry>, UnsafeMutablePointer<CChar>, Int,
            UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>
        ) -> Int32,
        _ body: (Entry) -> T
    ) -> T? {
        var entry = empty
        var result: UnsafeMutablePointer<Entry>?
        var buffer = [CChar](repeating: 0, count: 16384)
        return buffer.withUnsafeMutableBufferPointer { storage in
            guard let base = storage.baseAddress, call(&entry, base, storage.count, &result) == 0,
                  result != nil else { return nil }
            return body(entry)
        }
    }
}
