#include "process_group.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

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

int GroupsWithLiveMembers(const std::vector<pid_t>& pgids, std::vector<uint8_t>* alive) {
  alive->assign(pgids.size(), 0);
  // Signal 0 first: a group nobody is left in (the common case once stopped) needs no scan.
  std::vector<std::pair<pid_t, size_t>> unsure;  // (pgid, index), sorted for the walk's lookups
  for (size_t i = 0; i < pgids.size(); i++) {
    if (!(kill(-pgids[i], 0) < 0 && errno == ESRCH)) unsure.emplace_back(pgids[i], i);
  }
  if (unsure.empty()) return 0;
  std::sort(unsure.begin(), unsure.end());

  DIR* dir = opendir("/proc");
  if (!dir) return -errno;
  int proc = dirfd(dir);
  size_t left = unsure.size();
  while (left > 0) {
    struct dirent* e = readdir(dir);
    if (!e) break;
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char state;
    pid_t pgrp;
    if (!ReadStat(proc, e->d_name, &state, &pgrp) || state == 'Z' || state == 'X') continue;
    auto hit = std::equal_range(unsure.begin(), unsure.end(), std::make_pair(pgrp, size_t{0}),
                                [](const auto& x, const auto& y) { return x.first < y.first; });
    for (auto it = hit.first; it != hit.second; ++it) {
      if (!(*alive)[it->second]) {
        (*alive)[it->second] = 1;
        left--;
      }
    }
  }
  closedir(dir);
  return 0;
}

int GroupMembers(const std::vector<pid_t>& pgids, std::vector<std::vector<pid_t>>* members) {
  members->assign(pgids.size(), {});
  // No kill(-pgid, 0) first, unlike GroupsWithLiveMembers: the groups asked for here are running
  // daemons' (one system call each for nothing), and an empty list is answered by the walk.
  std::vector<std::pair<pid_t, size_t>> wanted;  // (pgid, index), sorted for the walk's lookups
  for (size_t i = 0; i < pgids.size(); i++) wanted.emplace_back(pgids[i], i);
  if (wanted.empty()) return 0;
  std::sort(wanted.begin(), wanted.end());

  DIR* dir = opendir("/proc");
  if (!dir) return -errno;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    // getpgid, not /proc/<pid>/stat: one system call (~1 us here) where reading stat costs ~7 us,
    // paid for every process of the host. A process that exits meanwhile answers ESRCH.
    pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    pid_t pgrp = getpgid(pid);
    if (pgrp < 0) continue;
    auto hit = std::equal_range(wanted.begin(), wanted.end(), std::make_pair(pgrp, size_t{0}),
                                [](const auto& x, const auto& y) { return x.first < y.first; });
    for (auto it = hit.first; it != hit.second; ++it) (*members)[it->second].push_back(pid);
  }
  closedir(dir);
  return 0;
}

}  // namespace vfd
