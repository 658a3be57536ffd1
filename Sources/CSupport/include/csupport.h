#ifndef CSUPPORT_H
#define CSUPPORT_H

// renameat2(2) is declared by glibc only under _GNU_SOURCE, which Swift's Glibc module does not
// define; RENAME_EXCHANGE / RENAME_NOREPLACE are macros. These wrappers make both callable.

/// Atomically exchanges two paths (renameat2 with RENAME_EXCHANGE). Returns 0 or -1 with errno set.
int csys_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/// Renames without replacing an existing target (renameat2 with RENAME_NOREPLACE).
int csys_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/// syncfs(2), declared by glibc only under _GNU_SOURCE: one call makes everything written to the
/// filesystem holding `fd` durable (data and directory entries), instead of one fsync per file.
int csys_syncfs(int fd);

#include <spawn.h>

/// pipe2(2) with O_CLOEXEC, declared by glibc only under _GNU_SOURCE: a child spawned by another
/// thread must not inherit the pipe, or the reader never sees end-of-file.
int csys_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addchdir_np (glibc >= 2.29, _GNU_SOURCE only): the child starts in
/// `path` without the parent changing its own, process-wide, working directory.
int csys_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path);

/// posix_spawn_file_actions_addclosefrom_np (glibc >= 2.34, _GNU_SOURCE only): a smoke command must
/// not inherit descriptors the agent did not give it (a leaked pipe keeps a reader waiting forever).
int csys_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest);

#include <sys/types.h>


/// O_PATH, which <fcntl.h> defines only under _GNU_SOURCE: a smoke command is opened without being
/// read or executed (a FIFO cannot block the open) until it has been checked.
int csys_o_path(void);

/// prctl(PR_SET_CHILD_SUBREAPER, 1) (prctl is variadic): a smoke command's daemon that double-forks
/// and calls setsid is re-parented to the agent instead of init, so the agent can find and kill it.
int csys_become_subreaper(void);

/// prctl(PR_GET_CHILD_SUBREAPER): 1 when this process adopts orphaned descendants, 0 when not.
int csys_is_subreaper(void);

/// waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT): 1 when the child has exited (left unreaped, so
/// its pid and process group id cannot be reused yet), 0 while it runs, -errno on error.
int csys_child_exited(pid_t pid);

/// Starts the file open on `exec_fd` (execveat with AT_EMPTY_PATH: the very file that was checked,
/// never a path resolved again) in its own process group, working directory `directory_fd`, stdin
/// from /dev/null, stdout and stderr on `output_fd`. `exec_fd` stays open (not close-on-exec) in
/// the child so a script's interpreter can open it as /dev/fd/N; every other descriptor is closed.
/// With `switch_user`, runs as `uid`/`gid` with no supplementary groups. The child gets SIGKILL when
/// the agent dies (PR_SET_PDEATHSIG, set after the user switch, which clears it); the death signal
/// follows the *thread* that forked, so call this from a thread that lives as long as the check (the
/// agent's main thread). A switched user also gets PR_SET_NO_NEW_PRIVS: no set-user-ID gain.
/// `input_fd` >= 0 is the child's stdin instead of /dev/null. With `bind_target`, the child first
/// enters a mount namespace of its own (unshare(CLONE_NEWNS), every mount made private) and
/// bind-mounts `bind_source` (a staged tree's path) over `bind_target` (the live plugin directory),
/// checks that what it sees there is the directory open on `directory_fd` (ESTALE otherwise), and
/// works there: a check of a release that is not live yet sees it where it will be, at paths its
/// user can reach, while the site sees nothing. (A descriptor cannot be the source: it belongs to
/// the agent's mount namespace, and mount(2) refuses it in the new one with EINVAL.)
/// Returns the pid, or -errno when it could not be started (exec failure included).
/// 1 when this process may give a child a mount namespace of its own (unshare(CLONE_NEWNS) and a
/// private remount of "/", tried in a throw-away child), 0 when not (no CAP_SYS_ADMIN: a container).
int csys_mount_namespace_available(void);

pid_t csys_spawn_fd(int exec_fd, char *const argv[], char *const envp[], int directory_fd, int output_fd,
                    int switch_user, uid_t uid, gid_t gid, int input_fd, const char *bind_source,
                    const char *bind_target);

#include "csupport_mounts.h"

// A signal handler may only make async-signal-safe calls, and a Swift closure makes none that are
// known to be (it may take locks, allocate, run a lazy global's initialiser): the handler is C, and
// only records the signal in `volatile sig_atomic_t` variables that Swift reads between steps.

/// Installs, with SA_RESTART, a handler for SIGINT, SIGTERM and SIGHUP that only records which of
/// them came first and how many came; one ignored at start (nohup) stays ignored. Returns 0, or -1
/// with errno set.
int csys_signals_install(void);

/// The first of SIGINT, SIGTERM, SIGHUP received since `csys_signals_install`, or 0.
int csys_signals_first(void);

/// How many of them were received.
int csys_signals_count(void);

/// mallopt(3) (its M_* parameters are macros in <malloc.h>, which Swift's Glibc module leaves out):
/// one malloc arena for the whole process, and large blocks (>= 128 KiB) always mmap'd, so freeing
/// them gives the pages back. Call before any thread starts. Returns 0, or -1 if glibc refused one.
int csys_limit_malloc_retention(void);

#endif
