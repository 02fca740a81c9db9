#include "errors.h"

#include <uv.h>

namespace vfd {

Napi::Error ErrnoError(Napi::Env env, int neg_errno, const char* syscall, const std::string& path,
                       const std::string& message) {
  const char* code = uv_err_name(neg_errno);
  std::string text = message;
  if (text.empty()) {
    text = std::string(syscall) + " " + code + ": " + uv_strerror(neg_errno);
    if (!path.empty()) text += " '" + path + "'";
  }
  Napi::Error err = Napi::Error::New(env, text);
  err.Set("code", Napi::String::New(env, code));
  err.Set("errno", Napi::Number::New(env, neg_errno));
  err.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) err.Set("path", Napi::String::New(env, path));
  return err;
}

}  // namespace vfd
