#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "syscalls.h"

namespace vfd {

// Rounds of KillCgroupMembers: each catches what forked during the one before.
static constexpr int kKillRounds = 100;

// The pids of cgroup.procs (zombies are not listed there), sorted.
static int ReadMembers(int dirfd, std::vector<pid_t>* out) {
  out->clear();
  int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = -errno;
      close(fd);
      return err;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const char* p = text.c_str();
  while (*p) {
    char* end;
    long pid = strtol(p, &end, 10);
    if (end == p) {
      p++;
      continue;
    }
    if (pid > 0) out->push_back(static_cast<pid_t>(pid));
    p = end;
  }
  std::sort(out->begin(), out->end());
  return 0;
}

int KillCgroupMembers(int dirfd) {
  std::vector<pid_t> before, after;
  std::vector<std::pair<pid_t, int>> held;  // (pid, pidfd)
  for (int round = 0; round < kKillRounds; round++) {
    int err = ReadMembers(dirfd, &before);
    if (err < 0) return err;
    if (before.empty()) return 0;
    held.clear();
    for (pid_t pid : before) {
      int pidfd = PidfdOpen(pid);
      if (pidfd >= 0) held.emplace_back(pid, pidfd);
    }
    // Listed again after the pidfd was taken: the pidfd names that member (if the member died
    // and the number went to another member meanwhile, the pidfd answers ESRCH).
    err = ReadMembers(dirfd, &after);
    // A kill that fails (ESRCH: the member is gone) needs nothing more: the next round's read
    // says whether anyone is left.
    for (const auto& [pid, pidfd] : held) {
      if (err == 0 && std::binary_search(after.begin(), after.end(), pid)) PidfdSendSignal(pidfd, SIGKILL);
      close(pidfd);
    }
    if (err < 0) return err;
  }
  return 0;
}

}  // namespace vfd
