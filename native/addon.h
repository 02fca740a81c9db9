// Per-environment state of the addon: one instance per Node environment (main thread,
// each worker_thread, each Electron context), never shared, never static.
//
// Its methods are the entry points JS calls, each defined in the file of its concern (listed
// below); lifetime.cc adds openProcess and makePipe (ExportLifetime). Every entry point reads its
// arguments without coercion (arguments.h), shapes its errors with errors.h, and throws, then
// returns: no C++ exceptions (NAPI_DISABLE_CPP_EXCEPTIONS). JavaScript may stop running at any
// point of a call (worker.terminate() from another thread): every Node-API result after a side
// effect is checked, and a failure undoes the side effect. NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
// (binding.gyp) makes an exception thrown into such an environment a no-op instead of a fatal error.
#ifndef VFD_ADDON_H_
#define VFD_ADDON_H_

#include <napi.h>
#include <uv.h>

#include <string>
#include <unordered_set>
#include <vector>

namespace vfd {

class Child;
class PipeReader;
class Adoptee;

// For the constructors of the classes Addon::NewInternal makes: false, with a TypeError
// `refusal` thrown, when the call comes from JS instead.
bool ConstructedInternally(const Napi::CallbackInfo& info, const char* refusal);

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);
  ~Addon();

  uv_loop_t* loop() const { return loop_; }

  // Child, PipeReader and Adoptee objects are made here and nowhere else. Their classes are
  // reachable from JS (obj.constructor), and a `new` there would make an object with no
  // process or pipe behind it, so the constructors refuse unless this flag is up (see
  // ConstructedInternally). A flag, not a secret argument: JS could pass any argument we pass,
  // but it cannot run while we are in New(), and each environment has its own flag.
  Napi::Object NewInternal(const Napi::FunctionReference& constructor);
  bool constructing() const { return constructing_; }

  // Children register while they are alive; the teardown hook deals with whoever is left.
  void Register(Child* child) { live_.insert(child); }
  void Unregister(Child* child) { live_.erase(child); }
  void RegisterReader(PipeReader* reader) { readers_.insert(reader); }
  void UnregisterReader(PipeReader* reader) { readers_.erase(reader); }
  // Processes opened by pid (not our children) register too; teardown only lets go of them.
  void Register(Adoptee* adoptee) { adoptees_.insert(adoptee); }
  void Unregister(Adoptee* adoptee) { adoptees_.erase(adoptee); }
  Napi::Object NewAdoptee() { return NewInternal(adoptee_constructor_); }

  // A uv_poll_t on this environment's loop, watching `fd` for `events`, with data = `data`.
  // 0 with *out set, or a negative errno with *out null (nothing left to close).
  int StartPoll(int fd, int events, uv_poll_cb cb, void* data, uv_poll_t** out);
  // Close a handle from StartPoll. Every close is counted, so that teardown can wait for its
  // callback before Node frees the loop.
  void ClosePoll(uv_poll_t* handle);

 private:
  // addon.cc: what every part shares.
  Napi::Value CloseFd(const Napi::CallbackInfo& info);
  Napi::Value AbandonAll(const Napi::CallbackInfo& info);
  static void Teardown(napi_async_cleanup_hook_handle handle, void* arg);
  void HandleClosed();
  void ReleaseAll();

  // addon_sockets.cc: listening unix sockets and their files; who listens, who connected.
  Napi::Value ListenUnix(const Napi::CallbackInfo& info);
  Napi::Value ChownToParent(const Napi::CallbackInfo& info);
  Napi::Value UnlinkSocket(const Napi::CallbackInfo& info);
  Napi::Value RemoveStaleSocket(const Napi::CallbackInfo& info);
  Napi::Value KeepSocketFile(const Napi::CallbackInfo& info);
  Napi::Value SocketListener(const Napi::CallbackInfo& info);
  Napi::Value PeerCredentials(const Napi::CallbackInfo& info);

  // addon_files.cc: trusted files, the private directory, the lock file and its byte locks.
  Napi::Value ReadTrustedFile(const Napi::CallbackInfo& info);
  Napi::Value WriteTrustedFile(const Napi::CallbackInfo& info);
  Napi::Value RemoveTrustedFile(const Napi::CallbackInfo& info);
  Napi::Value MakePrivateDir(const Napi::CallbackInfo& info);
  Napi::Value OpenLockFile(const Napi::CallbackInfo& info);
  Napi::Value LockByte(const Napi::CallbackInfo& info);
  Napi::Value UnlockByte(const Napi::CallbackInfo& info);
  Napi::Value ByteLockedElsewhere(const Napi::CallbackInfo& info);
  Napi::Value FileMode(const Napi::CallbackInfo& info);

  // addon_spawn.cc: a child, from its arguments to the hand-over of its pipes.
  Napi::Value Spawn(const Napi::CallbackInfo& info);
  bool SpawnPossible(Napi::Env env);
  bool HandOverPipes(Napi::Env env, Napi::Object obj, Child* child, std::vector<int>* ends,
                     const char* cgroup_via);
  void KillAfterFailedAdoption(Child* child, std::vector<int>* pipes);

  // pipe_reader.cc, beside PipeReader.
  Napi::Value ReadPipe(const Napi::CallbackInfo& info);

  // addon_processes.cc: process groups, cgroup members and process facts, many per call.
  Napi::Value LiveGroups(const Napi::CallbackInfo& info);
  Napi::Value GroupMembers(const Napi::CallbackInfo& info);
  Napi::Value KillCgroupMembers(const Napi::CallbackInfo& info);
  Napi::Value ProcessFacts(const Napi::CallbackInfo& info);

  // A listening socket we created, until JS has closed its fd (closeFd) and handed its file
  // back (unlinkSocket): teardown releases whatever is left, so that a terminated worker
  // leaves no fd and no socket file behind, and the path can be bound again.
  struct OwnedSocket {
    int fd;  // -1 once closed
    std::string path;
    dev_t dev;
    ino_t ino;
    bool file_released;
  };
  std::vector<OwnedSocket> sockets_;
  void OwnSocket(int fd, const std::string& path, dev_t dev, ino_t ino);
  // The file is no longer teardown's to remove: unlinkSocket has removed it (or tried: an error
  // then is JS's to act on), or keepSocketFile gave it to a daemon that outlives this environment.
  void ReleaseSocketFile(dev_t dev, ino_t ino);
  void ForgetSockets();

  // The parent ends of the pipes we handed to JS. JS wraps them in streams at once, but it can
  // be stopped before it does: teardown closes every one that is still the same pipe (see
  // ClosePipesLeftOpen). Entries whose fd has been closed (or reused) are pruned lazily.
  struct OwnedPipe {
    int fd;
    dev_t dev;
    ino_t ino;
  };
  std::vector<OwnedPipe> pipes_;
  size_t pipes_after_prune_ = 0;
  void OwnPipes(const std::vector<int>& fds);
  void ClosePipesLeftOpen();

  // The lock files this environment opened (openLockFile), until JS closes them (closeFd):
  // teardown closes the rest, so that the locks held through them go with the environment - a
  // terminated worker keeps no lock while its process lives on. Same entry shape as a pipe's.
  std::vector<OwnedPipe> lock_files_;
  void OwnLockFile(int fd, dev_t dev, ino_t ino) { lock_files_.push_back({fd, dev, ino}); }
  void CloseLockFiles();

  uv_loop_t* loop_ = nullptr;
  bool constructing_ = false;
  Napi::FunctionReference child_constructor_;
  std::unordered_set<Child*> live_;
  Napi::FunctionReference reader_constructor_;
  std::unordered_set<PipeReader*> readers_;
  Napi::FunctionReference adoptee_constructor_;
  std::unordered_set<Adoptee*> adoptees_;
  int pending_closes_ = 0;
  napi_async_cleanup_hook_handle cleanup_handle_ = nullptr;
  bool tearing_down_ = false;
  void* spawn_stack_ = nullptr;  // reused: spawns of one environment never overlap
  int pidfd_error_ = 0;
  const char* pidfd_missing_ = nullptr;
};

}  // namespace vfd

#endif  // VFD_ADDON_H_
