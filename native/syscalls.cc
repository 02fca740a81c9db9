#include "syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

namespace vfd {

int PidfdOpen(pid_t pid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  return fd < 0 ? -errno : fd;
}

int PidfdSendSignal(int pidfd, int signo, unsigned int flags) {
  return syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, flags) < 0 ? -errno : 0;
}

int PidfdGetfd(int pidfd, int targetfd) {
  int fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, targetfd, 0));
  return fd < 0 ? -errno : fd;
}

// Tests set VIRTIOFS_DAEMON_NO_PIDFD_GROUP to exercise the path of kernels before 6.9 here.
static bool ProbePidfdGroupSignal() {
  const char* off = getenv("VIRTIOFS_DAEMON_NO_PIDFD_GROUP");
  if (off && *off) return false;
  int self = PidfdOpen(getpid());
  if (self < 0) return false;
  // Signal 0 checks without sending. Unknown flags are EINVAL; ESRCH (we lead no group)
  // still proves that the kernel understood the flag.
  int r = PidfdSendSignal(self, 0, kPidfdSignalProcessGroup);
  close(self);
  return r == 0 || r == -ESRCH || r == -EPERM;
}

bool PidfdCanSignalGroup() {
  // 0 unknown, 1 no, 2 yes. A race between two threads probing is harmless: same answer.
  static std::atomic<int> state{0};
  int s = state.load(std::memory_order_relaxed);
  if (s == 0) {
    s = ProbePidfdGroupSignal() ? 2 : 1;
    state.store(s, std::memory_order_relaxed);
  }
  return s == 2;
}

// waitid's P_PIDFD (Linux 5.4), which glibc < 2.36 does not define.
static constexpr idtype_t kIdPidfd = static_cast<idtype_t>(3);

int WaitPidfd(int pidfd, siginfo_t* info, int options) {
  info->si_pid = 0;
  int r;
  do {
    r = waitid(kIdPidfd, pidfd, info, options);
  } while (r < 0 && errno == EINTR);
  // uv_poll_init made the pidfd O_NONBLOCK, which turns "still running" into EAGAIN.
  if (r < 0 && errno == EAGAIN) return 0;
  return r < 0 ? -errno : 0;
}

// The first 64 bytes of the kernel's struct pidfd_info (PIDFD_INFO_SIZE_VER0): the kernel
// copies what both sides know, so this size works on later kernels too.
struct PidfdInfo {
  uint64_t mask;
  uint64_t cgroupid;
  uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  int32_t exit_code;
};
static constexpr uint64_t kPidfdInfoExit = 1u << 3;
static constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);

int PidfdExitStatus(int pidfd, int* status) {
  PidfdInfo info;
  memset(&info, 0, sizeof(info));
  info.mask = kPidfdInfoExit;
  if (ioctl(pidfd, kPidfdGetInfo, &info) < 0) return -errno;
  // Asked before the reap, or of a kernel that never answers it (6.13, 6.14).
  if (!(info.mask & kPidfdInfoExit)) return -EAGAIN;
  *status = info.exit_code;
  return 0;
}

int StatAt(int dirfd, const char* name, int flags, FileId* out) {
  struct statx sx;
  unsigned int mask = STATX_TYPE | STATX_MODE | STATX_INO | STATX_UID | STATX_GID | STATX_SIZE;
  if (statx(dirfd, name, flags | AT_STATX_SYNC_AS_STAT, mask, &sx) < 0) return -errno;
  out->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  out->ino = sx.stx_ino;
  out->mode = sx.stx_mode;
  out->uid = sx.stx_uid;
  out->gid = sx.stx_gid;
  out->size = sx.stx_size;
  return 0;
}

}  // namespace vfd
