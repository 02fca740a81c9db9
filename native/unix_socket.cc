#include "unix_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>

#include "dir_walk.h"
#include "syscalls.h"

// The prebuilds must load wherever Node's own binaries do (glibc >= 2.28). glibc 2.34 moved the
// pthread functions into libc under a new symbol version; bind to the original version, which
// every glibc still exports (from libpthread before 2.34, from libc since).
#if defined(__GLIBC__) && defined(__x86_64__)
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.2.5");
#elif defined(__GLIBC__) && defined(__aarch64__)
__asm__(".symver pthread_create,pthread_create@GLIBC_2.17");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.17");
#endif

namespace vfd {

// A socket path split into its pinned directory and the name inside it.
struct SocketDir {
  int fd = -1;
  std::string name;
  ~SocketDir() {
    if (fd >= 0) close(fd);
  }
};

static int OpenSocketDir(const std::string& path, SocketDir* out, PathProblem* why) {
  if (path.empty()) return -EINVAL;
  if (path.size() > kMaxSocketPath) return -ENAMETOOLONG;
  std::string dir;
  SplitPath(path, &dir, &out->name);
  if (out->name.empty() || out->name == "." || out->name == "..") return -EISDIR;
  int fd = OpenDirSafely(dir, WalkRule::kSymlinks, why);
  if (fd < 0) return fd;
  out->fd = fd;
  return 0;
}

// ---- binding inside the pinned directory --------------------------------------------------

// Fill `addr` with `path`: false when it does not fit sun_path (with its NUL).
static bool SocketAddress(struct sockaddr_un* addr, socklen_t* len, const char* fmt, int fd, const char* name) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  int n = fd < 0 ? snprintf(addr->sun_path, sizeof(addr->sun_path), fmt, name)
                 : snprintf(addr->sun_path, sizeof(addr->sun_path), fmt, fd, name);
  if (n < 0 || static_cast<size_t>(n) >= sizeof(addr->sun_path)) return false;
  *len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return true;
}

static int BindName(int sock, const char* name) {
  struct sockaddr_un addr;
  socklen_t len;
  if (!SocketAddress(&addr, &len, "%s", -1, name)) return -ENAMETOOLONG;
  return bind(sock, reinterpret_cast<struct sockaddr*>(&addr), len) < 0 ? -errno : 0;
}

// Whether /proc is procfs, asked once per process: only procfs makes /proc/self/fd/<n> the
// magic link that BindViaProc relies on. Not mounted (a chroot, a bare container) or anything
// else there: BindAt takes the thread instead.
static bool ProcIsProcfs() {
  static std::atomic<int> known{0};  // 0 not asked yet, 1 procfs, -1 not
  int k = known.load(std::memory_order_relaxed);
  if (k == 0) {
    struct statfs fs;
    k = statfs("/proc", &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC ? 1 : -1;
    known.store(k, std::memory_order_relaxed);
  }
  return k > 0;
}

// Bind at /proc/self/fd/<dirfd>/<name>: the magic link /proc/self/fd/<dirfd> is not a path
// that is resolved again but the open directory itself (the kernel jumps to the file's own
// dentry), so a parent swapped for a symlink after we pinned the directory cannot redirect the
// bind, exactly as with the thread below, without a thread. -ENAMETOOLONG when the magic path
// does not fit sun_path (the name alone may still fit: see BindInThread).
static int BindViaProc(int sock, const SocketDir& dir) {
  struct sockaddr_un addr;
  socklen_t len;
  if (!SocketAddress(&addr, &len, "/proc/self/fd/%d/%s", dir.fd, dir.name.c_str())) return -ENAMETOOLONG;
  return bind(sock, reinterpret_cast<struct sockaddr*>(&addr), len) < 0 ? -errno : 0;
}

struct BindJob {
  int sock;
  const SocketDir* dir;
  int err;
  bool no_unshare;  // a sandbox (seccomp) refused unshare(CLONE_FS)
};

static void* BindJobMain(void* arg) {
  BindJob* job = static_cast<BindJob*>(arg);
  // unshare(CLONE_FS) gives this thread a working directory of its own: the fchdir moves no
  // other thread of the process (Node runs several), and it dies with the thread.
  if (unshare(CLONE_FS) < 0) {
    job->err = -errno;
    job->no_unshare = true;
  } else if (fchdir(job->dir->fd) < 0) {
    job->err = -errno;
  } else {
    job->err = BindName(job->sock, job->dir->name.c_str());
  }
  return nullptr;
}

// The fallback: a short-lived thread with a working directory of its own binds the bare name
// from inside the pinned directory. It costs a clone3 with a fresh stack, an unshare and the
// thread's exit (~100-150 µs against ~10 µs for the bind itself), so it only serves where the
// magic link cannot: no procfs at /proc, or a magic path longer than sun_path.
static int BindInThread(int sock, const SocketDir& dir) {
  BindJob job = {sock, &dir, 0, false};
  pthread_t thread;
  int err = pthread_create(&thread, nullptr, BindJobMain, &job);
  if (err) return -err;
  pthread_join(thread, nullptr);  // cannot fail: joinable, ours, joined once
  return job.no_unshare ? BindViaProc(sock, dir) : job.err;
}

// bind() takes a path, not a directory fd; both ways here resolve nothing by path again.
//
// What the socket's address reads. A unix socket keeps the string it was bound with, and
// getsockname(), ss -xlp, lsof and a client's getpeername() show it. Bound through the magic
// link it reads /proc/self/fd/<n>/<name>, where <n> is a directory fd of the manager that is
// closed right after: a path that, resolved by anyone else, names something else or nothing.
// Bound from the thread it read the bare <name>, which is not a usable path either (relative to
// a working directory that no longer exists) but at least says which file it is. We take the
// /proc form on purpose: nothing that serves or uses these sockets reads the address (a VMM
// connects to the file by its path; virtiofsd and nydusd take the fd as it is; our own checks
// (sock_diag for who listens, the handle's proof) go by the file's device and inode, never by
// the address), the name is still its last component, and an address that plainly is not a
// path to connect to is no worse than a relative one. A tool that must map a listener to its
// file asks sock_diag for UDIAG_SHOW_VFS (ss -xe shows the inode), as we do. In exchange a
// start no longer makes a thread. Incus binds its sockets the same way.
static int BindAt(int sock, const SocketDir& dir) {
  if (ProcIsProcfs()) {
    int err = BindViaProc(sock, dir);
    if (err != -ENAMETOOLONG) return err;
  }
  return BindInThread(sock, dir);
}

// Whether a socket of this network namespace listens on the socket file (dev, ino):
// 1 yes (with the listening socket's own inode, the N of "socket:[N]" in /proc/<pid>/fd, in
// *sock_ino when given), 0 no, negative errno when the kernel cannot tell us (no unix_diag).
//
// We ask sock_diag instead of connecting to find out: a virtiofsd serves exactly one
// front-end and exits when it disconnects, so a probing connect() would kill the very
// daemon it was meant to protect.
static int ListenerOnInode(dev_t dev, ino_t ino, ino_t* sock_ino = nullptr) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return -errno;

  struct {
    struct nlmsghdr nlh;
    struct unix_diag_req req;
  } msg;
  memset(&msg, 0, sizeof(msg));
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = 1u << TCP_LISTEN;
  msg.req.udiag_show = UDIAG_SHOW_VFS;

  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;

  int found = 0;
  int err = 0;
  if (sendto(nl, &msg, sizeof(msg), 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    err = -errno;
    goto out;
  }

  for (;;) {
    alignas(struct nlmsghdr) char buf[16384];
    ssize_t n = recv(nl, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = -errno;
      goto out;
    }
    if (n == 0) goto out;
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) goto out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<struct nlmsgerr*>(NLMSG_DATA(h));
        err = e->error ? e->error : -EIO;
        goto out;
      }
      auto* m = static_cast<struct unix_diag_msg*>(NLMSG_DATA(h));
      int attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
      for (auto* a = reinterpret_cast<struct rtattr*>(m + 1); RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len)) {
        if (a->rta_type != UNIX_DIAG_VFS) continue;
        auto* vfs = static_cast<struct unix_diag_vfs*>(RTA_DATA(a));
        // The kernel reports its internal dev_t (20 minor bits), not stat()'s encoding.
        dev_t vdev = makedev(vfs->udiag_vfs_dev >> 20, vfs->udiag_vfs_dev & 0xfffff);
        if (vfs->udiag_vfs_ino != ino || vdev != dev) continue;
        found = 1;
        if (sock_ino) *sock_ino = m->udiag_ino;
      }
    }
  }

out:
  close(nl);
  return err < 0 ? err : found;
}

// Remove the stale socket `dir.name`: 1 removed, 0 nothing there, else see RemoveStaleSocket.
static int RemoveStaleAt(const SocketDir& dir, PathProblem* why) {
  FileId st;
  int err = StatAt(dir.fd, dir.name.c_str(), AT_SYMLINK_NOFOLLOW, &st);
  if (err < 0) return err == -ENOENT ? 0 : err;
  if (!S_ISSOCK(st.mode)) {
    why->found_mode = st.mode;
    return -EEXIST;
  }
  int live = ListenerOnInode(st.dev, st.ino);
  if (live < 0) return live;
  if (live) {
    why->listener = true;
    return -EADDRINUSE;
  }
  if (unlinkat(dir.fd, dir.name.c_str(), 0) < 0) return errno == ENOENT ? 0 : -errno;
  return 1;
}

int RemoveStaleSocket(const std::string& path, PathProblem* why) {
  SocketDir dir;
  int err = OpenSocketDir(path, &dir, why);
  if (err < 0) return err;
  return RemoveStaleAt(dir, why);
}

// Unlink `dir.name` if it is still the socket (dev, ino): 1 removed, 0 not ours or gone.
static int UnlinkAtIfSame(const SocketDir& dir, dev_t dev, ino_t ino) {
  FileId st;
  int err = StatAt(dir.fd, dir.name.c_str(), AT_SYMLINK_NOFOLLOW, &st);
  if (err < 0) return err == -ENOENT ? 0 : err;
  if (!S_ISSOCK(st.mode) || st.dev != dev || st.ino != ino) return 0;
  if (unlinkat(dir.fd, dir.name.c_str(), 0) < 0) return errno == ENOENT ? 0 : -errno;
  return 1;
}

// Bind `sock` at dir.name, replacing a stale socket file once, and read the file's identity.
static int BindAndIdentify(int sock, const SocketDir& dir, BoundSocket* out) {
  for (int attempt = 0;; attempt++) {
    int err = BindAt(sock, dir);
    if (err == 0) break;
    // A second EADDRINUSE: something took the path again after we removed a stale socket.
    if (err != -EADDRINUSE || attempt > 0) return err;
    if ((err = RemoveStaleAt(dir, &out->problem)) < 0) return err;
  }
  FileId st;
  int err = StatAt(dir.fd, dir.name.c_str(), AT_SYMLINK_NOFOLLOW, &st);
  if (err < 0) return err == -ENOENT ? -ESTALE : err;
  // Replaced already, by someone who may write the directory: not ours, so not ours to remove.
  if (!S_ISSOCK(st.mode)) return -ESTALE;
  out->dev = st.dev;
  out->ino = st.ino;
  return 0;
}

// Give dir.name to the directory's owner, only while it is still the socket (dev, ino).
static int ChownAt(const SocketDir& dir, dev_t dev, ino_t ino, uid_t* uid, gid_t* gid) {
  FileId owner, st;
  int err = StatAt(dir.fd, "", AT_EMPTY_PATH, &owner);
  if (err < 0) return err;
  // O_PATH|O_NOFOLLOW pins the node itself: a symlink planted at the name is opened as a
  // symlink, fails the identity check below, and its target is never touched.
  int node = openat(dir.fd, dir.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (node < 0) return -errno;
  if ((err = StatAt(node, "", AT_EMPTY_PATH, &st)) == 0) {
    if (!S_ISSOCK(st.mode) || st.dev != dev || st.ino != ino) {
      err = -ESTALE;
    } else if (fchownat(node, "", owner.uid, owner.gid, AT_EMPTY_PATH) < 0) {
      err = -errno;
    }
  }
  close(node);
  if (err < 0) return err;
  *uid = owner.uid;
  *gid = owner.gid;
  return 0;
}

int ListenUnix(const std::string& path, int backlog, bool chown_to_parent, BoundSocket* out) {
  // The socket first: callers that arranged for it to get a particular (lowest) fd number keep it.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  SocketDir dir;
  int err = OpenSocketDir(path, &dir, &out->problem);
  if (err == 0) err = BindAndIdentify(fd, dir, out);
  if (err < 0) {
    close(fd);
    return err;
  }
  if (listen(fd, backlog) < 0) {
    err = -errno;
  } else if (chown_to_parent) {
    out->step = "fchownat";
    err = ChownAt(dir, out->dev, out->ino, &out->uid, &out->gid);
    out->chowned = err == 0;
  }
  if (err < 0) {
    // Best effort: the listen or chown error is the one to report, and a file it fails to
    // remove is a stale socket that the next ListenUnix there replaces.
    UnlinkAtIfSame(dir, out->dev, out->ino);
    close(fd);
    return err;
  }
  out->fd = fd;
  return 0;
}

int ChownToParent(const std::string& path, dev_t dev, ino_t ino, uid_t* uid, gid_t* gid, PathProblem* why) {
  SocketDir dir;
  int err = OpenSocketDir(path, &dir, why);
  if (err < 0) return err;
  return ChownAt(dir, dev, ino, uid, gid);
}

int UnlinkSocketIfSame(const std::string& path, dev_t dev, ino_t ino) {
  SocketDir dir;
  PathProblem ignored;
  int err = OpenSocketDir(path, &dir, &ignored);
  // Our file is not at this path any more (its directory is gone or was replaced).
  if (err == -ENOENT || err == -ENOTDIR || err == -ELOOP) return 0;
  if (err < 0) return err;
  return UnlinkAtIfSame(dir, dev, ino);
}

int ListenerSocketInode(dev_t dev, ino_t ino, ino_t* sock_ino) {
  *sock_ino = 0;
  return ListenerOnInode(dev, ino, sock_ino);
}

int PeerCredentials(int fd, pid_t* pid, uid_t* uid, gid_t* gid) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
  *pid = cred.pid;
  *uid = cred.uid;
  *gid = cred.gid;
  return 0;
}

}  // namespace vfd
