#include "dir_walk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "syscalls.h"

namespace vfd {

// The kernel's own limit on symlinks followed in one lookup.
static constexpr int kMaxSymlinks = 40;

void SplitPath(const std::string& path, std::string* dir, std::string* base) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    *dir = ".";
    *base = path;
  } else {
    *dir = slash == 0 ? "/" : path.substr(0, slash);
    *base = path.substr(slash + 1);
  }
}

// ---- resolving the directory ------------------------------------------------------------

// Whether the symlink `name` in directory `dirfd` can only have been put there by root or
// by us: then following it is as safe as the directory itself.
static bool LinkTrusted(int dirfd, const char* name, PathProblem* why) {
  FileId dir, link;
  if (StatAt(dirfd, "", AT_EMPTY_PATH, &dir) < 0 || StatAt(dirfd, name, AT_SYMLINK_NOFOLLOW, &link) < 0) return false;
  uid_t me = geteuid();
  bool dir_ours = dir.uid == 0 || dir.uid == me;
  bool link_ours = link.uid == 0 || link.uid == me;
  why->dir_owner = dir.uid;
  why->dir_mode = dir.mode;
  if (!dir_ours) return false;
  if (!(dir.mode & (S_IWGRP | S_IWOTH))) return true;
  // In a sticky directory (/tmp) only an entry's owner or the directory's may replace it.
  return (dir.mode & S_ISVTX) && link_ours;
}

// Replace *rest up to `end` (the symlink `comp` in dirfd) by the link's target: the walk goes
// on from dirfd, or from the root when the target is absolute.
static int SpliceLink(int dirfd, const std::string& comp, std::string* rest, size_t end) {
  char target[PATH_MAX];
  ssize_t n = readlinkat(dirfd, comp.c_str(), target, sizeof(target));
  if (n < 0) return -errno;
  if (n == sizeof(target)) return -ENAMETOOLONG;
  *rest = std::string(target, n) + "/" + rest->substr(end);
  return 0;
}

// The component-by-component walk behind OpenDirSafely, for paths that hold a symlink.
static int WalkDir(const std::string& path, PathProblem* why) {
  std::string rest = path;
  std::string done;
  int cur = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0) return -errno;
  int links = 0;
  size_t pos = 0;
  while (pos < rest.size()) {
    if (rest[pos] == '/') {
      if (pos == 0) {  // an absolute target restarts at the root
        close(cur);
        if ((cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) return -errno;
        done.clear();
      }
      pos++;
      continue;
    }
    size_t end = rest.find('/', pos);
    if (end == std::string::npos) end = rest.size();
    std::string comp = rest.substr(pos, end - pos);
    int next = openat(cur, comp.c_str(), O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
    if (next >= 0) {
      close(cur);
      cur = next;
      done += "/" + comp;
      pos = end;
      continue;
    }
    int err = -errno;
    FileId f;
    // O_PATH|O_NOFOLLOW opens a symlink itself, which O_DIRECTORY then refuses.
    bool link = (err == -ENOTDIR || err == -ELOOP) && StatAt(cur, comp.c_str(), AT_SYMLINK_NOFOLLOW, &f) == 0 &&
                S_ISLNK(f.mode);
    if (link && !LinkTrusted(cur, comp.c_str(), why)) {
      why->symlink = (done.empty() && path[0] != '/' ? comp : done + "/" + comp);
      err = -ELOOP;
    } else if (link && ++links > kMaxSymlinks) {
      err = -ELOOP;
    } else if (link && (err = SpliceLink(cur, comp, &rest, end)) == 0) {
      pos = 0;
      continue;
    }
    close(cur);
    return err;
  }
  return cur;
}

int OpenDirSafely(const std::string& dir, PathProblem* why) {
  // Strict and cheap: one call for the common path that holds no symlink at all.
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, dir.c_str(), &how, sizeof(how)));
  if (fd >= 0) return fd;
  // ELOOP: a symlink on the way, which the walk may trust; ENOSYS, E2BIG: Linux < 5.6.
  if (errno != ELOOP && errno != ENOSYS && errno != E2BIG && errno != EPERM) return -errno;
  return WalkDir(dir, why);
}

}  // namespace vfd
