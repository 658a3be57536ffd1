#ifndef CSUPPORT_H
#define CSUPPORT_H

// renameat2(2) is declared by glibc only under _GNU_SOURCE, which Swift's Glibc module does not
// define; RENAME_EXCHANGE / RENAME_NOREPLACE are macros. These wrappers make both callable.

/// Atomically exchanges two paths (renameat2 with RENAME_EXCHANGE). Returns 0 or -1 with errno set.
int csys_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/// Renames without replacing an existing target (renameat2 with RENAME_NOREPLACE).
int csys_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

#endif
