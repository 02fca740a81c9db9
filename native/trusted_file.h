// Trusted files: files whose content we act on (a daemon's state, a key) or that we write, as
// root, for ourselves. Plain POSIX: no Node-API here. Every function returns >= 0 or a negative
// errno.
//
// Security model, as OpenSSH's StrictModes and systemd treat such files. A trusted file is
// reached by the walk of dir_walk.h under WalkRule::kEveryEntry: every directory of its chain,
// and every symlink followed, is one only root or we could have put there (JudgeEntry: owned by
// root or us, and not writable by group or others, or sticky with an entry of root's or ours).
// The file itself is regular, owned by root or us, and not writable by group or others. Every
// step acts relative to the fd of the file's directory, opened once per call, and never by path
// again. Nothing that is not a regular file is ever opened: a FIFO cannot block us, a device or
// a symlink to one (/dev/zero) cannot feed us without end. A refusal is -EPERM (owner, mode),
// -ELOOP (a symlink), -EISDIR or -EINVAL (another type), or -EFBIG (too large), with
// why->distrust, component, owner and mode saying which path is at fault and why.
#ifndef VFD_TRUSTED_FILE_H_
#define VFD_TRUSTED_FILE_H_

#include <stddef.h>
#include <sys/types.h>

#include <string>

#include "dir_walk.h"

namespace vfd {

// What ReadTrustedFile reads when the caller names no limit: a state file is a few hundred bytes.
constexpr size_t kTrustedFileMaxDefault = 64 * 1024;

// Read the trusted file `path` (absolute) whole into *out, if it holds at most `max` bytes:
// 1 read, 0 no file of that name (its directory exists and is trusted). Never a partial read:
// a larger file is -EFBIG (Distrust::kSize) and *out is left empty.
int ReadTrustedFile(const std::string& path, size_t max, std::string* out, PathProblem* why);

// Write `len` bytes at `data` to the trusted file `path` (absolute), atomically: a new file
// with a random name (O_CREAT|O_EXCL|O_NOFOLLOW) in the same directory, given exactly `mode`,
// written whole and fsync'ed, then renamed over `path`, then the directory fsync'ed; on any
// failure the new file is removed and `path` is as it was. A file already at `path` is replaced
// only if it is a regular file of root's or ours. `exclusive`: linked into place instead
// (linkat), so that an existing `path` is never replaced: 0 then, and nothing was written.
// 1 written.
int WriteTrustedFile(const std::string& path, const void* data, size_t len, mode_t mode, bool exclusive,
                     PathProblem* why);

// Remove the trusted file `path` (absolute), only if it is still a regular file of root's or
// ours: 1 removed, 0 nothing there.
int RemoveTrustedFile(const std::string& path, PathProblem* why);

// A private directory at `path` (absolute), in a trusted parent: made with mode 0700 when
// `create` and missing, then checked: a directory, not a symlink, owned by our euid, mode
// exactly 0700. One that fails is never changed: -EPERM (kOwner, kMode) or -ELOOP/-ENOTDIR
// (kType). 1 created, 0 there already.
int MakePrivateDir(const std::string& path, bool create, PathProblem* why);

// Open (creating it with mode 0600 when missing) the trusted file `path` (absolute) read-write,
// for byte-range locks. Returns the fd (close-on-exec).
int OpenLockFile(const std::string& path, PathProblem* why);

// Open file description locks (F_OFD_SETLK) on the single byte at `offset` of `fd`: held by
// the open file description, so every fd of one open(), and by no other open() even in this
// process; released when the description's last fd is closed (or its process dies).
// LockByte: exclusive, without waiting: 1 we hold it now, 0 another description holds it.
int LockByte(int fd, off_t offset);
int UnlockByte(int fd, off_t offset);
// F_OFD_GETLK: 1 when another open file description holds the byte, 0 when nobody does, or we do.
int ByteLockedElsewhere(int fd, off_t offset);

}  // namespace vfd

#endif  // VFD_TRUSTED_FILE_H_
