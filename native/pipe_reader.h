// Reading a child's output pipe on the environment's libuv loop, without a net.Socket: a
// uv_poll_t and a read() per wakeup. A net.Socket per pipe costs ~45 µs to make and some KB
// of JavaScript objects to keep; a daemon host keeps one per daemon (see bench/density.js).
// Its entry point, readPipe (Addon::ReadPipe), is at the end of pipe_reader.cc.
#ifndef VFD_PIPE_READER_H_
#define VFD_PIPE_READER_H_

#include <napi.h>
#include <uv.h>

#include <memory>

namespace vfd {

class Addon;

class PipeReader : public Napi::ObjectWrap<PipeReader> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit PipeReader(const Napi::CallbackInfo& info);
  ~PipeReader() override;

  // Take over `fd` (non-blocking) and call on_data(chunk) with what each wakeup reads, then
  // on_data(null) once at EOF or on a read error, after which the fd is closed. On failure
  // nothing was taken over and a negative errno is returned.
  int Start(Addon* addon, int fd, Napi::Function on_data);

  // Environment teardown, where no JavaScript may run: stop and close, no callback.
  void Abandon() { Stop(); }

  // The addon is being destroyed: drop the pointer to it.
  void ForgetAddon() { addon_ = nullptr; }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);

  static void OnReadable(uv_poll_t* handle, int status, int events);
  void Deliver(const char* data, size_t len, bool end);
  void Stop();

  Addon* addon_ = nullptr;  // null once stopped
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference on_data_;
  Napi::ObjectReference self_;  // keeps the JS object alive while it reads
  std::unique_ptr<Napi::AsyncContext> context_;
};

}  // namespace vfd

#endif  // VFD_PIPE_READER_H_
