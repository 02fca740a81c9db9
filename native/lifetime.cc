#include "lifetime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addon.h"
#include "errors.h"
#include "process_group.h"
#include "syscalls.h"

namespace vfd {

// What PIDFD_GET_INFO says about the end of the process.
enum class ExitKnown { kYes, kNotYet, kNever };

// The kernel publishes the exit status of any process to every pidfd holder once it has been
// reaped (Linux >= 6.15, PIDFD_INFO_EXIT), whoever its parent was. Before the reap it is not
// there yet (kNotYet); a kernel without it fails, at the latest once the process is reaped
// (kNever: the status is lost to us, and we must not make one up).
static ExitKnown ReadPidfdExit(int pidfd, int* status) {
  int r = PidfdExitStatus(pidfd, status);
  if (r == 0) return ExitKnown::kYes;
  return r == -EAGAIN ? ExitKnown::kNotYet : ExitKnown::kNever;
}

// ---- Adoptee --------------------------------------------------------------------------------

Napi::Function Adoptee::Define(Napi::Env env) {
  return DefineClass(env, "Adoptee",
                     {
                         InstanceAccessor<&Adoptee::Pid>("pid"),
                         InstanceAccessor<&Adoptee::Pidfd>("pidfd"),
                         InstanceMethod<&Adoptee::Signal>("signal"),
                         InstanceMethod<&Adoptee::GroupAlive>("groupAlive"),
                         InstanceMethod<&Adoptee::Watch>("watch"),
                         InstanceMethod<&Adoptee::ExitInfo>("exitInfo"),
                         InstanceMethod<&Adoptee::Getfd>("getfd"),
                         InstanceMethod<&Adoptee::Ref>("ref"),
                         InstanceMethod<&Adoptee::Unref>("unref"),
                         InstanceMethod<&Adoptee::Release>("release"),
                     });
}

Adoptee::Adoptee(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Adoptee>(info) {
  ConstructedInternally(info, "Adoptee objects come from openProcess()");
}

Adoptee::~Adoptee() {
  if (addon_) addon_->Unregister(this);
  if (pidfd_ >= 0) close(pidfd_);
}

void Adoptee::Init(Addon* addon, pid_t pid, int pidfd) {
  addon_ = addon;
  pid_ = pid;
  pidfd_ = pidfd;
  addon->Register(this);
}

void Adoptee::OnPidfdReadable(uv_poll_t* handle, int /*status*/, int /*events*/) {
  Adoptee* self = static_cast<Adoptee*>(handle->data);
  self->StopWatching();
  Napi::Env env = self->Env();
  Napi::HandleScope scope(env);
  Napi::AsyncContext context(env, "virtiofs-daemon:adoptee-exit");
  Napi::CallbackScope callback_scope(env, context);
  self->on_exit_.Call(self->Value(), {});
  self->on_exit_.Reset();
  self->self_.Reset();
  RaiseUncaught(env);
}

void Adoptee::StopWatching() {
  if (!poll_) return;
  addon_->ClosePoll(poll_);
  poll_ = nullptr;
}

void Adoptee::Close() {
  if (pidfd_ >= 0) close(pidfd_);
  pidfd_ = -1;
  if (addon_) addon_->Unregister(this);
  addon_ = nullptr;
}

void Adoptee::Detach() {
  StopWatching();
  Close();
}

Napi::Value Adoptee::Pid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), pid_);
}

Napi::Value Adoptee::Pidfd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), pidfd_);
}

// signal(signo, group) → true when sent, false when the process (group) is gone or released.
Napi::Value Adoptee::Signal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsBoolean()) {
    Napi::TypeError::New(env, "signal(signo: number, group: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (pidfd_ < 0) return Napi::Boolean::New(env, false);
  int signo = info[0].As<Napi::Number>().Int32Value();
  // Before Linux 6.9 a group cannot be named through a pidfd, and by number it is not safe for a
  // process we cannot keep from being reaped: the leader alone gets it then (the daemons' sandbox
  // children follow it through their own death signal).
  bool group = info[1].As<Napi::Boolean>().Value() && PidfdCanSignalGroup();
  int r = PidfdSendSignal(pidfd_, signo, group ? kPidfdSignalProcessGroup : 0);
  if (r < 0) {
    if (r == -ESRCH) return Napi::Boolean::New(env, false);
    ErrnoError(env, r, "pidfd_send_signal").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// The group id is the daemon's pid: once init has reaped the daemon that number may name a new
// group, which can only make this answer "alive" for longer (callers bound it by a deadline).
Napi::Value Adoptee::GroupAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int r = GroupHasLiveMember(pid_);
  if (r < 0) {
    ErrnoError(env, r, "opendir", "/proc").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

// watch(onExit): call onExit() once, on this loop, when the process has exited. A pidfd
// becomes readable at the exit of any process, child or not.
Napi::Value Adoptee::Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction() || pidfd_ < 0 || poll_ || !addon_) {
    Napi::TypeError::New(env, "watch(onExit) needs an open, unwatched process").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int err = addon_->StartPoll(pidfd_, UV_READABLE, OnPidfdReadable, this, &poll_);
  if (err < 0) {
    ErrnoError(env, err, "uv_poll_init", "", "cannot watch the daemon's pidfd: " + ErrnoText(err))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  on_exit_ = Napi::Persistent(info[0].As<Napi::Function>());
  self_ = Napi::Persistent(Value());
  return env.Undefined();
}

// exitInfo() → null while the exit is not published yet (not reaped by its parent), else
// { known: true, code, signo, coreDumped } or { known: false } when the kernel cannot tell.
Napi::Value Adoptee::ExitInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  int status = 0;
  ExitKnown known = pidfd_ < 0 ? ExitKnown::kNever : ReadPidfdExit(pidfd_, &status);
  if (known == ExitKnown::kNotYet) return env.Null();
  out.Set("known", Napi::Boolean::New(env, known == ExitKnown::kYes));
  if (known == ExitKnown::kYes) {
    bool signalled = WIFSIGNALED(status);
    out.Set("code", Napi::Number::New(env, signalled ? -1 : WEXITSTATUS(status)));
    out.Set("signo", Napi::Number::New(env, signalled ? WTERMSIG(status) : 0));
    out.Set("coreDumped", Napi::Boolean::New(env, signalled && WCOREDUMP(status)));
  }
  return out;
}

// getfd(targetfd) → a copy (close-on-exec) of the process's fd `targetfd` (pidfd_getfd, Linux
// 5.6; needs ptrace access to the process, which root has).
Napi::Value Adoptee::Getfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(env, "getfd(targetfd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = pidfd_ < 0 ? -ESRCH : PidfdGetfd(pidfd_, info[0].As<Napi::Number>().Int32Value());
  if (fd < 0) {
    ErrnoError(env, fd, "pidfd_getfd").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value Adoptee::Ref(const Napi::CallbackInfo& info) {
  if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value Adoptee::Unref(const Napi::CallbackInfo& info) {
  if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

// release(): stop watching and close the pidfd. (The adoption lock is not tied to it: it is a byte
// lock on the runtime directory's adoption.lock, released by the TS layer.)
Napi::Value Adoptee::Release(const Napi::CallbackInfo& info) {
  StopWatching();
  on_exit_.Reset();
  self_.Reset();
  Close();
  return info.Env().Undefined();
}

// ---- exported functions ---------------------------------------------------------------------

// openProcess(pid) → Adoptee. pidfd_open first: from here on the pidfd names this process and
// no other, whatever happens to the number, so the caller can check who it is without a race.
static Napi::Value OpenProcess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Addon* addon = env.GetInstanceData<Addon>();
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(env, "pid must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  pid_t pid = info[0].As<Napi::Number>().Int32Value();
  int pidfd = pid > 0 ? PidfdOpen(pid) : -EINVAL;
  if (pidfd < 0) {
    ErrnoError(env, pidfd, "pidfd_open").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // An empty object: the environment stopped running JS. Nobody could release the pidfd then.
  Napi::Object obj = addon->NewAdoptee();
  Adoptee* adoptee = obj.IsEmpty() ? nullptr : Adoptee::Unwrap(obj);
  if (!adoptee) {
    close(pidfd);
    return env.Undefined();
  }
  adoptee->Init(addon, pid, pidfd);
  return obj;
}

// makePipe(size, writeNonblocking) → { read, write, size }: both close-on-exec, the read end
// non-blocking (it is read on the event loop). The size is raised with F_SETPIPE_SZ as far as
// allowed; `size` is what the kernel granted.
static Napi::Value MakePipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int want = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  bool write_nonblocking = info[1].ToBoolean().Value();
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    ErrnoError(env, -errno, "pipe2").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int err = 0;
  const char* what = "fcntl";
  if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 || (write_nonblocking && fcntl(p[1], F_SETFL, O_NONBLOCK) < 0)) {
    err = -errno;
  } else if (want > 0 && fcntl(p[0], F_SETPIPE_SZ, want) < 0 && errno != EPERM) {
    // EPERM: beyond /proc/sys/fs/pipe-max-size for us; the default size still works.
    err = -errno;
    what = "F_SETPIPE_SZ";
  }
  int size = err ? -1 : fcntl(p[0], F_GETPIPE_SZ);
  if (err || size < 0) {
    if (!err) err = -errno;
    close(p[0]);
    close(p[1]);
    ErrnoError(env, err, what).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("read", Napi::Number::New(env, p[0]));
  out.Set("write", Napi::Number::New(env, p[1]));
  out.Set("size", Napi::Number::New(env, size));
  return out;
}

void ExportLifetime(Napi::Env env, Napi::Object exports) {
  exports.Set("openProcess", Napi::Function::New(env, OpenProcess, "openProcess"));
  exports.Set("makePipe", Napi::Function::New(env, MakePipe, "makePipe"));
}

}  // namespace vfd
