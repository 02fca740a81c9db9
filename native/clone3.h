// clone3() running a function on a stack of our own, which glibc does not export: its
// clone3 wrapper is internal, and clone() has no CLONE_INTO_CGROUP.
#ifndef VFD_CLONE3_H_
#define VFD_CLONE3_H_

#include <stddef.h>
#include <stdint.h>

namespace vfd {

// The kernel's struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2, Linux 5.7).
struct CloneArgs {
  uint64_t flags;
  uint64_t pidfd;  // CLONE_PIDFD: where the kernel stores the pidfd
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;  // lowest address; the kernel starts the child at stack + stack_size
  uint64_t stack_size;
  uint64_t tls;
  uint64_t set_tid;
  uint64_t set_tid_size;
  uint64_t cgroup;  // CLONE_INTO_CGROUP: an fd of the cgroup v2 directory
};

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// clone3(args, sizeof *args); the child calls fn(arg) on args->stack and exits with its
// return value. Returns the child's pid, or a negative errno: -ENOSYS where this
// architecture has no entry here (x86_64 and arm64 do) or the kernel has no clone3 (< 5.3),
// -E2BIG where the kernel knows no `cgroup` field (< 5.7).
long Clone3(CloneArgs* args, int (*fn)(void*), void* arg);

}  // namespace vfd

#endif  // VFD_CLONE3_H_
