// The entry points that look at processes from outside, by /proc and by cgroup: whether process
// groups still have live members and which (process_group.cc), the members of a cgroup killed by
// pidfd (cgroup.cc), and the facts of many processes at once (proc_facts.cc). Each takes many
// pids or pgids per call: a host with a thousand daemons asks about all of them in one walk.
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include <vector>

#include "arguments.h"
#include "cgroup.h"
#include "errors.h"
#include "proc_facts.h"
#include "process_group.h"

namespace vfd {

// liveGroups(pgids) → for each, whether a process of that group is alive (zombies do not
// count). One pass over /proc for all of them, and none when kill(-pgid, 0) finds every
// group gone: many daemons stopping at once cost one scan per check, not one each.
Napi::Value Addon::LiveGroups(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) {
    Napi::TypeError::New(env, "pgids must be an array of numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<pid_t> pgids(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) pgids[k] = arr.Get(k).As<Napi::Number>().Int32Value();
  std::vector<uint8_t> alive(pgids.size(), 0);
  int err = GroupsWithLiveMembers(pgids, &alive);
  if (err < 0) {
    ErrnoError(env, err, "opendir", "/proc").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array out = Napi::Array::New(env, alive.size());
  for (size_t k = 0; k < alive.size(); k++) out.Set(k, Napi::Boolean::New(env, alive[k] != 0));
  return out;
}

// killCgroupMembers(dirfd): SIGKILL every process of the cgroup whose directory dirfd is, by
// pidfd (see cgroup.h), where the kernel has no cgroup.kill.
Napi::Value Addon::KillCgroupMembers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(env, "killCgroupMembers(dirfd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int err = vfd::KillCgroupMembers(info[0].As<Napi::Number>().Int32Value());
  if (err < 0) ErrnoError(env, err, "cgroup.procs").ThrowAsJavaScriptException();
  return env.Undefined();
}

// processFacts(pids) → Float64Array, kProcFactFields numbers per pid, in this order: fds,
// fdLimit (-1: unlimited), rssBytes, threads, cpuUsec, pgid, startTime, state (a char code), err
// (0 or a negative errno; -ENOENT/-ESRCH: gone). One flat array, no object per process: a
// thousand daemons are sampled every few seconds.
static constexpr size_t kProcFactFields = 9;
Napi::Value Addon::ProcessFacts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<pid_t> pids;
  if (!PidList(env, info[0], "pids", &pids)) return env.Undefined();
  int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) {
    ErrnoError(env, -errno, "open", "/proc").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float64Array out = Napi::Float64Array::New(env, pids.size() * kProcFactFields);
  for (size_t k = 0; k < pids.size(); k++) {
    ProcFacts f;
    int err = ReadProcFacts(proc, pids[k], &f);
    double* row = out.Data() + k * kProcFactFields;
    row[0] = static_cast<double>(f.fds);
    row[1] = static_cast<double>(f.fd_limit);
    row[2] = static_cast<double>(f.rss_bytes);
    row[3] = static_cast<double>(f.threads);
    row[4] = static_cast<double>(f.cpu_usec);
    row[5] = static_cast<double>(f.pgid);
    row[6] = static_cast<double>(f.start_time);
    row[7] = static_cast<double>(static_cast<unsigned char>(f.state));
    row[8] = err;
  }
  close(proc);
  return out;
}

// groupMembers(pgids) → Int32Array: for each group in order, its count of live members, then
// their pids. One walk of /proc for all of them.
Napi::Value Addon::GroupMembers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<pid_t> pgids;
  if (!PidList(env, info[0], "pgids", &pgids)) return env.Undefined();
  std::vector<std::vector<pid_t>> members;
  int err = vfd::GroupMembers(pgids, &members);
  if (err < 0) {
    ErrnoError(env, err, "opendir", "/proc").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  size_t total = members.size();
  for (const auto& m : members) total += m.size();
  Napi::Int32Array out = Napi::Int32Array::New(env, total);
  size_t i = 0;
  for (const auto& m : members) {
    out[i++] = static_cast<int32_t>(m.size());
    for (pid_t pid : m) out[i++] = pid;
  }
  return out;
}

}  // namespace vfd
