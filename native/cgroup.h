// What the addon does to a cgroup v2 directory besides placing a child in it (spawn.h).
// Plain POSIX: no Node-API here.
#ifndef VFD_CGROUP_H_
#define VFD_CGROUP_H_

namespace vfd {

// SIGKILL every process listed in the cgroup's cgroup.procs (dirfd: an fd of the directory),
// for kernels without cgroup.kill (Linux < 5.14). Each pid is held by a pidfd and signalled
// only when cgroup.procs, read again after the pidfd was taken, still lists it: a pid that was
// reused meanwhile by a process outside the cgroup is never signalled. Rounds until a read finds
// the cgroup empty (a process may fork while we read), at most a bounded number of them.
// 0, or a negative errno when cgroup.procs cannot be read.
int KillCgroupMembers(int dirfd);

}  // namespace vfd

#endif  // VFD_CGROUP_H_
