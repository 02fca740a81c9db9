#include "unix_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

namespace vfd {

static int FillAddress(const std::string& path, struct sockaddr_un* addr, socklen_t* len) {
  if (path.empty()) return -EINVAL;
  if (path.size() > kMaxSocketPath) return -ENAMETOOLONG;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path.data(), path.size());
  *len = offsetof(struct sockaddr_un, sun_path) + path.size() + 1;
  return 0;
}

// Whether a socket of this network namespace listens on the socket file (dev, ino):
// 1 yes, 0 no, negative errno when the kernel cannot tell us (no unix_diag).
//
// We ask sock_diag instead of connecting to find out: a virtiofsd serves exactly one
// front-end and exits when it disconnects, so a probing connect() would kill the very
// daemon it was meant to protect.
static int ListenerOnInode(dev_t dev, ino_t ino) {
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
        if (vfs->udiag_vfs_ino == ino && vdev == dev) found = 1;
      }
    }
  }

out:
  close(nl);
  return err < 0 ? err : found;
}

int RemoveStaleSocket(const std::string& path, mode_t* found_mode) {
  struct stat st;
  if (lstat(path.c_str(), &st) < 0) return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK(st.st_mode)) {
    *found_mode = st.st_mode;
    return -EEXIST;
  }
  int live = ListenerOnInode(st.st_dev, st.st_ino);
  if (live < 0) return live;
  if (live) return -EADDRINUSE;
  if (unlink(path.c_str()) < 0) return errno == ENOENT ? 0 : -errno;
  return 1;
}

int ListenUnix(const std::string& path, int backlog, BoundSocket* out) {
  struct sockaddr_un addr;
  socklen_t addr_len;
  struct stat st;
  bool bound = false;
  int err = FillAddress(path, &addr, &addr_len);
  if (err < 0) return err;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;

  for (int attempt = 0;; attempt++) {
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), addr_len) == 0) break;
    err = -errno;
    if (err != -EADDRINUSE || attempt > 0) goto fail;
    err = RemoveStaleSocket(path, &out->found_mode);
    if (err < 0) goto fail;
  }
  bound = true;

  if (listen(fd, backlog) < 0) {
    err = -errno;
    goto fail;
  }
  // A socket fd's fstat() describes the sockfs inode; the file's identity needs the path.
  if (lstat(path.c_str(), &st) < 0) {
    err = -errno;
    goto fail;
  }
  if (!S_ISSOCK(st.st_mode)) {
    err = -ESTALE;
    goto fail;
  }
  out->fd = fd;
  out->dev = st.st_dev;
  out->ino = st.st_ino;
  return 0;

fail:
  if (bound) unlink(path.c_str());
  close(fd);
  return err;
}

static void SplitPath(const std::string& path, std::string* dir, std::string* base) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    *dir = ".";
    *base = path;
  } else {
    *dir = slash == 0 ? "/" : path.substr(0, slash);
    *base = path.substr(slash + 1);
  }
}

int ChownToParent(const std::string& path, dev_t dev, ino_t ino, uid_t* uid, gid_t* gid) {
  std::string dir, base;
  SplitPath(path, &dir, &base);
  struct stat dst, st;
  int err = 0;
  int node = -1;

  int dirfd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return -errno;
  if (fstat(dirfd, &dst) < 0) {
    err = -errno;
    goto out;
  }
  // O_PATH|O_NOFOLLOW pins the node itself: a symlink planted at the path is opened as a
  // symlink, fails the identity check below, and its target is never touched.
  node = openat(dirfd, base.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (node < 0) {
    err = -errno;
    goto out;
  }
  if (fstat(node, &st) < 0) {
    err = -errno;
    goto out;
  }
  if (!S_ISSOCK(st.st_mode) || st.st_dev != dev || st.st_ino != ino) {
    err = -ESTALE;
    goto out;
  }
  if (fchownat(node, "", dst.st_uid, dst.st_gid, AT_EMPTY_PATH) < 0) {
    err = -errno;
    goto out;
  }
  *uid = dst.st_uid;
  *gid = dst.st_gid;

out:
  if (node >= 0) close(node);
  close(dirfd);
  return err;
}

int UnlinkSocketIfSame(const std::string& path, dev_t dev, ino_t ino) {
  struct stat st;
  if (lstat(path.c_str(), &st) < 0) return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK(st.st_mode) || st.st_dev != dev || st.st_ino != ino) return 0;
  if (unlink(path.c_str()) < 0) return errno == ENOENT ? 0 : -errno;
  return 1;
}

}  // namespace vfd
