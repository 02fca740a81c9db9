// Opening a directory by path without following a symlink that someone other than root or us
// could have planted on the way. Plain POSIX: no Node-API here.
#ifndef VFD_DIR_WALK_H_
#define VFD_DIR_WALK_H_

#include <sys/types.h>

#include <string>

namespace vfd {

// Why a call failed, beyond its errno, for the message the caller shows.
struct PathProblem {
  mode_t found_mode = 0;    // -EEXIST: the type of what occupies the path
  bool listener = false;    // -EADDRINUSE: sock_diag saw a listener (else: the path was re-taken meanwhile)
  std::string symlink;      // -ELOOP: the symlink we refused to follow ...
  uid_t dir_owner = 0;      // ... the owner and mode of the directory that holds it
  mode_t dir_mode = 0;
};

// "/a/b/c" -> "/a/b", "c"; "c" -> ".", "c"; "/c" -> "/", "c". One definition for every caller.
void SplitPath(const std::string& path, std::string* dir, std::string* base);

// Open `dir` (O_PATH|O_DIRECTORY) without following a symlink that someone else could have
// planted: a symlink is followed only when the directory holding it is owned by root or by
// our euid and writable by nobody else (or is sticky and the link is root's or ours), like
// systemd's chase "safe" mode. Trusted links such as Debian's /var/run -> /run still work.
// -ELOOP (with why->symlink) when refused. Returns the fd.
int OpenDirSafely(const std::string& dir, PathProblem* why);

}  // namespace vfd

#endif  // VFD_DIR_WALK_H_
