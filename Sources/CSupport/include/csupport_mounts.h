#ifndef CSUPPORT_MOUNTS_H
#define CSUPPORT_MOUNTS_H

#include <stdint.h>

/// The id of the mount that `path` (relative to `dirfd`, never following a final symlink) sits on,
/// from statx(2) with STATX_MNT_ID (Linux >= 5.8; statx is declared by glibc only under _GNU_SOURCE).
/// rename(2) across two mounts fails with EXDEV even when both show one st_dev (a bind mount), so
/// the swap needs the same mount, not only the same device. Returns 0, or -1 with errno set
/// (ENOSYS or EINVAL where the kernel cannot tell).
int csys_mount_id(int dirfd, const char *path, uint64_t *mount_id);

#endif
