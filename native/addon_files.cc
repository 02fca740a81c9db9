// The file entry points: trusted files (read, written and removed only through directories that
// nobody but root or us could have changed, trusted_file.cc), the manager's private directory,
// the lock file and its byte locks (OFD locks, one byte per daemon pid), and the mode of a path.
// A refusal carries what src/process/trusted-file.ts needs to word it (see TrustedFileError).
#include "addon.h"

#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include <string>

#include "arguments.h"
#include "errors.h"
#include "syscalls.h"
#include "trusted_file.h"

namespace vfd {

static const char* DistrustName(Distrust d) {
  switch (d) {
    case Distrust::kOwner:
      return "owner";
    case Distrust::kWritable:
      return "writable";
    case Distrust::kForeignEntry:
      return "foreign-entry";
    case Distrust::kType:
      return "type";
    case Distrust::kSize:
      return "size";
    case Distrust::kMode:
      return "mode";
    case Distrust::kNone:
      break;
  }
  return "none";
}

static std::string DistrustText(const PathProblem& why) {
  switch (why.distrust) {
    case Distrust::kOwner:
      return "is owned by neither root nor uid " + std::to_string(geteuid());
    case Distrust::kWritable:
      return "is writable by group or others";
    case Distrust::kForeignEntry:
      return "is another uid's, in a sticky directory that anyone may add to";
    case Distrust::kType:
      return std::string("is ") + FileType(why.mode);
    case Distrust::kSize:
      return "holds " + std::to_string(why.size) + " bytes, more than we read";
    case Distrust::kMode:
      return "is not mode 0700";
    case Distrust::kNone:
      break;
  }
  return "";
}

// The errors of the trusted-file primitives. A refusal names the path at fault and carries
// `reason` (see DistrustName), `component`, `owner`, `mode` (with its type bits) and, for
// "size", `size`: what src/trusted-file.ts needs for its message. Anything else is the plain
// errno error.
static Napi::Error TrustedFileError(Napi::Env env, int err, const char* syscall, const std::string& path,
                                    const PathProblem& why) {
  if (why.distrust == Distrust::kNone) return ErrnoError(env, err, syscall, path);
  std::string msg = std::string(syscall) + " " + ErrnoName(err) + ": refusing '" + path + "': '" + why.component +
                    "' (owner uid " + std::to_string(why.owner) + ", mode " + Octal(why.mode) + ") " +
                    DistrustText(why);
  Napi::Error e = ErrnoError(env, err, syscall, path, msg);
  e.Set("reason", Napi::String::New(env, DistrustName(why.distrust)));
  e.Set("component", Napi::String::New(env, why.component));
  e.Set("owner", Napi::Number::New(env, why.owner));
  e.Set("mode", Napi::Number::New(env, why.mode));
  if (why.distrust == Distrust::kSize) e.Set("size", Napi::Number::New(env, static_cast<double>(why.size)));
  return e;
}

// readTrustedFile(path, maxBytes) → Buffer, or null when there is no such file.
Napi::Value Addon::ReadTrustedFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int64_t max;
  // 1 GiB: a bound on what a caller may ask to hold in memory at once, far above any state file.
  if (!GetString(info, 0, "path", &path) || !GetCount(info, 1, "maxBytes", int64_t{1} << 30, &max)) {
    return env.Undefined();
  }
  std::string data;
  PathProblem why;
  int r = vfd::ReadTrustedFile(path, static_cast<size_t>(max), &data, &why);
  if (r < 0) {
    TrustedFileError(env, r, "open", path, why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (r == 0) return env.Null();
  return Napi::Buffer<char>::Copy(env, data.data(), data.size());
}

// writeTrustedFile(path, data, mode, exclusive) → written? (false: exclusive, and a file is there)
Napi::Value Addon::WriteTrustedFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int64_t mode;
  if (!GetString(info, 0, "path", &path)) return env.Undefined();
  if (!info[1].IsBuffer()) {
    Napi::TypeError::New(env, "data must be a Buffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!GetCount(info, 2, "mode", 07777, &mode)) return env.Undefined();
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  bool exclusive = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  PathProblem why;
  int r = vfd::WriteTrustedFile(path, data.Data(), data.Length(), static_cast<mode_t>(mode), exclusive, &why);
  if (r < 0) {
    TrustedFileError(env, r, "write", path, why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

// removeTrustedFile(path) → removed? (false: nothing was there)
Napi::Value Addon::RemoveTrustedFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetString(info, 0, "path", &path)) return env.Undefined();
  PathProblem why;
  int r = vfd::RemoveTrustedFile(path, &why);
  if (r < 0) {
    TrustedFileError(env, r, "unlink", path, why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

// makePrivateDir(path, create) → created? (false: it was there, and is private)
Napi::Value Addon::MakePrivateDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetString(info, 0, "path", &path)) return env.Undefined();
  bool create = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  PathProblem why;
  int r = vfd::MakePrivateDir(path, create, &why);
  if (r < 0) {
    TrustedFileError(env, r, "mkdir", path, why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

// openLockFile(path) → fd, held by this environment until closeFd or its teardown.
Napi::Value Addon::OpenLockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetString(info, 0, "path", &path)) return env.Undefined();
  PathProblem why;
  int fd = vfd::OpenLockFile(path, &why);
  if (fd < 0) {
    TrustedFileError(env, fd, "open", path, why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  FileId id;
  StatAt(fd, "", AT_EMPTY_PATH, &id);  // cannot fail: OpenLockFile has just stat'ed this fd
  OwnLockFile(fd, id.dev, id.ino);
  return Napi::Number::New(env, fd);
}

// The (fd, offset) of the byte-lock calls.
static bool GetFdOffset(const Napi::CallbackInfo& info, int* fd, off_t* offset) {
  int64_t f, o;
  if (!GetCount(info, 0, "fd", INT32_MAX, &f) || !GetCount(info, 1, "offset", INT64_C(1) << 53, &o)) return false;
  *fd = static_cast<int>(f);
  *offset = static_cast<off_t>(o);
  return true;
}

// lockByte(fd, offset) → true: we hold it now; false: another open file description does.
Napi::Value Addon::LockByte(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  off_t offset;
  if (!GetFdOffset(info, &fd, &offset)) return env.Undefined();
  int r = vfd::LockByte(fd, offset);
  if (r < 0) {
    ErrnoError(env, r, "fcntl").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

// unlockByte(fd, offset)
Napi::Value Addon::UnlockByte(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  off_t offset;
  if (!GetFdOffset(info, &fd, &offset)) return env.Undefined();
  int r = vfd::UnlockByte(fd, offset);
  if (r < 0) ErrnoError(env, r, "fcntl").ThrowAsJavaScriptException();
  return env.Undefined();
}

// byteLockedElsewhere(fd, offset) → whether another open file description holds the byte.
Napi::Value Addon::ByteLockedElsewhere(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  off_t offset;
  if (!GetFdOffset(info, &fd, &offset)) return env.Undefined();
  int r = vfd::ByteLockedElsewhere(fd, offset);
  if (r < 0) {
    ErrnoError(env, r, "fcntl").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

// fileMode(path) → st_mode of what path names, symlinks followed (stat(2)), as a number. The
// checks a start makes on its binary and directories need the type only: fs.statSync would make a
// Stats object and four Dates each time.
Napi::Value Addon::FileMode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetString(info, 0, "path", &path)) return env.Undefined();
  FileId id;
  int err = StatAt(AT_FDCWD, path.c_str(), 0, &id);
  if (err < 0) {
    ErrnoError(env, err, "stat", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, id.mode);
}

}  // namespace vfd
