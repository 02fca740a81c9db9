// Opening a directory by path without following, or (for trusted files) passing through,
// anything that someone other than root or us could have planted on the way. One walk serves
// both the socket directories (unix_socket.cc) and the trusted files (trusted_file.cc).
// Plain POSIX: no Node-API here.
#ifndef VFD_DIR_WALK_H_
#define VFD_DIR_WALK_H_

#include <stdint.h>
#include <sys/types.h>

#include <string>

#include "syscalls.h"

namespace vfd {

// Which entries on the way the walk judges (see JudgeEntry).
enum class WalkRule {
  // Only symlinks, as systemd's chase() in its safe mode: a socket's directory may belong to
  // the unprivileged VMM user, and all that matters is that no symlink someone else planted
  // sends us elsewhere.
  kSymlinks,
  // Every directory and symlink, as OpenSSH's StrictModes: for files whose content we act on,
  // or that we write, every directory of the chain must be one only root or we could change.
  // The path must be absolute: the chain above a working directory would go unjudged.
  kEveryEntry,
};

// Why an entry, or the file at the end of the walk, is not to be trusted.
enum class Distrust {
  kNone,
  kOwner,         // owned by someone other than root or us
  kWritable,      // writable by group or others (a directory: and not sticky)
  kForeignEntry,  // in a sticky directory, an entry of someone other than root or us
  kType,          // not what it must be: a regular file (a FIFO, a symlink, a device...) or a directory
  kSize,          // a file larger than the caller reads
  kMode,          // a private directory whose mode is not exactly 0700
};

// Why a call failed, beyond its errno, for the message the caller shows.
struct PathProblem {
  mode_t found_mode = 0;  // -EEXIST: the type of what occupies the path
  bool listener = false;  // -EADDRINUSE: sock_diag saw a listener (else: the path was re-taken meanwhile)
  std::string symlink;    // -ELOOP: the symlink we refused to follow ...
  uid_t dir_owner = 0;    // ... the owner and mode of the directory that holds it
  mode_t dir_mode = 0;
  // The trusted-file rule (kEveryEntry, trusted_file.h): what failed it, when `distrust` is set.
  Distrust distrust = Distrust::kNone;
  std::string component;  // the path at fault: a directory or symlink on the way, or the file itself
  uid_t owner = 0;        // its owner, and its mode with the file type bits
  mode_t mode = 0;
  uint64_t size = 0;  // kSize: how many bytes the file holds
};

// "/a/b/c" -> "/a/b", "c"; "c" -> ".", "c"; "/c" -> "/", "c". One definition for every caller.
void SplitPath(const std::string& path, std::string* dir, std::string* base);

// Root or our euid: the only owners whose files and directories we trust.
bool OursOrRoot(uid_t uid);

// Whether only root or we could have put `entry` into the directory `holder`: the holder is
// owned by root or us, and either writable by nobody else, or sticky with an entry of root's or
// ours (in a sticky directory only an entry's owner, or the directory's, may rename or remove
// it). `entry` null: a name not taken yet, which would be ours once we create it. 0 yes;
// -EPERM with why->distrust, component, owner and mode naming the holder or the entry at fault.
int JudgeEntry(const FileId& holder, const std::string& holder_path, const FileId* entry,
               const std::string& entry_path, PathProblem* why);

// Open `dir` (O_PATH|O_DIRECTORY) without trusting what someone else could have planted.
// kSymlinks: a symlink is followed only when JudgeEntry trusts it in its directory, like
// systemd's chase "safe" mode; trusted links such as Debian's /var/run -> /run still work;
// -ELOOP (with why->symlink) when refused. kEveryEntry: every directory on the way must pass
// JudgeEntry as well (-EPERM with why->distrust), a refused symlink is -ELOOP with both; a
// relative `dir` is -EINVAL. The directory returned is not judged: that is the caller's, who
// knows the entry it is about to use in it. Returns the fd.
int OpenDirSafely(const std::string& dir, WalkRule rule, PathProblem* why);

}  // namespace vfd

#endif  // VFD_DIR_WALK_H_
