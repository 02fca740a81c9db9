// The spawn entry point: spawn()'s arguments read and checked, what every spawn needs of this
// process (pidfds, SIGCHLD not ignored), the error of a failed spawn with what to do about it,
// and the hand-over of the new child to a Child object and of its pipe ends to JS. spawn.cc
// makes the process; child.cc watches it from then on.
#include "addon.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

extern char** environ;

#include <string>
#include <vector>

#include "arguments.h"
#include "child.h"
#include "errors.h"
#include "spawn.h"

namespace vfd {

static bool GetFdSources(const Napi::CallbackInfo& info, size_t i, std::vector<FdSource>* out) {
  Napi::Env env = info.Env();
  if (!info[i].IsArray()) {
    Napi::TypeError::New(env, "fds must be an array").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array arr = info[i].As<Napi::Array>();
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    FdSource src;
    if (v.IsNull() || v.IsUndefined()) {
      src.kind = FdSource::kClosed;
    } else if (v.IsNumber()) {
      src.kind = FdSource::kInherit;
      src.fd = v.As<Napi::Number>().Int32Value();
      if (src.fd < 0) {
        Napi::RangeError::New(env, "fds[" + std::to_string(k) + "] is a negative fd").ThrowAsJavaScriptException();
        return false;
      }
    } else if (v.IsString() && v.As<Napi::String>().Utf8Value() == "null") {
      src.kind = FdSource::kDevNull;
    } else if (v.IsString() && v.As<Napi::String>().Utf8Value() == "pipe") {
      src.kind = FdSource::kPipeFromChild;
    } else if (v.IsString() && v.As<Napi::String>().Utf8Value() == "pipe-in") {
      src.kind = FdSource::kPipeToChild;
    } else {
      Napi::TypeError::New(env, "fds[" + std::to_string(k) + "] must be an fd, 'null', 'pipe', 'pipe-in' or null")
          .ThrowAsJavaScriptException();
      return false;
    }
    out->push_back(src);
  }
  return true;
}

static std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(&s[0]);
  out.push_back(nullptr);
  return out;
}

// Exit statuses are collected by waitid(P_PIDFD); a process that ignores SIGCHLD (or sets
// SA_NOCLDWAIT) has the kernel reap its children itself, and every status would be lost.
static bool ChildStatusesKept() {
  struct sigaction sa;
  if (sigaction(SIGCHLD, nullptr, &sa) < 0) return true;
  return sa.sa_handler != SIG_IGN && !(sa.sa_flags & SA_NOCLDWAIT);
}

// What every spawn in this process needs; false, with the exception thrown, when it is missing.
bool Addon::SpawnPossible(Napi::Env env) {
  if (pidfd_error_ < 0) {
    struct utsname u;
    uname(&u);  // cannot fail with a valid buffer
    ErrnoError(env, pidfd_error_, "pidfd_open", "",
               std::string("this kernel (Linux ") + u.release + ") lacks " + pidfd_missing_ +
                   "; virtiofs-daemon needs Linux 5.4 or later to watch and signal its children safely")
        .ThrowAsJavaScriptException();
    return false;
  }
  if (!ChildStatusesKept()) {
    ErrnoError(env, -ECHILD, "sigaction", "",
               "SIGCHLD is ignored (or SA_NOCLDWAIT is set) in this process, so the kernel would discard every "
               "child's exit status. Restore SIGCHLD's default disposition before spawning")
        .ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// Put the parent's pipe ends on the Child object, and how it got into its cgroup (`cgroupVia`,
// when it has one). The child is registered by now (teardown would end it), but its pipes are
// ours until JS holds them: if JS cannot take them (its environment stopped running JS), nobody
// could own the child either, so it is ended here.
bool Addon::HandOverPipes(Napi::Env env, Napi::Object obj, Child* child, std::vector<int>* ends,
                          const char* cgroup_via) {
  Napi::Array pipes = Napi::Array::New(env, ends->size());
  bool handed = !pipes.IsEmpty();
  for (size_t k = 0; handed && k < ends->size(); k++) {
    int fd = (*ends)[k];
    handed = pipes.Set(k, fd >= 0 ? Napi::Value(Napi::Number::New(env, fd)) : env.Null());
  }
  if (handed && cgroup_via) handed = obj.Set("cgroupVia", cgroup_via);
  if (!handed || !obj.Set("pipes", pipes)) {
    KillAfterFailedAdoption(child, ends);
    return false;
  }
  OwnPipes(*ends);
  return true;
}

// spawn()'s arguments, parsed and owned here. `req` gets every plain value at parse time, and
// its pointers into the strings only in Addon::Spawn, once no more JavaScript can run.
struct SpawnArgs {
  std::string file;
  std::string cwd;
  bool has_cwd = false;
  std::vector<std::string> argv;
  std::vector<std::string> envv;
  bool own_env = false;  // false: this process's environment (environ) as it is at the spawn
  bool detach = false;
  SpawnRequest req;
};

// Reads spawn()'s last argument, { cgroupFd?, cgroupMethod?, deathSignal?, detach? } or undefined.
// Only values that already have the right type count (no coercions, see `group` below), but
// reading a property can still run JS: a getter. False with a JS exception pending on a bad value.
static bool ParseSpawnOptions(Napi::Env env, Napi::Value value, SpawnArgs* args) {
  if (!value.IsObject()) return true;
  SpawnRequest* req = &args->req;
  Napi::Object options = value.As<Napi::Object>();
  Napi::Value cgroup_fd = options.Get("cgroupFd");
  Napi::Value method = options.Get("cgroupMethod");
  Napi::Value signo = options.Get("deathSignal");
  Napi::Value detached = options.Get("detach");
  if (cgroup_fd.IsEmpty() || method.IsEmpty() || signo.IsEmpty() || detached.IsEmpty()) return false;
  if (cgroup_fd.IsNumber()) req->cgroup_fd = cgroup_fd.As<Napi::Number>().Int32Value();
  if (method.IsString() && method.As<Napi::String>().Utf8Value() == "procs") {
    req->cgroup_method = SpawnRequest::kProcs;
  }
  if (signo.IsNumber()) req->death_signal = signo.As<Napi::Number>().Int32Value();
  if (req->death_signal < 0 || req->death_signal >= NSIG) {
    Napi::RangeError::New(env, "deathSignal is not a signal number").ThrowAsJavaScriptException();
    return false;
  }
  args->detach = detached.IsBoolean() && detached.As<Napi::Boolean>().Value();
  return true;
}

// spawn(file, argv, env, cwd, fds, newProcessGroup, onExit, options?) into *args. False with a
// JS exception pending when an argument is wrong.
static bool ParseSpawnArgs(const Napi::CallbackInfo& info, SpawnArgs* args) {
  Napi::Env env = info.Env();
  // env null: this process's environment as it is now (environ), without a round trip
  // through process.env, which costs a getenv per variable.
  args->own_env = !info[2].IsNull() && !info[2].IsUndefined();
  args->has_cwd = !info[3].IsNull() && !info[3].IsUndefined();
  if (!GetString(info, 0, "file", &args->file) || !GetStringArray(info, 1, "argv", &args->argv) ||
      (args->own_env && !GetStringArray(info, 2, "env", &args->envv)) ||
      (args->has_cwd && !GetString(info, 3, "cwd", &args->cwd)) || !GetFdSources(info, 4, &args->req.fds)) {
    return false;
  }
  // Not ToBoolean(): a coercion can fail once the environment stops running JS, and its empty
  // result would then abort the process in Value().
  args->req.new_process_group = info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
  if (!info[6].IsFunction()) {
    Napi::TypeError::New(env, "onExit must be a function").ThrowAsJavaScriptException();
    return false;
  }
  if (args->argv.empty()) {
    Napi::TypeError::New(env, "argv must hold at least argv[0]").ThrowAsJavaScriptException();
    return false;
  }
  return ParseSpawnOptions(env, info[7], args);
}

// The error of a failed spawn: the cgroup step that failed, else the errno with what to do about
// the ones that have an answer.
static Napi::Error SpawnFailure(Napi::Env env, int err, const SpawnArgs& args, const char* cgroup_step) {
  const std::string& file = args.file;
  if (cgroup_step) {
    std::string msg = std::string("cannot start ") + file + " in its cgroup (" + cgroup_step + " " +
                      ErrnoName(err) + ": " + ErrnoText(err) + ")";
    return ErrnoError(env, err, cgroup_step, file, msg);
  }
  std::string msg = "spawn " + file + " " + ErrnoName(err) + ": " + ErrnoText(err);
  if (args.has_cwd && err == -ENOENT && access(args.cwd.c_str(), F_OK) < 0) {
    msg = "spawn " + file + " ENOENT: working directory '" + args.cwd + "' does not exist";
  } else if (err == -EMFILE) {
    // Without the number (getrlimit failed) the message still names the limit and the fix.
    struct rlimit lim;
    std::string soft = getrlimit(RLIMIT_NOFILE, &lim) == 0 ? ", soft limit " + std::to_string(lim.rlim_cur) : "";
    msg = "spawn " + file + " EMFILE: this process is at its limit of open files (RLIMIT_NOFILE" + soft +
          "), and a spawn needs a few more for pipes and for placing the child's fds. "
          "Close fds you no longer need, or raise the limit (ulimit -n, setrlimit, LimitNOFILE=)";
  }
  return ErrnoError(env, err, "spawn", file, msg);
}

// spawn(file, argv, env, cwd, fds, newProcessGroup, onExit, options?) → Child
// options: see ParseSpawnOptions.
Napi::Value Addon::Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SpawnArgs args;
  if (!SpawnPossible(env) || !ParseSpawnArgs(info, &args)) return env.Undefined();

  // The JS object first: if the environment is going away, we learn it before a child exists.
  Napi::Object obj = NewInternal(child_constructor_);
  Child* child = obj.IsEmpty() ? nullptr : Child::Unwrap(obj);
  if (!child) return env.Undefined();

  std::vector<char*> c_argv = CStrings(args.argv);
  std::vector<char*> c_env = CStrings(args.envv);
  SpawnRequest& req = args.req;
  req.file = args.file.c_str();
  req.argv = c_argv.data();
  req.cwd = args.has_cwd ? args.cwd.c_str() : nullptr;
  req.stack = spawn_stack_;
  req.parent = getpid();
  // Last, after every call that can run JS (an options getter, the Child constructor): JS that
  // sets process.env may reallocate environ, and a pointer taken before would dangle.
  req.envp = args.own_env ? c_env.data() : environ;

  SpawnResult spawned;
  int err = vfd::Spawn(req, &spawned);
  if (err < 0) {
    SpawnFailure(env, err, args, spawned.cgroup_step).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  err = child->Adopt(this, spawned, req.new_process_group, args.detach, info[6].As<Napi::Function>());
  if (err < 0) {
    for (int fd : spawned.parent_ends) {
      if (fd >= 0) close(fd);
    }
    ErrnoError(env, err, "uv_poll_init", args.file, "cannot watch the child's pidfd: " + ErrnoText(err))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool handed = HandOverPipes(env, obj, child, &spawned.parent_ends, spawned.cgroup_via);
  return handed ? Napi::Value(obj) : env.Undefined();
}

// The environment stopped running JS between the spawn and the hand-over: end the child now,
// rather than leave it to a teardown that might be far away, and close its pipes.
void Addon::KillAfterFailedAdoption(Child* child, std::vector<int>* pipes) {
  child->Abandon(/*kill_detached=*/true);
  for (int& fd : *pipes) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

}  // namespace vfd
