// Whether a process group still has members that are not dead.
#ifndef VFD_PROCESS_GROUP_H_
#define VFD_PROCESS_GROUP_H_

#include <stdint.h>
#include <sys/types.h>

#include <vector>

namespace vfd {

// 1 when a process of group `pgid` is alive, 0 when none is, negative errno on failure.
// Zombies do not count: they hold no resources, and descendants that outlived their parent
// are zombies of init (or of a subreaper), ours neither to wait for nor to reap.
int GroupHasLiveMember(pid_t pgid);

// GroupHasLiveMember for many groups with at most one walk of /proc: (*alive)[i] = 1 when a
// process of pgids[i] is alive. 0 or a negative errno.
int GroupsWithLiveMembers(const std::vector<pid_t>& pgids, std::vector<uint8_t>* alive);

// The members of each group of `pgids`, zombies included (the caller reads their state anyway),
// from one walk of /proc: (*members)[i] for pgids[i]. 0 or a negative errno.
int GroupMembers(const std::vector<pid_t>& pgids, std::vector<std::vector<pid_t>>* members);

}  // namespace vfd

#endif  // VFD_PROCESS_GROUP_H_
