// What a daemon that outlives its manager needs: a pidfd on a process that is not our child
// (Adoptee), the adoption lock, the log pipe parked in the daemon, and its exit status.
#ifndef VFD_LIFETIME_H_
#define VFD_LIFETIME_H_

#include <napi.h>
#include <sys/types.h>
#include <uv.h>

namespace vfd {

class Addon;

// A process we did not spawn, named by a pidfd from pidfd_open. Signals go through the pidfd
// only (the group's too, PIDFD_SIGNAL_PROCESS_GROUP), so a recycled pid is never reached. Its
// status cannot come from waitid (it is not our child): see ReadPidfdExit.
//
// Its JS surface mirrors Child's (pid, pidfd, signal, groupAlive, ref, unref) on purpose, with
// no shared base class: under the same names the two differ where it matters. A Child is ours
// to reap and, before Linux 6.9, signals its group by number while it is unreaped; an Adoptee
// is never ours to reap and signals through its pidfd only. What they share is one-line
// accessors and an argument check, clearer written out than hidden behind a template.
class Adoptee : public Napi::ObjectWrap<Adoptee> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Adoptee(const Napi::CallbackInfo& info);
  ~Adoptee() override;

  // Take ownership of `pidfd` for process `pid`.
  void Init(Addon* addon, pid_t pid, int pidfd);

  // Environment teardown: stop watching and close the pidfd. The process lives on.
  void Detach();
  void ForgetAddon() { addon_ = nullptr; }

 private:
  Napi::Value Pid(const Napi::CallbackInfo& info);
  Napi::Value Pidfd(const Napi::CallbackInfo& info);
  Napi::Value Signal(const Napi::CallbackInfo& info);
  Napi::Value GroupAlive(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  Napi::Value ExitInfo(const Napi::CallbackInfo& info);
  Napi::Value Getfd(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);

  static void OnPidfdReadable(uv_poll_t* handle, int status, int events);
  void StopWatching();
  void Close();

  Addon* addon_ = nullptr;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference on_exit_;
  Napi::ObjectReference self_;  // keeps the JS object alive while it is watched
};

// Adds the lifetime functions to the addon's exports: openProcess and makePipe.
void ExportLifetime(Napi::Env env, Napi::Object exports);

}  // namespace vfd

#endif  // VFD_LIFETIME_H_
