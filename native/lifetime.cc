#include "lifetime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addon.h"
#include "errors.h"
#include "process_group.h"

#ifndef PIDFD_SIGNAL_PROCESS_GROUP
#define PIDFD_SIGNAL_PROCESS_GROUP (1UL << 2)
#endif

namespace vfd {

// <linux/pidfd.h> of Linux 6.15; the C library's headers here predate it.
struct PidfdInfo {
  uint64_t mask;
  uint64_t cgroupid;
  uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  int32_t exit_code;  // a wait status, as waitpid gives it
  uint32_t coredump_mask;
  uint32_t spare;
};
static constexpr uint64_t kPidfdInfoExit = 1ULL << 3;
static constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);

// What PIDFD_GET_INFO says about the end of the process.
enum class ExitKnown { kYes, kNotYet, kNever };

// The kernel publishes the exit status of any process to every pidfd holder once it has been
// reaped (Linux >= 6.15, PIDFD_INFO_EXIT), whoever its parent was. Before the reap the answer
// lacks it (kNotYet); a kernel without it says ENOTTY/EINVAL, or ESRCH once the process is gone
// (kNever: the status is lost to us, and we must not make one up).
static ExitKnown ReadPidfdExit(int pidfd, int* status) {
  PidfdInfo info;
  memset(&info, 0, sizeof(info));
  info.mask = kPidfdInfoExit;
  if (ioctl(pidfd, kPidfdGetInfo, &info) < 0) return ExitKnown::kNever;
  if (!(info.mask & kPidfdInfoExit)) return ExitKnown::kNotYet;
  *status = info.exit_code;
  return ExitKnown::kYes;
}

static int PidfdSendSignal(int pidfd, int signo, unsigned int flags) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, flags));
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
  Addon* addon = info.Env().GetInstanceData<Addon>();
  if (!addon || !addon->constructing_child()) {
    Napi::TypeError::New(info.Env(), "Adoptee objects come from openProcess()").ThrowAsJavaScriptException();
  }
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
  if (env.IsExceptionPending()) {
    Napi::Error err = env.GetAndClearPendingException();
    napi_fatal_exception(env, err.Value());
  }
}

void Adoptee::StopWatching() {
  if (!poll_) return;
  uv_poll_t* handle = poll_;
  poll_ = nullptr;
  handle->data = addon_;
  addon_->HandleClosing();
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) {
    Addon* addon = static_cast<Addon*>(h->data);
    delete reinterpret_cast<uv_poll_t*>(h);
    addon->HandleClosed();
  });
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
  unsigned int flags = info[1].As<Napi::Boolean>().Value() ? PIDFD_SIGNAL_PROCESS_GROUP : 0;
  if (PidfdSendSignal(pidfd_, signo, flags) < 0) {
    if (errno == ESRCH) return Napi::Boolean::New(env, false);
    ErrnoError(env, -errno, "pidfd_send_signal").ThrowAsJavaScriptException();
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
  poll_ = new uv_poll_t;
  int err = uv_poll_init(addon_->loop(), poll_, pidfd_);
  if (err < 0) {
    delete poll_;
    poll_ = nullptr;
  } else if ((err = uv_poll_start(poll_, UV_READABLE, OnPidfdReadable)) < 0) {
    StopWatching();
  }
  if (err < 0) {
    ErrnoError(env, err, "uv_poll_init", "", "cannot watch the daemon's pidfd: " + ErrnoText(err))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  poll_->data = this;
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
  int fd = pidfd_ < 0 ? (errno = ESRCH, -1)
                      : static_cast<int>(syscall(SYS_pidfd_getfd, pidfd_, info[0].As<Napi::Number>().Int32Value(), 0));
  if (fd < 0) {
    ErrnoError(env, -errno, "pidfd_getfd").ThrowAsJavaScriptException();
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

// release(): stop watching and close the pidfd (dropping the adoption lock with it).
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
  int pidfd = pid > 0 ? static_cast<int>(syscall(SYS_pidfd_open, pid, 0)) : (errno = EINVAL, -1);
  if (pidfd < 0) {
    ErrnoError(env, -errno, "pidfd_open").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object obj = addon->NewAdoptee();
  Adoptee::Unwrap(obj)->Init(addon, pid, pidfd);
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

// lockFd(pidfd) → true when we now hold an exclusive flock on the process, false when another
// open pidfd holds it, null when this kernel cannot lock a process. The file of a pidfd is the
// process's pidfs inode (one per process, Linux >= 6.9), so the lock is on the process and its
// holder is our open pidfd: it goes when we close it or die. Before pidfs every pidfd shared one
// anonymous inode, and a lock on it would hold every process at once.
static Napi::Value LockFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(env, "fd must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  static constexpr long kPidfsMagic = 0x50494446;
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct statfs fs;
  if (fstatfs(fd, &fs) < 0) {
    ErrnoError(env, -errno, "fstatfs").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (fs.f_type != kPidfsMagic) return env.Null();
  int r;
  do {
    r = flock(fd, LOCK_EX | LOCK_NB);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EWOULDBLOCK) {
    ErrnoError(env, -errno, "flock").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 0);
}

void ExportLifetime(Napi::Env env, Napi::Object exports) {
  exports.Set("openProcess", Napi::Function::New(env, OpenProcess, "openProcess"));
  exports.Set("makePipe", Napi::Function::New(env, MakePipe, "makePipe"));
  exports.Set("lockFd", Napi::Function::New(env, LockFd, "lockFd"));
}

}  // namespace vfd
