#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <spawn.h>
#include <malloc.h>
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

int csys_syncfs(int fd) {
    return syncfs(fd);
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

#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>


#include <sys/prctl.h>
#include <sched.h>
#include <sys/mount.h>

int csys_o_path(void) {
    return O_PATH;
}

int csys_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int csys_is_subreaper(void) {
    int value = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, (unsigned long)&value, 0, 0, 0) != 0) return 0;
    return value != 0;
}

int csys_child_exited(pid_t pid) {
    siginfo_t info;
    info.si_pid = 0;
    for (;;) {
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0) return info.si_pid == pid;
        if (errno != EINTR) return -errno;
    }
}

#include <sys/stat.h>

int csys_mount_namespace_available(void) {
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        int ok = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return 0;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Whether `path` is the directory open on `fd` (same device and inode).
static int csys_same_directory(const char *path, int fd) {
    struct stat by_path, by_fd;
    if (stat(path, &by_path) != 0 || fstat(fd, &by_fd) != 0) return 0;
    return by_path.st_dev == by_fd.st_dev && by_path.st_ino == by_fd.st_ino;
}

// Fork and execveat, doing in the child only async-signal-safe calls (the caller prepares
// everything before the fork). execveat is called through syscall(2): glibc's wrapper is recent.
pid_t csys_spawn_fd(int exec_fd, char *const argv[], char *const envp[], int directory_fd, int output_fd,
                    int switch_user, uid_t uid, gid_t gid, int input_fd, const char *bind_source,
                    const char *bind_target) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int code = errno;
        close(report[0]);
        close(report[1]);
        return -code;
    }
    if (pid == 0) {
        int code = 0;
        sigset_t empty;
        sigemptyset(&empty);
        int reset[] = {SIGPIPE, SIGTERM, SIGINT, SIGHUP};
        for (unsigned i = 0; i < sizeof reset / sizeof reset[0]; i++) signal(reset[i], SIG_DFL);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        int null_fd = input_fd >= 0 ? input_fd : open("/dev/null", O_RDONLY);
        if (setpgid(0, 0) != 0 || null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(output_fd, 1) < 0 ||
            dup2(output_fd, 2) < 0) {
            code = errno;
        } else if (bind_target != NULL &&
                   (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
                    mount(bind_source, bind_target, NULL, MS_BIND | MS_REC, NULL) != 0 ||
                    chdir(bind_target) != 0)) {
            code = errno;   // the staged tree shown at the live path, in this child's mounts only
        } else if (bind_target != NULL && !csys_same_directory(".", directory_fd)) {
            code = ESTALE;  // the path led elsewhere than the tree that was checked
        } else if (bind_target == NULL && fchdir(directory_fd) != 0) {
            code = errno;
        } else if (switch_user && (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) {
            code = errno;
        } else if (switch_user && uid != 0 && setuid(0) == 0) {
            code = EPERM;   // the switch must be irreversible
        } else if (switch_user && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
            code = errno;   // nor undone by a set-user-ID program the tree's writer planted or linked
        } else if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
            code = errno;   // after the switch: changing credentials clears the death signal
        } else if (getppid() != parent) {
            _exit(127);     // the agent died before the death signal was armed
        } else {
            int report_fd = report[1];
            int highest = exec_fd > report_fd ? exec_fd : report_fd;
            // Everything above 2 goes but the program and the close-on-exec report pipe.
            if (syscall(SYS_close_range, (unsigned)highest + 1, ~0U, 0) != 0) {
                for (int fd = highest + 1; fd < 1024; fd++) close(fd);   // kernel before 5.9
            }
            for (int fd = 3; fd < highest; fd++) if (fd != report_fd && fd != exec_fd) close(fd);
            if (fcntl(exec_fd, F_SETFD, 0) != 0) {
                code = errno;
            } else {
                syscall(SYS_execveat, exec_fd, "", argv, envp, AT_EMPTY_PATH);
                code = errno;
            }
        }
        ssize_t ignored = write(report[1], &code, sizeof code);
        (void)ignored;
        _exit(127);
    }
    close(report[1]);
    int code = 0;
    ssize_t got;
    do { got = read(report[0], &code, sizeof code); } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof code) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -(code ? code : ECHILD);
    }
    return pid;
}

int csys_limit_malloc_retention(void) {
    int arenas = mallopt(M_ARENA_MAX, 1);
    int threshold = mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    return arenas == 1 && threshold == 1 ? 0 : -1;
}
