#include "trusted_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "syscalls.h"

namespace vfd {

// A trusted file's directory, pinned by one fd, and the file's name in it.
struct TrustedDir {
  int fd = -1;
  FileId id;         // the directory itself, the holder JudgeEntry weighs
  std::string path;  // the directory and the file as the caller named them, for messages
  std::string file;
  std::string name;
  ~TrustedDir() {
    if (fd >= 0) close(fd);
  }
};

static int OpenTrustedDir(const std::string& path, TrustedDir* out, PathProblem* why) {
  if (path.empty() || path[0] != '/') return -EINVAL;
  SplitPath(path, &out->path, &out->name);
  if (out->name.empty() || out->name == "." || out->name == "..") return -EISDIR;
  out->file = path;
  int fd = OpenDirSafely(out->path, WalkRule::kEveryEntry, why);
  if (fd < 0) return fd;
  out->fd = fd;
  return StatAt(fd, "", AT_EMPTY_PATH, &out->id);
}

static int RefuseFile(Distrust distrust, const std::string& path, const FileId& st, int err, PathProblem* why) {
  why->distrust = distrust;
  why->component = path;
  why->owner = st.uid;
  why->mode = st.mode;
  why->size = st.size;
  return err;
}

// The errno of a refused file type: what open() itself says of the first two.
static int TypeErrno(mode_t mode) {
  if (S_ISLNK(mode)) return -ELOOP;
  return S_ISDIR(mode) ? -EISDIR : -EINVAL;
}

// Whether `st`, the entry dir.name, is a file we may use: put there only by root or us, regular,
// root's or ours, and, when we rely on its `content`, writable by nobody else. A file we only
// replace or remove may have any mode: what it holds does not matter then.
static int JudgeFile(const TrustedDir& dir, const FileId& st, bool content, PathProblem* why) {
  int err = JudgeEntry(dir.id, dir.path, &st, dir.file, why);
  if (err < 0) return err;
  if (!S_ISREG(st.mode)) return RefuseFile(Distrust::kType, dir.file, st, TypeErrno(st.mode), why);
  if (!OursOrRoot(st.uid)) return RefuseFile(Distrust::kOwner, dir.file, st, -EPERM, why);
  if (content && (st.mode & (S_IWGRP | S_IWOTH))) return RefuseFile(Distrust::kWritable, dir.file, st, -EPERM, why);
  return 0;
}

// No file at dir.name: 0 when the directory is one we trust (the answer "no such file" is only
// worth something there), else the refusal.
static int NoFile(const TrustedDir& dir, PathProblem* why) {
  int err = JudgeEntry(dir.id, dir.path, nullptr, dir.file, why);
  return err < 0 ? err : 0;
}

// ---- reading -------------------------------------------------------------------------------

// Read fd to its end into *out, but never more than max bytes: -EFBIG as soon as there are more
// (the file grew since its fstat), with *out left empty. `hint` (its size at the fstat) sizes
// the buffer, so that a large max costs nothing for a small file.
static int ReadAtMost(int fd, size_t max, uint64_t hint, std::string* out, uint64_t* total) {
  std::string buf(static_cast<size_t>(std::min<uint64_t>(hint, max)) + 1, '\0');
  size_t got = 0;
  while (got <= max) {
    if (got == buf.size()) buf.resize(std::min(2 * buf.size(), max + 1));
    ssize_t n = read(fd, &buf[got], buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    got += n;
  }
  *total = got;
  if (got > max) return -EFBIG;
  buf.resize(got);
  out->swap(buf);
  return 0;
}

int ReadTrustedFile(const std::string& path, size_t max, std::string* out, PathProblem* why) {
  TrustedDir dir;
  int err = OpenTrustedDir(path, &dir, why);
  if (err < 0) return err;
  FileId st;
  // Judged before it is opened: opening a FIFO could block, opening a device could act on it.
  err = StatAt(dir.fd, dir.name.c_str(), AT_SYMLINK_NOFOLLOW, &st);
  if (err == -ENOENT) return NoFile(dir, why);
  if (err < 0 || (err = JudgeFile(dir, st, true, why)) < 0) return err;
  // O_NONBLOCK and O_NOCTTY in case it became something else since, which only root or we can do.
  int fd = openat(dir.fd, dir.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? NoFile(dir, why) : -errno;
  // What counts is the file we opened.
  err = StatAt(fd, "", AT_EMPTY_PATH, &st);
  if (err == 0) err = JudgeFile(dir, st, true, why);
  if (err == 0 && st.size > max) err = RefuseFile(Distrust::kSize, path, st, -EFBIG, why);
  uint64_t total = 0;
  if (err == 0 && (err = ReadAtMost(fd, max, st.size, out, &total)) == -EFBIG) {
    st.size = total;
    RefuseFile(Distrust::kSize, path, st, err, why);
  }
  close(fd);
  return err < 0 ? err : 1;
}

// ---- writing -------------------------------------------------------------------------------

// A name next to `name` that nobody can guess, so that nobody can have planted anything there:
// ".<name>.<16 random hex digits>.tmp" (the name cut to keep it under NAME_MAX).
static int TempName(const std::string& name, std::string* out) {
  unsigned char bytes[8];
  ssize_t n;
  do {
    n = getrandom(bytes, sizeof(bytes), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  if (n != sizeof(bytes)) return -EIO;  // cannot happen for 8 bytes: getrandom gives up to 256 whole
  char hex[2 * sizeof(bytes) + 1];
  for (size_t k = 0; k < sizeof(bytes); k++) snprintf(hex + 2 * k, 3, "%02x", bytes[k]);
  *out = "." + name.substr(0, 200) + "." + hex + ".tmp";
  return 0;
}

static int WriteAll(int fd, const char* p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    p += n;
    len -= n;
  }
  return 0;
}

// Create a new file of ours next to dir.name, named at random (*tmp), with exactly `mode`,
// holding `data`, on disk. On failure *tmp names what the caller must remove (or is empty).
static int WriteTemp(const TrustedDir& dir, const void* data, size_t len, mode_t mode, std::string* tmp) {
  int fd = -1;
  // O_EXCL|O_NOFOLLOW: never a file, or the target of a symlink, that was there before.
  for (int attempt = 0; fd < 0; attempt++) {
    int err = TempName(dir.name, tmp);
    if (err < 0) return err;
    fd = openat(dir.fd, tmp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, mode & 07777);
    if (fd < 0 && (errno != EEXIST || attempt == 7)) {
      err = -errno;
      tmp->clear();
      return err;
    }
  }
  int err = 0;
  // The umask may have taken bits off `mode`: the caller asked for exactly it.
  if (fchmod(fd, mode & 07777) < 0) err = -errno;
  if (err == 0) err = WriteAll(fd, static_cast<const char*>(data), len);
  if (err == 0 && fsync(fd) < 0) err = -errno;
  // Linux releases the fd even when close() fails; after the fsync its error says nothing new.
  close(fd);
  return err;
}

// fsync the directory, so that a rename or link in it is on disk too.
static int SyncDir(int dirfd) {
  // An O_PATH fd cannot be fsync'ed: open the directory itself, through it.
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int err = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return err;
}

// Put the new file *tmp in place as dir.name; *tmp is cleared once that name is gone.
static int Publish(const TrustedDir& dir, std::string* tmp, bool exclusive) {
  if (!exclusive) {
    if (renameat(dir.fd, tmp->c_str(), dir.fd, dir.name.c_str()) < 0) return -errno;
    tmp->clear();
    return 0;
  }
  // linkat refuses an existing name (EEXIST), where renameat would replace it.
  int err = linkat(dir.fd, tmp->c_str(), dir.fd, dir.name.c_str(), 0) < 0 ? -errno : 0;
  if (unlinkat(dir.fd, tmp->c_str(), 0) == 0) tmp->clear();
  return err;
}

int WriteTrustedFile(const std::string& path, const void* data, size_t len, mode_t mode, bool exclusive,
                     PathProblem* why) {
  TrustedDir dir;
  int err = OpenTrustedDir(path, &dir, why);
  if (err < 0) return err;
  FileId st;
  err = StatAt(dir.fd, dir.name.c_str(), AT_SYMLINK_NOFOLLOW, &st);
  if (err == 0 && exclusive) return 0;
  if (err == 0) {
    err = JudgeFile(dir, st, false, why);
  } else if (err == -ENOENT) {
    err = JudgeEntry(dir.id, dir.path, nullptr, path, why);
  }
  if (err < 0) return err;

  std::string tmp;
  err = WriteTemp(dir, data, len, mode, &tmp);
  if (err == 0) err = Publish(dir, &tmp, exclusive);
  bool taken = exclusive && err == -EEXIST;
  if (err == 0) err = SyncDir(dir.fd);
  // One cleanup path: whatever failed, the new file does not stay behind.
  if (!tmp.empty()) unlinkat(dir.fd, tmp.c_str(), 0);
  if (taken) return 0;
  return err < 0 ? err : 1;
}

int RemoveTrustedFile(const std::string& path, PathProblem* why) {
  TrustedDir dir;
  int err = OpenTrustedDir(path, &dir, why);
  if (err < 0) return err;
  FileId st;
  err = StatAt(dir.fd, dir.name.c_str(), AT_SYMLINK_NOFOLLOW, &st);
  if (err == -ENOENT) return NoFile(dir, why);
  if (err < 0 || (err = JudgeFile(dir, st, false, why)) < 0) return err;
  if (unlinkat(dir.fd, dir.name.c_str(), 0) < 0) return errno == ENOENT ? NoFile(dir, why) : -errno;
  return 1;
}

// ---- private directories and lock files ----------------------------------------------------

// chmod the directory `fd` (O_PATH) to `mode`: fchmod needs a real fd, opened through it.
static int ChmodDir(int fd, mode_t mode) {
  int dir = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -errno;
  int err = fchmod(dir, mode) < 0 ? -errno : 0;
  close(dir);
  return err;
}

int MakePrivateDir(const std::string& path, bool create, PathProblem* why) {
  TrustedDir parent;
  int err = OpenTrustedDir(path, &parent, why);
  if (err < 0) return err;
  bool created = false;
  if (create) {
    if (mkdirat(parent.fd, parent.name.c_str(), 0700) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      return -errno;
    }
  }
  FileId st;
  int fd = openat(parent.fd, parent.name.c_str(), O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    err = -errno;
    if ((err == -ENOTDIR || err == -ELOOP) && StatAt(parent.fd, parent.name.c_str(), AT_SYMLINK_NOFOLLOW, &st) == 0) {
      return RefuseFile(Distrust::kType, path, st, S_ISLNK(st.mode) ? -ELOOP : -ENOTDIR, why);
    }
    return err;
  }
  err = StatAt(fd, "", AT_EMPTY_PATH, &st);
  // Ours and new: only the umask can have taken bits off 0700. One found so is never changed.
  if (err == 0 && created && (st.mode & 07777) != 0700 && (err = ChmodDir(fd, 0700)) == 0) {
    err = StatAt(fd, "", AT_EMPTY_PATH, &st);
  }
  close(fd);
  if (err < 0) return err;
  if (st.uid != geteuid()) return RefuseFile(Distrust::kOwner, path, st, -EPERM, why);
  if ((st.mode & 07777) != 0700) return RefuseFile(Distrust::kMode, path, st, -EPERM, why);
  if ((err = JudgeEntry(parent.id, parent.path, &st, path, why)) < 0) return err;
  return created ? 1 : 0;
}

int OpenLockFile(const std::string& path, PathProblem* why) {
  TrustedDir dir;
  int err = OpenTrustedDir(path, &dir, why);
  if (err < 0) return err;
  FileId st;
  err = StatAt(dir.fd, dir.name.c_str(), AT_SYMLINK_NOFOLLOW, &st);
  if (err == 0) {
    err = JudgeFile(dir, st, true, why);
  } else if (err == -ENOENT) {
    err = JudgeEntry(dir.id, dir.path, nullptr, path, why);
  }
  if (err < 0) return err;
  int fd = openat(dir.fd, dir.name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  err = StatAt(fd, "", AT_EMPTY_PATH, &st);
  if (err == 0) err = JudgeFile(dir, st, true, why);
  if (err < 0) {
    close(fd);
    return err;
  }
  return fd;
}

// ---- byte locks ----------------------------------------------------------------------------

static int ByteLock(int fd, int cmd, short type, off_t offset, struct flock* fl) {
  memset(fl, 0, sizeof(*fl));  // l_pid must be 0 for open file description locks
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = offset;
  fl->l_len = 1;
  int r;
  do {
    r = fcntl(fd, cmd, fl);
  } while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

int LockByte(int fd, off_t offset) {
  struct flock fl;
  int err = ByteLock(fd, F_OFD_SETLK, F_WRLCK, offset, &fl);
  if (err == -EAGAIN || err == -EACCES) return 0;
  return err < 0 ? err : 1;
}

int UnlockByte(int fd, off_t offset) {
  struct flock fl;
  return ByteLock(fd, F_OFD_SETLK, F_UNLCK, offset, &fl);
}

int ByteLockedElsewhere(int fd, off_t offset) {
  struct flock fl;
  int err = ByteLock(fd, F_OFD_GETLK, F_WRLCK, offset, &fl);
  if (err < 0) return err;
  return fl.l_type != F_UNLCK ? 1 : 0;
}

}  // namespace vfd
