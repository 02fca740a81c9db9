#include "proc_facts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "syscalls.h"

namespace vfd {

// Read all of the small file `name` under /proc/<pid> into buf (NUL-terminated). Byte count or
// a negative errno; one read() suffices for these files (the kernel fills them in one go).
static ssize_t ReadSmall(int proc, pid_t pid, const char* name, char* buf, size_t size) {
  char path[64];
  snprintf(path, sizeof(path), "%d/%s", static_cast<int>(pid), name);
  int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n;
  do {
    n = read(fd, buf, size - 1);
  } while (n < 0 && errno == EINTR);
  int err = n < 0 ? -errno : 0;
  close(fd);
  if (err < 0) return err;
  buf[n] = '\0';
  return n;
}

// /proc/<pid>/stat: "pid (comm) S ppid pgrp session tty tpgid flags minflt cminflt majflt
// cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss".
// comm may hold spaces and parentheses, so parse from the last ')'.
static int ReadStatFacts(int proc, pid_t pid, ProcFacts* out) {
  char buf[1024];
  ssize_t n = ReadSmall(proc, pid, "stat", buf, sizeof(buf));
  if (n < 0) return static_cast<int>(n);
  const char* p = strrchr(buf, ')');
  char state;
  long long pgrp, utime, stime, threads, start, rss;
  unsigned long long vsize;
  if (!p || sscanf(p + 1,
                   " %c %*d %lld %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %*d %*d %*d %*d %lld %*d %lld %llu %lld",
                   &state, &pgrp, &utime, &stime, &threads, &start, &vsize, &rss) != 8) {
    return -EINVAL;
  }
  static const long ticks = sysconf(_SC_CLK_TCK);
  static const long page = sysconf(_SC_PAGESIZE);
  out->state = state;
  out->pgid = pgrp;
  out->cpu_usec = (utime + stime) * (1000000 / ticks);
  out->threads = threads;
  out->start_time = start;
  out->rss_bytes = rss * page;
  return 0;
}

// Open fds of <pid>, none of them followed. Since Linux 6.2 the st_size of /proc/<pid>/fd is
// the kernel's count of its fd table (one statx, ~10 us whatever the count); listing the
// entries instead costs ~15 ms for 19,000 fds, as the kernel makes a dentry for each, which a
// daemon pinning one O_PATH fd per guest inode would pay at every sample. The count also holds a
// slot reserved by a call in progress (an accept() waiting for its connection), which counts
// against RLIMIT_NOFILE all the same. Before 6.2 st_size is 0: the entries are counted.
static int CountFds(int proc, pid_t pid, int64_t* count) {
  char path[64];
  snprintf(path, sizeof(path), "%d/fd", static_cast<int>(pid));
  FileId id;  // statx, not fstatat: see FileId (fstatat binds to GLIBC_2.33)
  int r = StatAt(proc, path, 0, &id);
  if (r < 0) return r;
  if (id.size > 0) {
    *count = static_cast<int64_t>(id.size);
    return 0;
  }
  int fd = openat(proc, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int64_t n = 0;
  char buf[8192];
  int err = 0;
  for (;;) {
    long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      err = -errno;
      break;
    }
    // struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[].
    for (long off = 0; off < got;) {
      unsigned short reclen;
      memcpy(&reclen, buf + off + 16, sizeof(reclen));
      const char* name = buf + off + 19;
      if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) n++;
      off += reclen;
    }
  }
  close(fd);
  if (err < 0) return err;
  *count = n;
  return 0;
}

// RLIMIT_NOFILE's soft limit of <pid>: prlimit (one system call), else, where prlimit is not
// allowed (another user's process, without CAP_SYS_RESOURCE), "Max open files" of
// /proc/<pid>/limits, which anyone may read and which shows the same value (~7 us here, against
// ~1 us). -1 when it is unlimited.
static int ReadFdLimit(int proc, pid_t pid, int64_t* limit) {
  struct rlimit rl;
  if (prlimit(pid, RLIMIT_NOFILE, nullptr, &rl) == 0) {
    *limit = rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<int64_t>(rl.rlim_cur);
    return 0;
  }
  if (errno != EPERM) return -errno;
  char buf[4096];
  ssize_t n = ReadSmall(proc, pid, "limits", buf, sizeof(buf));
  if (n < 0) return static_cast<int>(n);
  const char* line = strstr(buf, "\nMax open files ");
  if (!line) return -EINVAL;
  const char* p = line + strlen("\nMax open files ");
  while (*p == ' ') p++;
  if (strncmp(p, "unlimited", 9) == 0) {
    *limit = -1;
    return 0;
  }
  char* end;
  long long v = strtoll(p, &end, 10);
  if (end == p) return -EINVAL;
  *limit = v;
  return 0;
}

int ReadProcFacts(int proc, pid_t pid, ProcFacts* out) {
  *out = ProcFacts();
  int err = ReadStatFacts(proc, pid, out);
  if (err < 0) return err;
  // A zombie's files are closed and its fd directory is gone: nothing more to count.
  if (out->state == 'Z' || out->state == 'X') return 0;
  err = CountFds(proc, pid, &out->fds);
  if (err == 0) err = ReadFdLimit(proc, pid, &out->fd_limit);
  // Exited between the reads: a zombie now, whose fd directory is gone (prlimit: ESRCH once reaped).
  if (err == -ENOENT || err == -ESRCH) return 0;
  return err;
}

}  // namespace vfd
