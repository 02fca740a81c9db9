// Unix listening sockets handed to a daemon as an inherited fd, and the life of their file.
// Plain POSIX: no Node-API here. Every function returns 0 or a negative errno.
#ifndef VFD_UNIX_SOCKET_H_
#define VFD_UNIX_SOCKET_H_

#include <sys/types.h>
#include <string>

namespace vfd {

// sun_path holds 108 bytes, one of which is the terminating NUL.
constexpr size_t kMaxSocketPath = 107;

struct BoundSocket {
  int fd = -1;
  dev_t dev = 0;        // the socket file's identity, so that later steps touch only it
  ino_t ino = 0;
  mode_t found_mode = 0;  // on -EEXIST: the type of what occupies the path
};

// Bind a SOCK_STREAM|SOCK_CLOEXEC unix socket at `path` and listen; the fd stays blocking.
// A socket file that nobody listens on is replaced. -EADDRINUSE when a socket of this network
// namespace listens there, -EEXIST when the path holds anything but a socket (left intact),
// -ENAMETOOLONG past kMaxSocketPath bytes (never truncated).
int ListenUnix(const std::string& path, int backlog, BoundSocket* out);

// Remove `path` when it is a socket file that no socket of this network namespace listens
// on: 1 removed, 0 nothing there. -EADDRINUSE when one listens, -EEXIST (with *found_mode)
// when the path holds anything but a socket; both leave it intact.
int RemoveStaleSocket(const std::string& path, mode_t* found_mode);

// Give the socket file at `path` to the owner of its directory, without following a symlink
// at `path`, and only if the file there is still (dev, ino): -ESTALE otherwise.
int ChownToParent(const std::string& path, dev_t dev, ino_t ino, uid_t* uid, gid_t* gid);

// Unlink `path` if it is still the socket (dev, ino). 1 when removed, 0 when not ours or gone.
int UnlinkSocketIfSame(const std::string& path, dev_t dev, ino_t ino);

}  // namespace vfd

#endif  // VFD_UNIX_SOCKET_H_
