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

bool OursOrRoot(uid_t uid) { return uid == 0 || uid == geteuid(); }

// ---- judging what is on the way --------------------------------------------------------------

static int Refuse(Distrust distrust, const std::string& component, const FileId& id, PathProblem* why) {
  why->distrust = distrust;
  why->component = component;
  why->owner = id.uid;
  why->mode = id.mode;
  return -EPERM;
}

int JudgeEntry(const FileId& holder, const std::string& holder_path, const FileId* entry,
               const std::string& entry_path, PathProblem* why) {
  why->dir_owner = holder.uid;
  why->dir_mode = holder.mode;
  if (!OursOrRoot(holder.uid)) return Refuse(Distrust::kOwner, holder_path, holder, why);
  if (!(holder.mode & (S_IWGRP | S_IWOTH))) return 0;
  if (!(holder.mode & S_ISVTX)) return Refuse(Distrust::kWritable, holder_path, holder, why);
  // Sticky (/tmp): whoever may add names here cannot rename or remove an entry of ours.
  if (!entry || OursOrRoot(entry->uid)) return 0;
  return Refuse(Distrust::kForeignEntry, entry_path, *entry, why);
}

// ---- resolving the directory ------------------------------------------------------------

// The kernel's own limit on symlinks followed in one lookup.
static constexpr int kMaxSymlinks = 40;

// The path of entry `comp` of the directory the walk has reached as `done` ("" for the
// working directory it started from), for messages.
static std::string Join(const std::string& done, const std::string& comp) {
  if (done.empty()) return comp;
  return done == "/" ? "/" + comp : done + "/" + comp;
}

// Judge the directory `next`, just opened as entry `comp` of `cur` (kEveryEntry).
static int JudgeDir(int cur, const std::string& done, int next, const std::string& comp, PathProblem* why) {
  // "." and ".." name directories the walk has judged already, or their ancestors: nobody plants them.
  if (comp == "." || comp == "..") return 0;
  FileId holder, entry;
  int err;
  if ((err = StatAt(cur, "", AT_EMPTY_PATH, &holder)) < 0 || (err = StatAt(next, "", AT_EMPTY_PATH, &entry)) < 0) {
    return err;
  }
  return JudgeEntry(holder, done.empty() ? "." : done, &entry, Join(done, comp), why);
}

// Whether the symlink `comp` (stat `link`) in `cur` can only have been put there by root or by
// us: then following it is as safe as the directory itself. 0 yes; -ELOOP with why filled.
static int JudgeLink(int cur, const std::string& done, const FileId& link, const std::string& comp,
                     PathProblem* why) {
  FileId holder;
  int err = StatAt(cur, "", AT_EMPTY_PATH, &holder);
  if (err < 0) return err;
  std::string at = Join(done, comp);
  if (JudgeEntry(holder, done.empty() ? "." : done, &link, at, why) == 0) return 0;
  why->symlink = at;
  return -ELOOP;
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

// The component-by-component walk behind OpenDirSafely: for kSymlinks only paths that hold a
// symlink come here, for kEveryEntry every path.
static int WalkDir(const std::string& path, WalkRule rule, PathProblem* why) {
  std::string rest = path;
  std::string done = path[0] == '/' ? "/" : "";
  int cur = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0) return -errno;
  int links = 0;
  size_t pos = 0;
  int err = 0;
  while (pos < rest.size()) {
    if (rest[pos] == '/') {
      if (pos == 0) {  // an absolute target restarts at the root
        close(cur);
        if ((cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) return -errno;
        done = "/";
      }
      pos++;
      continue;
    }
    size_t end = rest.find('/', pos);
    if (end == std::string::npos) end = rest.size();
    std::string comp = rest.substr(pos, end - pos);
    int next = openat(cur, comp.c_str(), O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
    if (next >= 0) {
      // Judged once open: the fd is the directory we go on in, whatever the name points to by now.
      if (rule == WalkRule::kEveryEntry && (err = JudgeDir(cur, done, next, comp, why)) < 0) {
        close(next);
        break;
      }
      close(cur);
      cur = next;
      done = Join(done, comp);
      pos = end;
      continue;
    }
    err = -errno;
    FileId f;
    // O_PATH|O_NOFOLLOW opens a symlink itself, which O_DIRECTORY then refuses.
    bool link = (err == -ENOTDIR || err == -ELOOP) && StatAt(cur, comp.c_str(), AT_SYMLINK_NOFOLLOW, &f) == 0 &&
                S_ISLNK(f.mode);
    if (!link) break;
    if ((err = JudgeLink(cur, done, f, comp, why)) < 0) break;
    if (++links > kMaxSymlinks) {
      err = -ELOOP;
      break;
    }
    if ((err = SpliceLink(cur, comp, &rest, end)) < 0) break;
    pos = 0;
  }
  if (err < 0) {
    close(cur);
    return err;
  }
  return cur;
}

int OpenDirSafely(const std::string& dir, WalkRule rule, PathProblem* why) {
  if (dir.empty()) return -ENOENT;
  if (rule == WalkRule::kEveryEntry) {
    return dir[0] == '/' ? WalkDir(dir, rule, why) : -EINVAL;
  }
  // Strict and cheap: one call for the common path that holds no symlink at all.
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, dir.c_str(), &how, sizeof(how)));
  if (fd >= 0) return fd;
  // ELOOP: a symlink on the way, which the walk may trust; ENOSYS, E2BIG: Linux < 5.6.
  if (errno != ELOOP && errno != ENOSYS && errno != E2BIG && errno != EPERM) return -errno;
  return WalkDir(dir, rule, why);
}

}  // namespace vfd
