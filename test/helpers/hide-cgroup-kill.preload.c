// SPDX-License-Identifier: Apache-2.0
/*
 * hide-cgroup-kill.so: an LD_PRELOAD shim that makes every file named cgroup.kill look absent,
 * as on a kernel before Linux 5.14: open, open64, openat, openat64 (and glibc's fortified
 * __open_2 family) of a path whose last component is "cgroup.kill" fail with ENOENT. Everything
 * else goes to the C library. With $HIDE_CGROUP_KILL_LOG set, each refusal appends the path and
 * a newline to that file, so a test can tell the code path met the missing file.
 *
 * For the cgroup tests: the pidfd fallback (killCgroupMembers) must run, and be tested, on a
 * kernel that has cgroup.kill.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int hidden(const char *path) {
  static const char name[] = "cgroup.kill";
  size_t len = path ? strlen(path) : 0, n = sizeof(name) - 1;
  if (len < n || strcmp(path + len - n, name) != 0) return 0;
  if (len > n && path[len - n - 1] != '/') return 0;
  int saved = errno;
  const char *log = getenv("HIDE_CGROUP_KILL_LOG");
  if (log) {
    int fd = ((int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open"))(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      (void)!write(fd, path, len);
      (void)!write(fd, "\n", 1);
      close(fd);
    }
  }
  errno = saved;
  return 1;
}

static mode_t mode_arg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

#define FORWARD_OPEN(name)                                                   \
  int name(const char *path, int flags, ...) {                              \
    va_list ap;                                                              \
    va_start(ap, flags);                                                     \
    mode_t mode = mode_arg(flags, ap);                                       \
    va_end(ap);                                                              \
    if (hidden(path)) return errno = ENOENT, -1;                             \
    static int (*next)(const char *, int, ...);                              \
    if (!next) next = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name); \
    return next(path, flags, mode);                                          \
  }

#define FORWARD_OPENAT(name)                                                      \
  int name(int dirfd, const char *path, int flags, ...) {                        \
    va_list ap;                                                                   \
    va_start(ap, flags);                                                          \
    mode_t mode = mode_arg(flags, ap);                                            \
    va_end(ap);                                                                   \
    if (hidden(path)) return errno = ENOENT, -1;                                  \
    static int (*next)(int, const char *, int, ...);                              \
    if (!next) next = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #name); \
    return next(dirfd, path, flags, mode);                                        \
  }

FORWARD_OPEN(open)
FORWARD_OPEN(open64)
FORWARD_OPENAT(openat)
FORWARD_OPENAT(openat64)

int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open64(path, flags); }
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char *path, int flags) { return openat64(dirfd, path, flags); }
