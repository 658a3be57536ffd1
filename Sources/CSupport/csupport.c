#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <spawn.h>
#include "csupport.h"

// Called through syscall(2) so the build does not depend on the glibc version exporting the
// renameat2 wrapper (glibc >= 2.28); the kernel answers ENOSYS or EINVAL where it cannot.
static int csys_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                          unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int csys_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return csys_renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_EXCHANGE);
}

int csys_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return csys_renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE);
}

int csys_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int csys_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int csys_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
