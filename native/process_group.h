// Whether a process group still has members that are not dead.
#ifndef VFD_PROCESS_GROUP_H_
#define VFD_PROCESS_GROUP_H_

#include <sys/types.h>

namespace vfd {

// 1 when a process of group `pgid` is alive, 0 when none is, negative errno on failure.
// Zombies do not count: they hold no resources, and descendants that outlived their parent
// are zombies of init (or of a subreaper), ours neither to wait for nor to reap.
int GroupHasLiveMember(pid_t pgid);

}  // namespace vfd

#endif  // VFD_PROCESS_GROUP_H_
