// The socket entry points: a listening unix socket and the life of its file (unix_socket.cc does
// the work, pinned to a directory fd), and what a caller asks of a socket it did not make: who
// listens on a socket file (sock_diag), who is at the other end of a connection (SO_PEERCRED).
// Each errno is worded here for the path it concerns, with the way out.
#include "addon.h"

#include <errno.h>
#include <string.h>

#include <string>

#include "arguments.h"
#include "errors.h"
#include "unix_socket.h"

namespace vfd {

static std::string DirName(const std::string& path) {
  std::string dir, base;
  SplitPath(path, &dir, &base);
  return dir;
}

static std::string RefusedSymlink(const std::string& path, const PathProblem& why) {
  return "refusing to follow the symlink '" + why.symlink + "' on the way to socket path '" + path +
         "': its directory is owned by uid " + std::to_string(why.dir_owner) + " with mode " + Octal(why.dir_mode) +
         ", so someone other than root or us could have planted it. Use a path whose symlinks sit in directories "
         "owned by root (or by us) and writable by nobody else, or the symlink's target itself";
}

// The errors of the socket primitives, each naming the path and the way out.
static Napi::Error SocketPathError(Napi::Env env, int err, const char* syscall, const std::string& path,
                                   const PathProblem& why) {
  std::string msg;
  switch (err) {
    case -ENAMETOOLONG:
      msg = "socket path '" + path + "' is " + std::to_string(path.size()) +
            " bytes; a unix socket path holds at most " + std::to_string(kMaxSocketPath) +
            " bytes (sun_path). Use a shorter path; it is never truncated";
      break;
    case -EEXIST:
      msg = "'" + path + "' is " + FileType(why.found_mode) +
            ", not a socket, and was left alone. Remove it or choose another path";
      break;
    case -EADDRINUSE:
      // Only sock_diag's word makes "a process is listening" true; else the path was re-taken.
      msg = why.listener ? "socket '" + path +
                               "' is in use: a process is listening on it. Stop that process or choose another path"
                         : "socket '" + path +
                               "' was taken again while we replaced a stale socket file there: something else "
                               "creates files at this path. Find it, or choose another path";
      break;
    case -ELOOP:
      if (!why.symlink.empty()) msg = RefusedSymlink(path, why);
      break;
    case -ESTALE:
      msg = "socket '" + path + "' was replaced by something else right after we bound it: someone else writes to '" +
            DirName(path) + "'. Nothing was removed. Use a directory only root and the VMM user can write";
      break;
    case -ENOENT:
    case -ENOTDIR:
      msg = "cannot create '" + path + "': directory '" + DirName(path) + "' does not exist. Create it first";
      break;
    case -EPROTONOSUPPORT:
    case -EAFNOSUPPORT:
      msg = "a socket file exists at '" + path +
            "' and this kernel cannot tell whether a process listens on it (no unix_diag). Remove it if it is stale";
      break;
  }
  return ErrnoError(env, err, syscall, path, msg);
}

// The error of a chown to the directory's owner that failed (chownToParent, listenUnix).
static Napi::Error ChownError(Napi::Env env, int err, const std::string& path, const PathProblem& why) {
  std::string msg;
  if (err == -ESTALE) {
    msg = "refusing to chown '" + path +
          "': it is no longer the socket we bound (replaced, or a symlink). Nothing was changed";
  } else if (err == -ELOOP && !why.symlink.empty()) {
    msg = RefusedSymlink(path, why);
  }
  return ErrnoError(env, err, "fchownat", path, msg);
}

// listenUnix(path, backlog, chownToParent) → { fd, dev, ino, uid?, gid? } (uid and gid: the
// owner the file was given, with chownToParent)
Napi::Value Addon::ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetString(info, 0, "path", &path)) return env.Undefined();
  // The default lives in native.ts, the one caller.
  if (!info[1].IsNumber()) {
    Napi::TypeError::New(env, "backlog must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int backlog = info[1].As<Napi::Number>().Int32Value();
  // Not ToBoolean(): see arguments.h.
  bool chown = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();

  BoundSocket sock;
  int err = vfd::ListenUnix(path, backlog, chown, &sock);
  if (err < 0) {
    (strcmp(sock.step, "fchownat") == 0 ? ChownError(env, err, path, sock.problem)
                                        : SocketPathError(env, err, "listen", path, sock.problem))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Owned before any Node-API call that could fail: teardown releases it if JS never gets it.
  OwnSocket(sock.fd, path, sock.dev, sock.ino);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, sock.fd));
  out.Set("dev", Napi::BigInt::New(env, static_cast<uint64_t>(sock.dev)));
  out.Set("ino", Napi::BigInt::New(env, static_cast<uint64_t>(sock.ino)));
  if (sock.chowned) {
    out.Set("uid", Napi::Number::New(env, sock.uid));
    out.Set("gid", Napi::Number::New(env, sock.gid));
  }
  return out;
}

// removeStaleSocket(path) → removed? (false: nothing was there)
Napi::Value Addon::RemoveStaleSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetString(info, 0, "path", &path)) return env.Undefined();
  PathProblem why;
  int r = vfd::RemoveStaleSocket(path, &why);
  if (r < 0) {
    SocketPathError(env, r, "unlink", path, why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

// socketListener(dev, ino) → the inode of the socket that listens on the socket file (dev, ino),
// as a bigint, or null when nothing listens there.
Napi::Value Addon::SocketListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  dev_t dev;
  ino_t ino;
  if (!GetIdentity(info, 0, &dev, &ino)) return env.Undefined();
  ino_t sock_ino;
  int r = ListenerSocketInode(dev, ino, &sock_ino);
  if (r < 0) {
    ErrnoError(env, r, "sock_diag").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (r == 0) return env.Null();
  return Napi::BigInt::New(env, static_cast<uint64_t>(sock_ino));
}

// peerCredentials(fd) → { pid, uid, gid } of the other end of a connected unix socket.
Napi::Value Addon::PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(env, "fd must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  pid_t pid;
  uid_t uid;
  gid_t gid;
  int r = vfd::PeerCredentials(info[0].As<Napi::Number>().Int32Value(), &pid, &uid, &gid);
  if (r < 0) {
    ErrnoError(env, r, "getsockopt").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, pid));
  out.Set("uid", Napi::Number::New(env, uid));
  out.Set("gid", Napi::Number::New(env, gid));
  return out;
}

// chownToParent(path, dev, ino) → { uid, gid }
Napi::Value Addon::ChownToParent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  dev_t dev;
  ino_t ino;
  if (!GetString(info, 0, "path", &path) || !GetIdentity(info, 1, &dev, &ino)) return env.Undefined();
  uid_t uid;
  gid_t gid;
  PathProblem why;
  int err = vfd::ChownToParent(path, dev, ino, &uid, &gid, &why);
  if (err < 0) {
    ChownError(env, err, path, why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("uid", Napi::Number::New(env, uid));
  out.Set("gid", Napi::Number::New(env, gid));
  return out;
}

// unlinkSocket(path, dev, ino) → removed?
Napi::Value Addon::UnlinkSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  dev_t dev;
  ino_t ino;
  if (!GetString(info, 0, "path", &path) || !GetIdentity(info, 1, &dev, &ino)) return env.Undefined();
  int r = UnlinkSocketIfSame(path, dev, ino);
  // Handed back, whatever the outcome: an error here is JS's to act on, not teardown's.
  ReleaseSocketFile(dev, ino);
  if (r < 0) {
    ErrnoError(env, r, "unlink", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, r == 1);
}

// keepSocketFile(dev, ino): the file now belongs to a daemon that outlives this environment;
// teardown leaves it in place (unlinkSocket still removes it on a stop of ours).
Napi::Value Addon::KeepSocketFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  dev_t dev;
  ino_t ino;
  if (!GetIdentity(info, 0, &dev, &ino)) return env.Undefined();
  ReleaseSocketFile(dev, ino);
  return env.Undefined();
}

}  // namespace vfd
