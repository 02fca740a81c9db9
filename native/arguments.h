// Reading the entry points' arguments. Each reader takes a value only when it already has the
// right type, never by coercion (ToBoolean, ToString...): a coercion can fail once the
// environment stops running JS, and its empty result would then abort the process in Value().
// On a wrong value it throws a TypeError or RangeError that names the argument and returns
// false. One home for all of them, so that every entry point words the same mistake the same way.
#ifndef VFD_ARGUMENTS_H_
#define VFD_ARGUMENTS_H_

#include <napi.h>
#include <stdint.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace vfd {

// info[i] as a string without a NUL byte.
bool GetString(const Napi::CallbackInfo& info, size_t i, const char* name, std::string* out);

// info[i] as an array of strings without NUL bytes, appended to *out.
bool GetStringArray(const Napi::CallbackInfo& info, size_t i, const char* name, std::vector<std::string>* out);

// info[i] and info[i + 1] as the bigints (dev, ino) of a file's identity.
bool GetIdentity(const Napi::CallbackInfo& info, size_t i, dev_t* dev, ino_t* ino);

// info[i] as a non-negative integer up to `max`, else a RangeError naming it.
bool GetCount(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t max, int64_t* out);

// The pids (or pgids) of an array of numbers, or a TypeError thrown and false.
bool PidList(Napi::Env env, Napi::Value value, const char* what, std::vector<pid_t>* out);

}  // namespace vfd

#endif  // VFD_ARGUMENTS_H_
