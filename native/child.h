// A spawned child held by its pidfd, watched on the environment's libuv loop.
#ifndef VFD_CHILD_H_
#define VFD_CHILD_H_

#include <napi.h>
#include <sys/types.h>
#include <uv.h>

namespace vfd {

class Addon;
struct SpawnResult;

class Child : public Napi::ObjectWrap<Child> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Child(const Napi::CallbackInfo& info);
  ~Child() override;

  // Take over a freshly spawned process and start watching its pidfd. On failure the
  // process has been killed and reaped, and a negative errno is returned. `detach`: teardown
  // lets the child live on (lifetime 'survive') instead of killing it.
  int Adopt(Addon* addon, const SpawnResult& spawned, bool group, bool detach, Napi::Function on_exit);

  // Environment teardown, where no JavaScript may run: SIGKILL the child (its group when it
  // has one), reap it, stop watching - or, for a detached child, only stop watching and close
  // the pidfd (unless `kill_detached`: nobody will ever own it). The exit callback is never called.
  void Abandon(bool kill_detached = false);

  // The addon is being destroyed: drop the pointer to it.
  void ForgetAddon() { addon_ = nullptr; }

 private:
  Napi::Value Pid(const Napi::CallbackInfo& info);
  Napi::Value Pidfd(const Napi::CallbackInfo& info);
  Napi::Value Exited(const Napi::CallbackInfo& info);
  Napi::Value Signal(const Napi::CallbackInfo& info);
  Napi::Value GroupAlive(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);

  static void OnPidfdReadable(uv_poll_t* handle, int status, int events);
  void DeliverExit(const siginfo_t& info);
  void Reap();
  void KillAndReap();
  int SignalGroup(int signo);
  void StopWatching();

  Addon* addon_ = nullptr;  // null once the child is no longer registered
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool group_ = false;
  bool detach_ = false;
  bool exited_ = false;
  bool reaped_elsewhere_ = false;  // waitid said ECHILD: its pid may be someone else's now
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference on_exit_;
  Napi::ObjectReference self_;  // keeps the JS object alive while the child is watched
};

}  // namespace vfd

#endif  // VFD_CHILD_H_
