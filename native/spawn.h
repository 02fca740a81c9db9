// Starting a program with an exact fd table, without copying the parent's address space.
// Plain POSIX: no Node-API here. Every function returns 0 or a negative errno.
#ifndef VFD_SPAWN_H_
#define VFD_SPAWN_H_

#include <sys/types.h>
#include <vector>

namespace vfd {

struct FdSource {
  enum Kind { kClosed, kInherit, kDevNull, kPipeFromChild, kPipeToChild };
  Kind kind = kClosed;
  int fd = -1;  // kInherit: our fd that the child gets a copy of
};

struct SpawnRequest {
  const char* file = nullptr;      // not searched in PATH
  char* const* argv = nullptr;     // NULL-terminated, argv[0] included
  char* const* envp = nullptr;     // NULL-terminated
  const char* cwd = nullptr;       // nullptr: ours
  std::vector<FdSource> fds;       // entry i becomes file descriptor i; every other fd is closed
  bool new_process_group = false;  // pgid = pid
  void* stack = nullptr;           // from AllocateSpawnStack, or nullptr for a fresh one
  // A cgroup v2 directory fd: the child is in that cgroup before its first instruction.
  int cgroup_fd = -1;
  // How it gets there. kClone: clone3(CLONE_INTO_CGROUP), created there (Linux >= 5.7), else
  // kProcs; kProcs once more when the kernel killed the clone3 child before its first
  // instruction (a kernel bug after cgroup.kill: see KilledAtBirth in spawn.cc). kProcs: the
  // child writes "0" to the cgroup's cgroup.procs before it execs, which migrates it and costs
  // more (see bench/); kept as the fallback and for the benchmark.
  enum CgroupMethod { kClone, kProcs };
  CgroupMethod cgroup_method = kClone;
  // Non-zero: PR_SET_PDEATHSIG(death_signal) in the child, which then exits at once if
  // `parent` (our getpid(), taken before clone) is no longer its parent. The signal is tied to
  // the calling THREAD, not to our process: see SetDeathSignal.
  int death_signal = 0;
  pid_t parent = 0;
};

struct SpawnResult {
  pid_t pid = -1;
  int pidfd = -1;
  std::vector<int> parent_ends;  // per entry: our end of its pipe (O_NONBLOCK|O_CLOEXEC), or -1
  // On failure: the step that could not place the child in its cgroup ("clone3" or
  // "cgroup.procs"), or nullptr when the failure had nothing to do with the cgroup.
  const char* cgroup_step = nullptr;
  // With a cgroup: how the child got there, "clone3" (CLONE_INTO_CGROUP) or "cgroup.procs" (the
  // fallback, also taken once when the kernel killed the clone3 child at birth: see spawn.cc).
  const char* cgroup_via = nullptr;
};

// Spawn a CLONE_VM|CLONE_VFORK child (glibc's posix_spawn discipline: its own stack, every
// signal blocked until the child has reset them), with an empty signal mask and every signal
// at its default disposition. Errors before or at exec come back here; the failed child has
// been reaped by then. On success the child is held by a pidfd from CLONE_PIDFD.
int Spawn(const SpawnRequest& req, SpawnResult* out);

// A stack for the child between clone and exec. The parent is suspended while the child uses
// it (CLONE_VFORK), so one stack serves every spawn of a thread. nullptr when mmap fails.
void* AllocateSpawnStack();
void FreeSpawnStack(void* stack);

// 0 when this kernel has what we need (pidfd_open and waitid(P_PIDFD): Linux >= 5.4),
// else a negative errno (-ENOSYS, -EINVAL) naming the missing piece through *what.
int ProbePidfdSupport(const char** what);

}  // namespace vfd

#endif  // VFD_SPAWN_H_
