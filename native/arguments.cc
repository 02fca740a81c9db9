#include "arguments.h"

#include <string>

namespace vfd {

bool GetString(const Napi::CallbackInfo& info, size_t i, const char* name, std::string* out) {
  if (!info[i].IsString()) {
    Napi::TypeError::New(info.Env(), std::string(name) + " must be a string").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  // A C string ends at the first NUL: the rest would be silently dropped.
  if (out->find('\0') != std::string::npos) {
    Napi::TypeError::New(info.Env(), std::string(name) + " contains a NUL byte").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

bool GetStringArray(const Napi::CallbackInfo& info, size_t i, const char* name, std::vector<std::string>* out) {
  if (!info[i].IsArray()) {
    Napi::TypeError::New(info.Env(), std::string(name) + " must be an array of strings")
        .ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array arr = info[i].As<Napi::Array>();
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    const char* problem = nullptr;
    if (!v.IsString()) {
      problem = " must be a string";
    } else {
      out->push_back(v.As<Napi::String>().Utf8Value());
      if (out->back().find('\0') != std::string::npos) problem = " contains a NUL byte";
    }
    if (problem) {
      Napi::TypeError::New(info.Env(), std::string(name) + "[" + std::to_string(k) + "]" + problem)
          .ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
}

bool GetIdentity(const Napi::CallbackInfo& info, size_t i, dev_t* dev, ino_t* ino) {
  if (!info[i].IsBigInt() || !info[i + 1].IsBigInt()) {
    Napi::TypeError::New(info.Env(), "dev and ino must be bigints").ThrowAsJavaScriptException();
    return false;
  }
  // A negative or wider bigint would wrap to another file's identity: refuse it instead.
  bool dev_exact, ino_exact;
  *dev = static_cast<dev_t>(info[i].As<Napi::BigInt>().Uint64Value(&dev_exact));
  *ino = static_cast<ino_t>(info[i + 1].As<Napi::BigInt>().Uint64Value(&ino_exact));
  if (!dev_exact || !ino_exact) {
    Napi::RangeError::New(info.Env(), "dev and ino must fit in 64 unsigned bits").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

bool GetCount(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t max, int64_t* out) {
  if (!info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(name) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= static_cast<double>(max)) || v != static_cast<double>(static_cast<int64_t>(v))) {
    Napi::RangeError::New(info.Env(), std::string(name) + " must be an integer from 0 to " + std::to_string(max))
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<int64_t>(v);
  return true;
}

bool PidList(Napi::Env env, Napi::Value value, const char* what, std::vector<pid_t>* out) {
  if (!value.IsArray()) {
    Napi::TypeError::New(env, std::string(what) + " must be an array of numbers").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array arr = value.As<Napi::Array>();
  out->resize(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    if (!v.IsNumber()) {
      Napi::TypeError::New(env, std::string(what) + " must be an array of numbers").ThrowAsJavaScriptException();
      return false;
    }
    (*out)[k] = v.As<Napi::Number>().Int32Value();
  }
  return true;
}

}  // namespace vfd
