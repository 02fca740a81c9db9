#include "pipe_reader.h"

#include <errno.h>
#include <unistd.h>

#include "addon.h"
#include "errors.h"

namespace vfd {

// What one wakeup reads at most, so that a daemon that floods its pipe cannot keep the loop
// from everything else; the rest comes at the next turn (the poll is level-triggered).
static constexpr size_t kReadPerWakeup = 64 * 1024;

Napi::Function PipeReader::Define(Napi::Env env) {
  return DefineClass(env, "PipeReader",
                     {
                         InstanceMethod<&PipeReader::Close>("close"),
                         InstanceMethod<&PipeReader::Ref>("ref"),
                         InstanceMethod<&PipeReader::Unref>("unref"),
                     });
}

PipeReader::PipeReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PipeReader>(info) {
  ConstructedInternally(info, "PipeReader objects come from readPipe()");
}

PipeReader::~PipeReader() {
  // Only reached once stopped: self_ holds us while reading.
  if (fd_ >= 0) close(fd_);
}

int PipeReader::Start(Addon* addon, int fd, Napi::Function on_data) {
  // On failure nothing is taken over: the caller still owns fd.
  int err = addon->StartPoll(fd, UV_READABLE | UV_DISCONNECT, OnReadable, this, &poll_);
  if (err < 0) return err;
  addon_ = addon;
  fd_ = fd;
  addon->RegisterReader(this);
  on_data_ = Napi::Persistent(on_data);
  self_ = Napi::Persistent(Value());
  context_ = std::make_unique<Napi::AsyncContext>(Env(), "virtiofs-daemon:pipe");
  return 0;
}

void PipeReader::OnReadable(uv_poll_t* handle, int /*status*/, int /*events*/) {
  PipeReader* self = static_cast<PipeReader*>(handle->data);
  // Per thread, not on the stack or the heap: each environment's loop runs on a thread of
  // its own, and Deliver copies what it hands on.
  static thread_local char buf[kReadPerWakeup];
  size_t len = 0;
  bool end = false;
  while (len < sizeof(buf)) {
    ssize_t n = read(self->fd_, buf + len, sizeof(buf) - len);
    if (n > 0) {
      len += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // EOF, or an error that will not go away: either way the pipe is done.
    end = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    break;
  }
  if (len > 0 || end) self->Deliver(buf, len, end);
}

void PipeReader::Deliver(const char* data, size_t len, bool end) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  // Keep ourselves and the callback alive through the call: it may close() us.
  Napi::FunctionReference keep = Napi::Persistent(on_data_.Value());
  {
    Napi::CallbackScope callback_scope(env, *context_);
    if (len > 0) keep.Call(Value(), {Napi::Buffer<char>::Copy(env, data, len)});
    if (end && addon_) {
      Stop();
      keep.Call(Value(), {env.Null()});
    }
    RaiseUncaught(env);
  }
}

void PipeReader::Stop() {
  // addon_ goes only after teardown has stopped us (ForgetAddon), so a poll without it is not
  // expected; leaving the handle is safer than counting its close on a freed addon.
  if (poll_ && addon_) addon_->ClosePoll(poll_);
  poll_ = nullptr;
  // After uv_close: the poll must not watch a closed (and maybe reused) fd number.
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (addon_) addon_->UnregisterReader(this);
  addon_ = nullptr;
  on_data_.Reset();
  self_.Reset();
}

// close(): stop reading and close the pipe; no further callback.
Napi::Value PipeReader::Close(const Napi::CallbackInfo& info) {
  Stop();
  return info.Env().Undefined();
}

Napi::Value PipeReader::Ref(const Napi::CallbackInfo& info) {
  if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value PipeReader::Unref(const Napi::CallbackInfo& info) {
  if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
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

}  // namespace vfd
