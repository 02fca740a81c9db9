#include "child.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addon.h"
#include "errors.h"
#include "process_group.h"
#include "spawn.h"
#include "syscalls.h"

namespace vfd {

// How long teardown waits for a SIGKILLed child: a task stuck in uninterruptible sleep
// (a hung FUSE or NFS request) can outlive SIGKILL, and teardown must not hang with it.
static constexpr int kTeardownWaitMs = 2000;

// The exit of a child that someone else reaped, from the status the kernel keeps in the
// pidfd (Linux >= 6.15); si_code 0 (status unknown) before.
static void LostExit(int pidfd, siginfo_t* info) {
  int status;
  info->si_code = 0;
  info->si_status = 0;
  if (PidfdExitStatus(pidfd, &status) < 0) return;
  if (WIFEXITED(status)) {
    info->si_code = CLD_EXITED;
    info->si_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info->si_code = WCOREDUMP(status) ? CLD_DUMPED : CLD_KILLED;
    info->si_status = WTERMSIG(status);
  }
}

Napi::Function Child::Define(Napi::Env env) {
  return DefineClass(env, "Child",
                     {
                         InstanceAccessor<&Child::Pid>("pid"),
                         InstanceAccessor<&Child::Pidfd>("pidfd"),
                         InstanceAccessor<&Child::Exited>("exited"),
                         InstanceMethod<&Child::Signal>("signal"),
                         InstanceMethod<&Child::GroupAlive>("groupAlive"),
                         InstanceMethod<&Child::Ref>("ref"),
                         InstanceMethod<&Child::Unref>("unref"),
                     });
}

Child::Child(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Child>(info) {
  ConstructedInternally(info, "Child objects come from spawn()");
}

Child::~Child() {
  if (addon_) addon_->Unregister(this);
  if (pidfd_ >= 0) close(pidfd_);
}

int Child::Adopt(Addon* addon, const SpawnResult& spawned, bool group, bool detach, Napi::Function on_exit) {
  pid_ = spawned.pid;
  pidfd_ = spawned.pidfd;
  group_ = group;
  detach_ = detach;

  addon_ = addon;
  int err = addon->StartPoll(pidfd_, UV_READABLE, OnPidfdReadable, this, &poll_);
  if (err < 0) {
    // Unwatchable means unreapable later: undo the spawn completely, here and now.
    KillAndReap();
    addon_ = nullptr;
    return err;
  }

  addon->Register(this);
  on_exit_ = Napi::Persistent(on_exit);
  self_ = Napi::Persistent(Value());
  return 0;
}

void Child::OnPidfdReadable(uv_poll_t* handle, int /*status*/, int /*events*/) {
  Child* self = static_cast<Child*>(handle->data);
  siginfo_t info;
  // WNOWAIT: observe the exit but leave the zombie, so that its pid and process-group id stay
  // reserved while the exit callback runs and may still signal the rest of the group.
  int err = WaitPidfd(self->pidfd_, &info, WEXITED | WNOHANG | WNOWAIT);
  if (err == 0 && info.si_pid == 0) return;  // spurious wakeup: still running
  if (err < 0) {
    // ECHILD: another waiter in this process reaped our child (a waitpid(-1) elsewhere).
    // Its pid may belong to someone else already; still report the end, exactly once.
    self->reaped_elsewhere_ = true;
    LostExit(self->pidfd_, &info);
  }
  self->DeliverExit(info);
}

void Child::DeliverExit(const siginfo_t& info) {
  StopWatching();

  int code = -1;
  int signo = 0;
  bool core = false;
  switch (info.si_code) {
    case CLD_EXITED:
      code = info.si_status;
      break;
    case CLD_DUMPED:
      core = true;
      signo = info.si_status;
      break;
    case CLD_KILLED:
      signo = info.si_status;
      break;
  }

  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  {
    // A callback scope of our own, rather than MakeCallback: MakeCallback would run the
    // microtasks (promises resolved inside onExit) before we reap, and code continuing after
    // an exit must find the child reaped. The scope runs them when it closes.
    Napi::AsyncContext context(env, "virtiofs-daemon:child-exit");
    Napi::CallbackScope callback_scope(env, context);
    on_exit_.Call(Value(),
                  {Napi::Number::New(env, code), Napi::Number::New(env, signo), Napi::Boolean::New(env, core)});
    Reap();
    on_exit_.Reset();
    self_.Reset();
    // Reaped already, so an uncaught exception that ends the process leaves no zombie.
    RaiseUncaught(env);
  }
}

// WNOHANG, result unchecked: it runs once the exit was seen, or after KillAndReap's bounded
// wait, which a task stuck in uninterruptible sleep can outlast; teardown must not hang on it
// (it stays our zombie until we exit). An error is ECHILD: someone else reaped it already.
void Child::Reap() {
  siginfo_t info;
  WaitPidfd(pidfd_, &info, WEXITED | WNOHANG);
  close(pidfd_);
  pidfd_ = -1;
  exited_ = true;
  if (addon_) addon_->Unregister(this);
  addon_ = nullptr;
}

void Child::StopWatching() {
  if (!poll_) return;
  addon_->ClosePoll(poll_);
  poll_ = nullptr;
}

void Child::Abandon(bool kill_detached) {
  if (exited_) return;
  StopWatching();
  if (!detach_ || kill_detached) {
    KillAndReap();
    return;
  }
  // It outlives us on purpose. Closing the pidfd also drops the adoption lock taken on it, so
  // that the next manager may adopt the daemon. Until this process exits, the daemon stays
  // our child: its exit leaves a zombie that only our own exit hands to init.
  close(pidfd_);
  pidfd_ = -1;
  exited_ = true;
  if (addon_) addon_->Unregister(this);
  addon_ = nullptr;
}

// Signal the process group our child leads. 0 sent, -ESRCH when nobody could be signalled
// safely, another negative errno on failure.
//
// Linux >= 6.9 names the group through the pidfd (its struct pid, not its number), so this is
// exact even after the leader is reaped, by us or by anyone. Before, the group can only be
// named by number, which is safe only while the leader is unreaped: until then its pid (the
// group id) cannot be handed out again. waitid(WNOWAIT) tells alive or zombie from reaped; a
// foreign reaper acting between that check and kill() remains a window we cannot close there.
int Child::SignalGroup(int signo) {
  if (PidfdCanSignalGroup()) return PidfdSendSignal(pidfd_, signo, kPidfdSignalProcessGroup);
  if (reaped_elsewhere_) return -ESRCH;
  siginfo_t info;
  int err = WaitPidfd(pidfd_, &info, WEXITED | WNOHANG | WNOWAIT);
  if (err == -ECHILD) reaped_elsewhere_ = true;
  if (err < 0) return -ESRCH;
  return kill(-pid_, signo) < 0 ? -errno : 0;
}

void Child::KillAndReap() {
  // The pidfd too: a leader that left its group is still ours to end. Failures go unchecked:
  // ESRCH means gone already, and the wait and reap below settle it either way.
  if (group_) SignalGroup(SIGKILL);
  PidfdSendSignal(pidfd_, SIGKILL);
  struct pollfd p = {pidfd_, POLLIN, 0};
  while (poll(&p, 1, kTeardownWaitMs) < 0 && errno == EINTR) {
  }
  Reap();
}

Napi::Value Child::Pid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), pid_);
}

Napi::Value Child::Pidfd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), pidfd_);
}

Napi::Value Child::Exited(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), exited_);
}

// signal(signo, group) → true when sent, false when the child is already reaped.
//
// Both forms are free of pid reuse: the pidfd names this process only, and the group is
// signalled as SignalGroup explains (never by number once the leader may have been reaped).
Napi::Value Child::Signal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsBoolean()) {
    Napi::TypeError::New(env, "signal(signo: number, group: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int signo = info[0].As<Napi::Number>().Int32Value();
  bool group = info[1].As<Napi::Boolean>().Value();
  if (exited_) return Napi::Boolean::New(env, false);
  if (group && !group_) {
    Napi::TypeError::New(env, "signal({ group: true }) needs a child spawned with newProcessGroup")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int r = group ? SignalGroup(signo) : PidfdSendSignal(pidfd_, signo);
  if (r < 0) {
    if (r == -ESRCH) return Napi::Boolean::New(env, false);
    ErrnoError(env, r, group ? "kill" : "pidfd_send_signal").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// After the reap a reused group id can only make this answer "alive" for longer than true,
// which callers bound with a deadline; it can never harm anyone (nothing is sent).
Napi::Value Child::GroupAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!group_) return Napi::Boolean::New(env, !exited_);
  int r = GroupHasLiveMember(pid_);
  if (r < 0) {
    ErrnoError(env, r, "opendir", "/proc").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

Napi::Value Child::Ref(const Napi::CallbackInfo& info) {
  if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value Child::Unref(const Napi::CallbackInfo& info) {
  if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

}  // namespace vfd
