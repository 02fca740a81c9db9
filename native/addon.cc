// The Addon: one per Node environment, with the export table, what the environment owns (the
// sockets, pipe ends and lock files it handed to JS) and the teardown policy. The entry points
// live in the files of their concern (see addon.h); this file holds only what they all share.
//
// Teardown policy: when an environment goes away (a worker_thread ends or is terminated,
// the process exits, process.exit() included, an Electron context is destroyed) every child it
// still watches is SIGKILLed - its whole process group when it was spawned with newProcessGroup -
// and reaped, without calling back into JavaScript. A daemon must not outlive the code that
// supervises it, and in a process that lives on, an unwatched child would stay a zombie. Every
// listening socket it created and JS has not released yet is closed, and its file removed. The
// pipe ends JS never wrapped and the lock files it did not close are closed (see ClosePipesLeftOpen).
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "child.h"
#include "errors.h"
#include "lifetime.h"
#include "pipe_reader.h"
#include "spawn.h"
#include "syscalls.h"
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

// closeFd(fd): close an fd this environment handed to JS (a listening socket, a pipe end, a lock
// file); teardown will not close it again.
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

}  // namespace vfd

using VirtiofsDaemonAddon = vfd::Addon;
NODE_API_ADDON(VirtiofsDaemonAddon)
