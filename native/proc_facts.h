// What /proc says about processes, read for many of them in one call: a manager that watches
// hundreds of processes every few seconds must not pay a thread-pool round trip and a dozen JS
// objects per file per process. Nothing here knows what the processes are.
#ifndef VFD_PROC_FACTS_H_
#define VFD_PROC_FACTS_H_

#include <stdint.h>
#include <sys/types.h>

namespace vfd {

struct ProcFacts {
  int64_t fds = 0;         // open file descriptors (/proc/PID/fd: the kernel's count, see CountFds)
  int64_t fd_limit = 0;    // RLIMIT_NOFILE soft limit (prlimit, else /proc/PID/limits); -1: unlimited
  int64_t rss_bytes = 0;   // resident set size (/proc/PID/stat rss, in bytes)
  int64_t threads = 0;     // num_threads
  int64_t cpu_usec = 0;    // utime + stime, in microseconds
  int64_t pgid = 0;        // process group
  int64_t start_time = 0;  // clock ticks after boot: with the pid, names one process
  char state = '?';        // R, S, D, Z, ...
};

// The facts of process `pid`, read relative to `proc` (an fd of /proc). 0, or a negative errno:
// -ENOENT or -ESRCH when the process is gone; for a zombie, fds and fd_limit are 0 (its files
// are closed) and 0 is returned. Nothing is followed: /proc/PID/fd is counted, never read.
int ReadProcFacts(int proc, pid_t pid, ProcFacts* out);

}  // namespace vfd

#endif  // VFD_PROC_FACTS_H_
