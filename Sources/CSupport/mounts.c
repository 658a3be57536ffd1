#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include "csupport_mounts.h"

int csys_mount_id(int dirfd, const char *path, uint64_t *mount_id) {
    struct statx info;
    if (statx(dirfd, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_MNT_ID, &info) != 0) return -1;
    if (!(info.stx_mask & STATX_MNT_ID)) {
        errno = ENOSYS;
        return -1;
    }
    *mount_id = info.stx_mnt_id;
    return 0;
}
