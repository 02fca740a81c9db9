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

// The child between clone and exec. Every signal is blocked on entry (see Spawn).
// Returns only on failure, having stored the errno for the parent.
static int ChildMain(void* arg) {
  ChildArgs* a = static_cast<ChildArgs*>(arg);
  const SpawnRequest& req = *a->req;
  const int n = static_cast<int>(req.fds.size());
  uint64_t none = 0;

  // Before anything else: what the child does from here on is accounted to the cgroup.
  if (a->procs_fd >= 0) {
    a->joining = true;
    if (write(a->procs_fd, "0", 1) != 1) goto fail;
    a->joining = false;
  }

  // Our handlers must never run here, on borrowed memory, and the program must start with
  // every signal at its default: Node ignores SIGPIPE and SIGXFSZ, and an ignored signal
  // stays ignored across exec. The raw call reaches glibc's internal signals too, which
  // posix_spawn leaves ignored.
  KernelSigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof(uint64_t));
  }

  if (req.new_process_group && setpgid(0, 0) < 0) goto fail;

  // The kernel sends the death signal when the thread that cloned us exits (the JS thread of
  // the spawning environment, main or worker), and a SIGKILLed manager never runs a teardown
  // hook. If the manager died before prctl, no signal will ever come: the reparenting has
  // happened already, and getppid() tells. Nobody is left to read an error then.
  if (req.death_signal) {
    if (prctl(PR_SET_PDEATHSIG, req.death_signal) < 0) goto fail;
    if (getppid() != req.parent) _exit(127);
  }
  if (req.cwd && chdir(req.cwd) < 0) goto fail;

  // Pass 1: move every source above the targets and the other sources, so that placing
  // entry i cannot overwrite the source of a later entry that sits at number i.
  for (int i = 0; i < n; i++) {
    if (a->source[i] >= 0 && dup3(a->source[i], a->high + i, O_CLOEXEC) < 0) goto fail;
  }
  // Pass 2: place them. dup3 onto another number gives an fd without close-on-exec; we never
  // dup onto the same number, which would keep the flag.
  for (int i = 0; i < n; i++) {
    switch (req.fds[i].kind) {
      case FdSource::kClosed:
        close(i);
        break;
      case FdSource::kDevNull: {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0) goto fail;
        if (fd != i && (dup3(fd, i, 0) < 0 || close(fd) < 0)) goto fail;
        if (fd == i && fcntl(i, F_SETFD, 0) < 0) goto fail;
        break;
      }
      default:
        if (dup3(a->high + i, i, 0) < 0) goto fail;
        break;
    }
  }
  // Everything else goes, including fds opened without O_CLOEXEC by other code of ours.
  if (CloseFrom(n) < 0) goto fail;

  RawSigprocmask(SIG_SETMASK, &none, nullptr);
  execve(req.file, req.argv, req.envp);

fail:
  a->err = errno;
  _exit(127);
}

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
    // Our end is read on the event loop; the child's end stays blocking for the daemon.
    int fl = fcntl((*parent_ends)[i], F_GETFL);
    if (fl < 0 || fcntl((*parent_ends)[i], F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
  }
  return 0;
}

// The child parks its sources at fds [high, high + n) before placing them; past
// RLIMIT_NOFILE dup3 would fail with a puzzling EBADF, so say EMFILE before we clone.
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

int Spawn(const SpawnRequest& req, SpawnResult* out) {
  const int n = static_cast<int>(req.fds.size());
  std::vector<int> child_ends(n, -1);
  std::vector<int> parent_ends(n, -1);
  std::vector<int> source(n, -1);
  ChildArgs args = {&req, nullptr, std::max(n, 3), -1, 0, false};
  uint64_t all = ~UINT64_C(0);
  uint64_t old_mask;
  void* stack = req.stack;
  int pidfd = -1;
  pid_t pid = -1;
  bool into_cgroup;
  int err = MakePipes(req.fds, &child_ends, &parent_ends);
  if (err < 0) goto out;

  for (int i = 0; i < n; i++) {
    if (req.fds[i].kind == FdSource::kInherit) source[i] = req.fds[i].fd;
    if (child_ends[i] >= 0) source[i] = child_ends[i];
    if (source[i] >= args.high) args.high = source[i] + 1;
  }
  args.source = source.data();
  if ((err = CheckFdRoom(args.high + n)) < 0) goto out;

  if (!stack && !(stack = AllocateSpawnStack())) {
    err = -errno;
    goto out;
  }

  // Block everything, glibc's internal signals included, so that no handler of ours runs in
  // the child before it has reset them all. CLONE_VM|CLONE_VFORK: the child borrows our
  // memory instead of copying page tables, so the cost does not grow with our RSS, and this
  // thread resumes once the child has exec'd or died. CLONE_PIDFD hands us a pidfd in the
  // same step, before anyone could reap the pid.
  RawSigprocmask(SIG_SETMASK, &all, &old_mask);
  into_cgroup = req.cgroup_fd >= 0 && req.cgroup_method == SpawnRequest::kClone;
  if (into_cgroup) {
    // The kernel creates the child in the cgroup: no migration, nothing runs outside it.
    CloneArgs cl = {};
    cl.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP;
    cl.pidfd = reinterpret_cast<uintptr_t>(&pidfd);
    cl.exit_signal = SIGCHLD;
    cl.stack = reinterpret_cast<uintptr_t>(stack);
    cl.stack_size = kChildStackSize;
    cl.cgroup = static_cast<uint64_t>(req.cgroup_fd);
    long r = Clone3(&cl, ChildMain, &args);
    pid = static_cast<pid_t>(r);
    err = r < 0 ? static_cast<int>(r) : 0;
    // No clone3 here (seccomp profiles answer ENOSYS on purpose), or no CLONE_INTO_CGROUP
    // (E2BIG before 5.7): join through cgroup.procs instead.
    if (err == -ENOSYS || err == -E2BIG) into_cgroup = false;
    if (err < 0 && into_cgroup) out->cgroup_step = "clone3";
  }
  if (!into_cgroup) {
    err = 0;
    if (req.cgroup_fd >= 0) {
      args.procs_fd = openat(req.cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
      if (args.procs_fd < 0) {
        err = -errno;
        out->cgroup_step = "cgroup.procs";
      }
    }
    if (err == 0) {
      pid = clone(ChildMain, static_cast<char*>(stack) + kChildStackSize,
                  CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
      err = pid < 0 ? -errno : 0;
    }
  }
  RawSigprocmask(SIG_SETMASK, &old_mask, nullptr);
  if (args.procs_fd >= 0) close(args.procs_fd);
  if (err < 0) goto out;

  if (args.err) {
    // The child told us why before it exited: reap it so that no zombie is left behind.
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
