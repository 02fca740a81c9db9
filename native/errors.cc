#include "errors.h"

#include <string.h>

namespace vfd {

std::string ErrnoName(int neg_errno) {
  const char* name = strerrorname_np(-neg_errno);
  return name ? name : "E" + std::to_string(-neg_errno);
}

std::string ErrnoText(int neg_errno) {
  const char* desc = strerrordesc_np(-neg_errno);
  return desc ? desc : "unknown error " + std::to_string(-neg_errno);
}

Napi::Error ErrnoError(Napi::Env env, int neg_errno, const char* syscall, const std::string& path,
                       const std::string& message) {
  // glibc's own names: libuv's table lacks some errnos (ENOEXEC, ESTALE).
  std::string code = ErrnoName(neg_errno);
  std::string text = message;
  if (text.empty()) {
    text = std::string(syscall) + " " + code + ": " + ErrnoText(neg_errno);
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
