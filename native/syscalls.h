// The raw Linux calls the addon needs that glibc 2.28 (our oldest supported C library) does
// not wrap, and the few loops around them that every caller would otherwise repeat.
// Plain POSIX: no Node-API here. Every function returns >= 0 or a negative errno.
#ifndef VFD_SYSCALLS_H_
#define VFD_SYSCALLS_H_

#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

namespace vfd {

int PidfdOpen(pid_t pid);
int PidfdSendSignal(int pidfd, int signo, unsigned int flags = 0);
// A copy (close-on-exec) of fd `targetfd` of the pidfd's process (Linux 5.6; ptrace access).
int PidfdGetfd(int pidfd, int targetfd);

// The flag of pidfd_send_signal (Linux >= 6.9) that signals the process group the pidfd's
// process leads, named by its struct pid rather than by number.
constexpr unsigned int kPidfdSignalProcessGroup = 1u << 2;

// Whether kPidfdSignalProcessGroup works here: probed once per process.
bool PidfdCanSignalGroup();

// waitid(P_PIDFD) restarted on EINTR. Sets info->si_pid to 0 first, so that WNOHANG's
// "nothing yet" reads as si_pid == 0; EAGAIN (an O_NONBLOCK pidfd still running) is also 0.
int WaitPidfd(int pidfd, siginfo_t* info, int options);

// The wait status (as waitpid's) of a reaped process, kept by the kernel in its pidfd
// (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux >= 6.15). -EAGAIN while it is not published (not
// reaped yet; on 6.13 and 6.14, never); -ENOTTY/-EINVAL before 6.13; -ESRCH once a 6.13/6.14
// process is reaped.
int PidfdExitStatus(int pidfd, int* status);

// What a caller needs of stat(), through statx(). glibc's stat family binds to GLIBC_2.33
// symbols; statx is GLIBC_2.28, which our prebuilt addon must still load on.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;
};

// statx(dirfd, name, flags) into *out; flags as fstatat's (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH).
int StatAt(int dirfd, const char* name, int flags, FileId* out);

}  // namespace vfd

#endif  // VFD_SYSCALLS_H_
