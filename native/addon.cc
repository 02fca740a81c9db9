// The addon's entry points: argument checking and error shaping around the POSIX helpers
// of unix_socket.cc, trusted_file.cc and spawn.cc, and the per-environment teardown policy.
//
// Teardown policy: when an environment goes away (a worker_thread ends or is terminated,
// the process exits, process.exit() included, an Electron context is destroyed) every child it
// still watches is SIGKILLed - its whole process group when it was spawned with newProcessGroup -
// and reaped, without calling back into JavaScript. A daemon must not outlive the code that
// supervises it, and in a process that lives on, an unwatched child would stay a zombie. Every
// listening socket it created and JS has not released yet is closed, and its file removed.
//
// JavaScript may stop running at any point of a call here (worker.terminate() from another
// thread): every Node-API result after a side effect is checked, and a failure undoes the side
// effect. NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS (binding.gyp) makes an exception thrown into
// such an environment a no-op instead of a fatal error.
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

extern char** environ;

#include <string>
#include <vector>

#include "arguments.h"
#include "cgroup.h"
#include "child.h"
#include "errors.h"
#include "lifetime.h"
#include "pipe_reader.h"
#include "proc_facts.h"
#include "process_group.h"
#include "spawn.h"
#include "syscalls.h"
#include "trusted_file.h"
#include "unix_socket.h"

namespace vfd {

// The napi_* results go unchecked: each fails only on an invalid env or a null argument.
Addon::Addon(Napi::Env env, Napi::Object exports) {
  napi_get_uv_event_loop(env, &loop_);
  child_constructor_ = Napi::Persistent(Child::Define(env));
  reader_constructor_ = Napi::Persistent(PipeReader::Define(env));
  adoptee_constructor_ = Napi::Persistent(Adoptee::Define(env));
  pidfd_error_ = ProbePidfdSupport(&pidfd_missing_);
  spawn_stack_ = AllocateSpawnStack();  // nullptr (mmap failed): each spawn then maps its own
  napi_add_async_cleanup_hook(env, Teardown, this, &cleanup_handle_);

  DefineAddon(exports, {
                           InstanceMethod<&Addon::ListenUnix>("listenUnix"),
                           InstanceMethod<&Addon::ChownToParent>("chownToParent"),
                           InstanceMethod<&Addon::UnlinkSocket>("unlinkSocket"),
                           InstanceMethod<&Addon::RemoveStaleSocket>("removeStaleSocket"),
                           InstanceMethod<&Addon::SocketListener>("socketListener"),
                           InstanceMethod<&Addon::PeerCredentials>("peerCredentials"),
                           InstanceMethod<&Addon::FileMode>("fileMode"),
                           InstanceMethod<&Addon::CloseFd>("closeFd"),
                           InstanceMethod<&Addon::KeepSocketFile>("keepSocketFile"),
                           InstanceMethod<&Addon::Spawn>("spawn"),
                           InstanceMethod<&Addon::AbandonAll>("abandonAll"),
                           InstanceMethod<&Addon::LiveGroups>("liveGroups"),
                           InstanceMethod<&Addon::ReadPipe>("readPipe"),
                           InstanceMethod<&Addon::KillCgroupMembers>("killCgroupMembers"),
                           InstanceMethod<&Addon::ReadTrustedFile>("readTrustedFile"),
                           InstanceMethod<&Addon::WriteTrustedFile>("writeTrustedFile"),
                           InstanceMethod<&Addon::RemoveTrustedFile>("removeTrustedFile"),
                           InstanceMethod<&Addon::MakePrivateDir>("makePrivateDir"),
                           InstanceMethod<&Addon::OpenLockFile>("openLockFile"),
                           InstanceMethod<&Addon::LockByte>("lockByte"),
                           InstanceMethod<&Addon::UnlockByte>("unlockByte"),
                           InstanceMethod<&Addon::ByteLockedElsewhere>("byteLockedElsewhere"),
                           InstanceMethod<&Addon::ProcessFacts>("processFacts"),
                           InstanceMethod<&Addon::GroupMembers>("groupMembers"),
                       });
  ExportLifetime(env, exports);
}

Napi::Object Addon::NewInternal(const Napi::FunctionReference& constructor) {
  constructing_ = true;
  Napi::Object obj = constructor.New({});
  constructing_ = false;
  return obj;
}

bool ConstructedInternally(const Napi::CallbackInfo& info, const char* refusal) {
  Addon* addon = info.Env().GetInstanceData<Addon>();
  if (addon && addon->constructing()) return true;
  Napi::TypeError::New(info.Env(), refusal).ThrowAsJavaScriptException();
  return false;
}

Addon::~Addon() {
  if (spawn_stack_) FreeSpawnStack(spawn_stack_);
  // Teardown has abandoned every child already; this only guards against dangling pointers.
  for (Child* child : live_) child->ForgetAddon();
  for (PipeReader* reader : readers_) reader->ForgetAddon();
  for (Adoptee* adoptee : adoptees_) adoptee->ForgetAddon();
}

// abandonAll(): the teardown policy, applied now. Bound to process 'exit', because
// process.exit() ends the process without running environment cleanup hooks.
Napi::Value Addon::AbandonAll(const Napi::CallbackInfo& info) {
  ReleaseAll();
  return info.Env().Undefined();
}

void Addon::ReleaseAll() {
  // Abandon() and Detach() unregister, so walk copies.
  for (Child* child : std::unordered_set<Child*>(live_)) child->Abandon();
  for (Adoptee* adoptee : std::unordered_set<Adoptee*>(adoptees_)) adoptee->Detach();
  // After the children: a killed daemon no longer holds the socket, so the path is free. An
  // unlink that fails is not reported: teardown has no JS to tell, and a file left behind is
  // a stale socket that the next listenUnix at that path replaces.
  for (const OwnedSocket& s : sockets_) {
    if (s.fd >= 0) close(s.fd);
    if (!s.file_released) UnlinkSocketIfSame(s.path, s.dev, s.ino);
  }
  sockets_.clear();
}

void Addon::OwnSocket(int fd, const std::string& path, dev_t dev, ino_t ino) {
  sockets_.push_back({fd, path, dev, ino, false});
}

void Addon::ReleaseSocketFile(dev_t dev, ino_t ino) {
  for (OwnedSocket& s : sockets_) {
    if (s.dev == dev && s.ino == ino) s.file_released = true;
  }
  ForgetSockets();
}

// Drop the sockets JS has fully released (fd closed, file handed back).
void Addon::ForgetSockets() {
  size_t kept = 0;
  for (OwnedSocket& s : sockets_) {
    if (s.fd >= 0 || !s.file_released) sockets_[kept++] = s;
  }
  sockets_.resize(kept);
}

// Whether fd is still the file (dev, ino): a closed fd, or its number reused for another file,
// is not ours any more.
static bool StillSame(int fd, dev_t dev, ino_t ino) {
  FileId id;
  return StatAt(fd, "", AT_EMPTY_PATH, &id) == 0 && id.dev == dev && id.ino == ino;
}

void Addon::OwnPipes(const std::vector<int>& fds) {
  for (int fd : fds) {
    FileId id;
    if (fd >= 0 && StatAt(fd, "", AT_EMPTY_PATH, &id) == 0) pipes_.push_back({fd, id.dev, id.ino});
  }
  // Amortized: a prune costs one statx per entry and runs when the list has doubled.
  if (pipes_.size() < 2 * pipes_after_prune_ + 64) return;
  size_t kept = 0;
  for (const OwnedPipe& p : pipes_) {
    if (StillSame(p.fd, p.dev, p.ino)) pipes_[kept++] = p;
  }
  pipes_.resize(kept);
  pipes_after_prune_ = kept;
}

// Only from the environment's cleanup hook: Node closes the handles of an environment (a
// stream's fd included) before it runs the cleanup hooks, so a pipe end that is still the same
// pipe now was never wrapped by JS, and nobody else will close it. Not at process 'exit',
// where streams still hold their fds and the process's end closes everything anyway.
void Addon::ClosePipesLeftOpen() {
  for (const OwnedPipe& p : pipes_) {
    if (StillSame(p.fd, p.dev, p.ino)) close(p.fd);
  }
  pipes_.clear();
}

// Only from the environment's cleanup hook, like ClosePipesLeftOpen: at process 'exit' other
// listeners may still lock, and the process's end releases every lock anyway.
void Addon::CloseLockFiles() {
  for (const OwnedPipe& f : lock_files_) {
    if (StillSame(f.fd, f.dev, f.ino)) close(f.fd);
  }
  lock_files_.clear();
}

void Addon::Teardown(napi_async_cleanup_hook_handle handle, void* arg) {
  Addon* self = static_cast<Addon*>(arg);
  self->cleanup_handle_ = handle;
  self->tearing_down_ = true;
  // Readers first: each closes its own pipe end, which ClosePipesLeftOpen would otherwise close
  // under it (and the reader again after, when the number may already be someone else's).
  for (PipeReader* reader : std::unordered_set<PipeReader*>(self->readers_)) reader->Abandon();
  self->ReleaseAll();
  self->ClosePipesLeftOpen();
  self->CloseLockFiles();
  self->pending_closes_++;
  self->HandleClosed();
}

int Addon::StartPoll(int fd, int events, uv_poll_cb cb, void* data, uv_poll_t** out) {
  uv_poll_t* handle = new uv_poll_t;
  *out = nullptr;
  int err = uv_poll_init(loop_, handle, fd);
  if (err < 0) {
    // Never initialized, so never on the loop: freed at once, without uv_close.
    delete handle;
    return err;
  }
  handle->data = data;
  if ((err = uv_poll_start(handle, events, cb)) < 0) {
    ClosePoll(handle);
    return err;
  }
  *out = handle;
  return 0;
}

void Addon::ClosePoll(uv_poll_t* handle) {
  handle->data = this;
  pending_closes_++;
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) {
    Addon* addon = static_cast<Addon*>(h->data);
    delete reinterpret_cast<uv_poll_t*>(h);
    addon->HandleClosed();
  });
}

void Addon::HandleClosed() {
  if (--pending_closes_ > 0 || !tearing_down_) return;
  // Every handle of this environment is closed: Node may now free the loop.
  tearing_down_ = false;
  napi_remove_async_cleanup_hook(cleanup_handle_);
  cleanup_handle_ = nullptr;
}

Napi::Value Addon::CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(env, "fd must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  for (OwnedSocket& s : sockets_) {
    if (s.fd == fd) s.fd = -1;
  }
  ForgetSockets();
  for (std::vector<OwnedPipe>* owned : {&pipes_, &lock_files_}) {
    for (size_t k = 0; k < owned->size(); k++) {
      if ((*owned)[k].fd != fd) continue;
      (*owned)[k] = owned->back();
      owned->pop_back();
      break;
    }
  }
  // Linux releases the fd even when close() fails (EINTR included): never retry.
  if (close(fd) < 0 && errno != EINTR) {
    ErrnoError(env, -errno, "close").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// ---- processes --------------------------------------------------------------------------

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

// readPipe(fd, onData) → PipeReader: our end of a child's pipe, read on this loop; onData
// gets each chunk as a Buffer, then null once at the end (the fd is closed then).
Napi::Value Addon::ReadPipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "readPipe(fd: number, onData: function)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object obj = NewInternal(reader_constructor_);
  PipeReader* reader = obj.IsEmpty() ? nullptr : PipeReader::Unwrap(obj);
  if (!reader) return env.Undefined();
  int err = reader->Start(this, info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Function>());
  if (err < 0) {
    ErrnoError(env, err, "uv_poll_init", "", "cannot watch the pipe: " + ErrnoText(err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return obj;
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

using VirtiofsDaemonAddon = vfd::Addon;
NODE_API_ADDON(VirtiofsDaemonAddon)
