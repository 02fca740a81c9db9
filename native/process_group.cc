#include "process_group.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace vfd {

// State and process group of /proc/<pid>/stat: "pid (comm) S ppid pgrp ...". comm may hold
// spaces and parentheses, so parse from the last ')'.
static bool ReadStat(int proc, const char* pid, char* state, pid_t* pgrp) {
  char path[64];
  snprintf(path, sizeof(path), "%s/stat", pid);
  int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* p = strrchr(buf, ')');
  int ppid, group;
  if (!p || sscanf(p + 1, " %c %d %d", state, &ppid, &group) != 3) return false;
  *pgrp = group;
  return true;
}

int GroupHasLiveMember(pid_t pgid) {
  // Fast path: signal 0 reaches nobody, so the group is gone, zombies included.
  if (kill(-pgid, 0) < 0 && errno == ESRCH) return 0;

  DIR* dir = opendir("/proc");
  if (!dir) return -errno;
  int proc = dirfd(dir);
  int live = 0;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char state;
    pid_t pgrp;
    if (ReadStat(proc, e->d_name, &state, &pgrp) && pgrp == pgid && state != 'Z' && state != 'X') {
      live = 1;
      break;
    }
  }
  closedir(dir);
  return live;
}

}  // namespace vfd
