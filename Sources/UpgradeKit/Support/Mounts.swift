import CSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the kernel will allow the swap to do, asked before anything is written: the switch of
/// versions is a rename, and rename(2) fails with EXDEV across two mounts (a bind mount included,
/// though it shows the same st_dev) and with EROFS on a read-only one. Found at the swap, after a
/// full backup, that was a dead end on every run; found here it is one line saying what to do.
enum Mounts {
    /// The mount `path` sits on (statx STATX_MNT_ID), or nil where the kernel cannot say.
    static func mountID(_ path: String) -> UInt64? {
        var id: UInt64 = 0
        return csys_mount_id(AT_FDCWD, path, &id) == 0 ? id : nil
    }

    /// Whether two paths are on one mount: by mount id where the kernel gives it, else by device.
    static func sameMount(_ first: String, _ second: String) -> Bool {
        if let left = mountID(first), let right = mountID(second) { return left == right }
        return FileSystem.identity(of: first)?.device == FileSystem.identity(of: second)?.device
    }

    static func isReadOnly(_ path: String) -> Bool {
        var info = statvfs()
        return statvfs(path, &info) == 0 && info.f_flag & UInt(ST_RDONLY) != 0
    }

    /// Refuses a plugin directory the agent could never swap: on a read-only mount, or a mount point
    /// of its own (a container volume, a bind mount of the plugin folder alone).
    static func checkSwappable(pluginDirectory: String) throws(UpgradeError) {
        let parent = (pluginDirectory as NSString).deletingLastPathComponent
        for path in [pluginDirectory, parent] where isReadOnly(path) {
            throw .configuration(
                "\(path) is on a read-only mount: the agent cannot switch versions there; remount it "
                    + "read-write (mount -o remount,rw on its mount point) or run the agent where the plugin "
                    + "is writable; nothing was changed")
        }
        if !sameMount(pluginDirectory, parent) {
            throw .configuration(
                "plugin directory \(pluginDirectory) is a mount point of its own (a volume or bind mount): "
                    + "versions are switched by renaming it inside \(parent), which the kernel refuses across "
                    + "mounts; mount \(parent) instead of the plugin folder alone; nothing was changed")
        }
    }
}
