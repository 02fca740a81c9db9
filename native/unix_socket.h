// Unix listening sockets handed to a daemon as an inherited fd, and the life of their file.
// Plain POSIX: no Node-API here. Every function returns 0 or a negative errno.
//
// Security model. We run as root for an unprivileged VMM user who owns the socket's directory
// (or its parent). Every step acts on the socket file through a descriptor of its directory,
// opened once per call without following a symlink that anyone but root or us could have
// planted (see OpenDirSafely in dir_walk.h), and never by path again: a directory swapped for a symlink
// between two steps cannot redirect a bind, chown or unlink elsewhere. An unlink only removes
// a socket file whose device and inode are the ones we bound or just inspected.
#ifndef VFD_UNIX_SOCKET_H_
#define VFD_UNIX_SOCKET_H_

#include <sys/types.h>
#include <string>

#include "dir_walk.h"

namespace vfd {

// sun_path holds 108 bytes, one of which is the terminating NUL.
constexpr size_t kMaxSocketPath = 107;

struct BoundSocket {
  int fd = -1;
  dev_t dev = 0;  // the socket file's identity, so that later steps touch only it
  ino_t ino = 0;
  bool chowned = false;  // ListenUnix with chown_to_parent: the file is now the directory owner's
  uid_t uid = 0;         // ... that owner
  gid_t gid = 0;
  const char* step = "listen";  // on failure: the step that failed ("listen", or "fchownat" for the chown)
  PathProblem problem;
};

// Bind a SOCK_STREAM|SOCK_CLOEXEC unix socket at `path` and listen; the fd stays blocking.
// A socket file that nobody listens on is replaced. -EADDRINUSE when a socket of this network
// namespace listens there, -EEXIST when the path holds anything but a socket (left intact),
// -ENAMETOOLONG past kMaxSocketPath bytes (never truncated), -ELOOP for a planted symlink.
// `chown_to_parent`: then give the socket file to the owner of its directory as ChownToParent
// does, through the same pinned directory (out->step "fchownat" when that fails: the socket is
// unlinked and closed then, as on any failure). One directory walk for all of it.
int ListenUnix(const std::string& path, int backlog, bool chown_to_parent, BoundSocket* out);

// Remove `path` when it is a socket file that no socket of this network namespace listens
// on: 1 removed, 0 nothing there. -EADDRINUSE when one listens, -EEXIST when the path holds
// anything but a socket; both leave it intact.
int RemoveStaleSocket(const std::string& path, PathProblem* why);

// Give the socket file at `path` to the owner of its directory, without following a symlink
// at `path`, and only if the file there is still (dev, ino): -ESTALE otherwise.
int ChownToParent(const std::string& path, dev_t dev, ino_t ino, uid_t* uid, gid_t* gid, PathProblem* why);

// Unlink `path` if it is still the socket (dev, ino). 1 when removed, 0 when not ours or not
// there, which includes a directory that is gone or was swapped for a symlink we refuse.
int UnlinkSocketIfSame(const std::string& path, dev_t dev, ino_t ino);

// The listener of the socket file (dev, ino), as /proc/<pid>/fd names it ("socket:[N]"): 1 with
// *sock_ino = N when a socket of this network namespace listens there, 0 when none does. Lets a
// caller check that a process it trusts is the one listening, without connecting.
int ListenerSocketInode(dev_t dev, ino_t ino, ino_t* sock_ino);

// SO_PEERCRED of the connected unix socket fd: the pid, uid and gid of the process that made
// the other end (for a connection to a listener: the process that called listen()).
int PeerCredentials(int fd, pid_t* pid, uid_t* uid, gid_t* gid);

}  // namespace vfd

#endif  // VFD_UNIX_SOCKET_H_
