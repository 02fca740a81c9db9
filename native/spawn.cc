#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "clone3.h"
#include "syscalls.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace vfd {

// The child runs on this stack, in our address space, until it execs. It only makes system
// calls, so a small stack is plenty.
static constexpr size_t kChildStackSize = 64 * 1024;

// The kernel's struct sigaction (x86_64 and arm64 share this layout). All zeroes is SIG_DFL.
struct KernelSigaction {
  unsigned long handler;
  unsigned long flags;
  unsigned long restorer;
  uint64_t mask;
};

// Everything the child needs, computed before clone: after clone the child must not
// allocate, take locks or call into anything that might (it shares our memory and the
// calling thread's TLS, and the other threads of this process keep running).
struct ChildArgs {
  const SpawnRequest* req;
  const int* source;  // per entry: the fd to place there (an fd of ours or a pipe end), or -1
  int high;           // first fd above every target and every source
  int procs_fd;       // the cgroup's cgroup.procs to join through, or -1
  int err;            // set by the child when it fails before exec
  bool joining;       // set by the child while it joins the cgroup: a failure there is the cgroup's
  bool ran;           // set by the child's first instruction: unset after the clone, it never ran
};

static int RawSigprocmask(int how, const uint64_t* set, uint64_t* old) {
  return static_cast<int>(syscall(SYS_rt_sigprocmask, how, set, old, sizeof(uint64_t)));
}

// Where getdents64 puts the fields we read in each struct linux_dirent64 record: after
// u64 d_ino and s64 d_off comes u16 d_reclen, then u8 d_type, then d_name. Written out
// because no header declares the kernel's struct (it is not in the uapi headers, and glibc
// 2.28 has no getdents64 of its own).
static constexpr size_t kDirentReclen = 16;
static constexpr size_t kDirentName = 19;

// Close every fd >= lowfd. close_range() needs Linux 5.9; before that, walk /proc/self/fd
// with getdents64 into a stack buffer (opendir would malloc). A failed walk is an error: the
// program must not start holding fds it was never meant to have.
static int CloseFrom(int lowfd) {
  if (syscall(SYS_close_range, lowfd, ~0U, 0) == 0) return 0;
  int dir = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return -errno;
  alignas(8) char buf[4096];
  int err = 0;
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
    if (n < 0) err = -errno;
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      unsigned short reclen;
      memcpy(&reclen, buf + off + kDirentReclen, sizeof(reclen));
      const char* name = buf + off + kDirentName;
      int fd = 0;
      bool numeric = *name != '\0';
      for (const char* p = name; *p; p++) {
        if (*p < '0' || *p > '9') numeric = false;
        fd = fd * 10 + (*p - '0');
      }
      // Linux releases an fd even when close() fails, so there is nothing to retry or report.
      if (numeric && fd >= lowfd && fd != dir) close(fd);
      off += reclen;
    }
  }
  close(dir);
  return err;
}

// ---- the child, between clone and exec ----------------------------------------------------
//
// Every helper below runs in the child: system calls only, 0 or a negative errno out, and the
// errno read at once (the child shares our thread's errno until it execs).

// Before anything else: what the child does from here on is accounted to the cgroup.
// `joining` tells the parent that a failure here is the cgroup's, not the program's.
static int JoinCgroup(ChildArgs* a) {
  if (a->procs_fd < 0) return 0;
  a->joining = true;
  ssize_t r = write(a->procs_fd, "0", 1);
  if (r != 1) return r < 0 ? -errno : -EIO;
  a->joining = false;
  return 0;
}

// Our handlers must never run here, on borrowed memory, and the program must start with
// every signal at its default: Node ignores SIGPIPE and SIGXFSZ, and an ignored signal
// stays ignored across exec. The raw call reaches glibc's internal signals too, which
// posix_spawn leaves ignored. Its result is not checked: for every signal but the two skipped
// it can fail only on a bad pointer or size, and both are constants here.
static void ResetSignals() {
  KernelSigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof(uint64_t));
  }
}

// The kernel sends the death signal when the thread that cloned us exits (the JS thread of
// the spawning environment, main or worker), and a SIGKILLed manager never runs a teardown
// hook. If the manager died before prctl, no signal will ever come: the reparenting has
// happened already, and getppid() tells. Nobody is left to read an error then, so the child
// just exits.
static int SetDeathSignal(const SpawnRequest& req) {
  if (!req.death_signal) return 0;
  if (prctl(PR_SET_PDEATHSIG, req.death_signal) < 0) return -errno;
  if (getppid() != req.parent) _exit(127);
  return 0;
}

// Give the child exactly the fds of req.fds, at their numbers, without close-on-exec.
static int PlaceFds(const ChildArgs* a) {
  const SpawnRequest& req = *a->req;
  const int n = static_cast<int>(req.fds.size());
  // Pass 1: move every source above the targets and the other sources, so that placing
  // entry i cannot overwrite the source of a later entry that sits at number i.
  for (int i = 0; i < n; i++) {
    if (a->source[i] >= 0 && dup3(a->source[i], a->high + i, O_CLOEXEC) < 0) return -errno;
  }
  // Pass 2: place them. dup3 onto another number gives an fd without close-on-exec; we never
  // dup onto the same number, which would keep the flag.
  for (int i = 0; i < n; i++) {
    switch (req.fds[i].kind) {
      case FdSource::kClosed:
        // EBADF when it was not open: closed is what we want either way.
        close(i);
        break;
      case FdSource::kDevNull: {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0) return -errno;
        if (fd != i && (dup3(fd, i, 0) < 0 || close(fd) < 0)) return -errno;
        if (fd == i && fcntl(i, F_SETFD, 0) < 0) return -errno;
        break;
      }
      default:
        if (dup3(a->high + i, i, 0) < 0) return -errno;
        break;
    }
  }
  return 0;
}

// The child's body. Every signal is blocked on entry (see StartChild). The glibc wrappers used
// here (open, close, dup3, chdir, ...) are thin system calls; open and close would act on a
// thread cancellation, which nobody requests of a Node thread and whose signal is blocked.
// Returns only on failure, having stored the errno for the parent: one exit for every step.
static int ChildMain(void* arg) {
  ChildArgs* a = static_cast<ChildArgs*>(arg);
  a->ran = true;
  const SpawnRequest& req = *a->req;
  uint64_t none = 0;
  int err;

  if ((err = JoinCgroup(a)) < 0) goto fail;
  ResetSignals();
  if (req.new_process_group && setpgid(0, 0) < 0) {
    err = -errno;
    goto fail;
  }
  if ((err = SetDeathSignal(req)) < 0) goto fail;
  if (req.cwd && chdir(req.cwd) < 0) {
    err = -errno;
    goto fail;
  }
  if ((err = PlaceFds(a)) < 0) goto fail;
  // Everything else goes, including fds opened without O_CLOEXEC by other code of ours.
  if ((err = CloseFrom(static_cast<int>(req.fds.size()))) < 0) goto fail;

  // Cannot fail: SIG_SETMASK with a valid set.
  RawSigprocmask(SIG_SETMASK, &none, nullptr);
  execve(req.file, req.argv, req.envp);
  err = -errno;

fail:
  a->err = -err;
  _exit(127);
}

// ---- the parent ------------------------------------------------------------------------

// Create the pipes that `fds` asks for. The child's ends stay close-on-exec here: only the
// child's own dup3 hands them on.
static int MakePipes(const std::vector<FdSource>& fds, std::vector<int>* child_ends, std::vector<int>* parent_ends) {
  for (size_t i = 0; i < fds.size(); i++) {
    if (fds[i].kind != FdSource::kPipeFromChild && fds[i].kind != FdSource::kPipeToChild) continue;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return -errno;
    bool child_writes = fds[i].kind == FdSource::kPipeFromChild;
    (*child_ends)[i] = child_writes ? p[1] : p[0];
    (*parent_ends)[i] = child_writes ? p[0] : p[1];
    // Our end is read on the event loop; the child's end stays blocking for the daemon. A new
    // pipe end has no status flag set, so there is nothing to read back first (F_GETFL).
    if (fcntl((*parent_ends)[i], F_SETFL, O_NONBLOCK) < 0) return -errno;
  }
  return 0;
}

// The child parks its sources at fds [high, high + n) before placing them; past
// RLIMIT_NOFILE dup3 would fail with a puzzling EBADF, so say EMFILE before we clone.
// Without a limit to compare (getrlimit failed) we let dup3 speak for itself.
static int CheckFdRoom(int top) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) < 0) return 0;
  return lim.rlim_cur != RLIM_INFINITY && static_cast<rlim_t>(top) > lim.rlim_cur ? -EMFILE : 0;
}

static void CloseAll(std::vector<int>* fds) {
  for (int& fd : *fds) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

// Fill args->source (the fd the child places at each entry: one of ours, or the child's end of
// its pipe) and raise args->high above every source, so that the parked copies collide with
// none of them.
static void PlanSources(const SpawnRequest& req, const std::vector<int>& child_ends, int* source,
                        ChildArgs* args) {
  for (size_t i = 0; i < req.fds.size(); i++) {
    if (req.fds[i].kind == FdSource::kInherit) source[i] = req.fds[i].fd;
    if (child_ends[i] >= 0) source[i] = child_ends[i];
    if (source[i] >= args->high) args->high = source[i] + 1;
  }
  args->source = source;
}

// clone3 with CLONE_INTO_CGROUP: the kernel creates the child in the cgroup, so nothing of it
// runs outside and nothing migrates. The child's pid, or a negative errno (see Clone3).
static long CloneIntoCgroup(const SpawnRequest& req, void* stack, ChildArgs* args, int* pidfd) {
  CloneArgs cl = {};
  cl.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP;
  cl.pidfd = reinterpret_cast<uintptr_t>(pidfd);
  cl.exit_signal = SIGCHLD;
  cl.stack = reinterpret_cast<uintptr_t>(stack);
  cl.stack_size = kChildStackSize;
  cl.cgroup = static_cast<uint64_t>(req.cgroup_fd);
  return Clone3(&cl, ChildMain, args);
}

// clone, with the child joining its cgroup (if any) through cgroup.procs before it execs.
// args->procs_fd is left open for the caller to close. The child's pid, or a negative errno
// with *cgroup_step set when cgroup.procs could not be opened.
static pid_t CloneThenJoin(const SpawnRequest& req, void* stack, ChildArgs* args, int* pidfd,
                           const char** cgroup_step) {
  if (req.cgroup_fd >= 0) {
    args->procs_fd = openat(req.cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (args->procs_fd < 0) {
      int err = -errno;
      *cgroup_step = "cgroup.procs";
      return err;
    }
  }
  pid_t pid = clone(ChildMain, static_cast<char*>(stack) + kChildStackSize,
                    CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, args, pidfd);
  return pid < 0 ? -errno : pid;
}

// True when the clone3 child never ran (it is reaped then): only a fatal signal ends a task
// before its first instruction. The kernels with kill_seq ("cgroup: fix race between fork and
// cgroup.kill": 6.14, and 6.1/6.6/6.12 stable) send one to every CLONE_INTO_CGROUP child whose
// cgroup's kill_seq differs from its SPAWNER's cgroup's, because cgroup_css_set_fork() reads
// the count before it has looked up the target: after a write to cgroup.kill, every child.
// The vfork wait is over (the dying child released our memory), so waitid only waits for the
// zombie, which follows at once; ECHILD (another waiter reaped it) leaves it just as gone.
static bool KilledAtBirth(const ChildArgs* args, int pidfd) {
  if (args->ran) return false;
  siginfo_t info;
  WaitPidfd(pidfd, &info, WEXITED);
  close(pidfd);
  return true;
}

// Run the child on `stack` until it has exec'd or failed. The child's pid (its pidfd in
// *pidfd), or a negative errno when there is no child, *cgroup_step saying when the cgroup was
// the reason. A child that failed is still to be reaped: see args->err. *via says how the child
// got into its cgroup ("clone3" or "cgroup.procs"; untouched without one).
//
// Block everything, glibc's internal signals included, so that no handler of ours runs in the
// child before it has reset them all. CLONE_VM|CLONE_VFORK: the child borrows our memory
// instead of copying page tables, so the cost does not grow with our RSS, and this thread
// resumes once the child has exec'd or died. CLONE_PIDFD hands us a pidfd in the same step,
// before anyone could reap the pid.
static pid_t StartChild(const SpawnRequest& req, void* stack, ChildArgs* args, int* pidfd,
                        const char** cgroup_step, const char** via) {
  uint64_t all = ~UINT64_C(0);
  uint64_t old_mask;
  bool via_clone3 = req.cgroup_fd >= 0 && req.cgroup_method == SpawnRequest::kClone;
  long r = 0;
  RawSigprocmask(SIG_SETMASK, &all, &old_mask);
  if (via_clone3) {
    r = CloneIntoCgroup(req, stack, args, pidfd);
    // No clone3 here (seccomp profiles answer ENOSYS on purpose), or no CLONE_INTO_CGROUP
    // (E2BIG before 5.7): join through cgroup.procs instead. Killed at birth (see
    // KilledAtBirth): once more through cgroup.procs, which that kernel bug does not touch.
    via_clone3 = r != -ENOSYS && r != -E2BIG && !(r > 0 && KilledAtBirth(args, *pidfd));
    if (r < 0 && via_clone3) *cgroup_step = "clone3";
    if (!via_clone3) *pidfd = -1;
  }
  if (!via_clone3) r = CloneThenJoin(req, stack, args, pidfd, cgroup_step);
  // Restores what the first call saved; the same valid arguments cannot fail.
  RawSigprocmask(SIG_SETMASK, &old_mask, nullptr);
  if (args->procs_fd >= 0) close(args->procs_fd);
  if (req.cgroup_fd >= 0) *via = via_clone3 ? "clone3" : "cgroup.procs";
  return static_cast<pid_t>(r);
}

int Spawn(const SpawnRequest& req, SpawnResult* out) {
  const int n = static_cast<int>(req.fds.size());
  std::vector<int> child_ends(n, -1);
  std::vector<int> parent_ends(n, -1);
  std::vector<int> source(n, -1);
  // high starts above the targets [0, n), and at 3 at least so that the parked copies never
  // take a standard stream's number. Correctness needs only max(n, every source + 1) (see
  // PlanSources); the floor costs nothing and keeps 0-2 out of pass 1 when n < 3.
  ChildArgs args = {&req, nullptr, std::max(n, 3), -1, 0, false, false};
  void* stack = req.stack;
  int pidfd = -1;
  pid_t pid = -1;
  int err = MakePipes(req.fds, &child_ends, &parent_ends);
  if (err < 0) goto out;

  PlanSources(req, child_ends, source.data(), &args);
  if ((err = CheckFdRoom(args.high + n)) < 0) goto out;
  if (!stack && !(stack = AllocateSpawnStack())) {
    err = -errno;
    goto out;
  }

  pid = StartChild(req, stack, &args, &pidfd, &out->cgroup_step, &out->cgroup_via);
  if (pid < 0) {
    err = pid;
    goto out;
  }
  if (args.err) {
    // The child told us why before it exited: reap it so that no zombie is left behind. It
    // has exited (CLONE_VFORK returned), so the wait cannot block, and it can fail only if
    // someone else reaped it, which leaves nothing to do.
    siginfo_t info;
    WaitPidfd(pidfd, &info, WEXITED);
    close(pidfd);
    err = -args.err;
    if (args.joining) out->cgroup_step = "cgroup.procs";
    goto out;
  }

  out->pid = pid;
  out->pidfd = pidfd;
  out->parent_ends = parent_ends;
  parent_ends.assign(n, -1);

out:
  if (stack && stack != req.stack) FreeSpawnStack(stack);
  CloseAll(&child_ends);
  CloseAll(&parent_ends);
  return err;
}

void* AllocateSpawnStack() {
  void* stack = mmap(nullptr, kChildStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  return stack == MAP_FAILED ? nullptr : stack;
}

void FreeSpawnStack(void* stack) {
  munmap(stack, kChildStackSize);
}

int ProbePidfdSupport(const char** what) {
  int fd = PidfdOpen(getpid());
  if (fd < 0) {
    *what = "pidfd_open (Linux 5.3)";
    return fd;
  }
  siginfo_t info;
  int err = WaitPidfd(fd, &info, WEXITED | WNOHANG);
  close(fd);
  // We are not our own child: ECHILD means the kernel understood P_PIDFD.
  if (err == -ECHILD) return 0;
  *what = "waitid(P_PIDFD) (Linux 5.4)";
  return err ? err : -EINVAL;
}

}  // namespace vfd
