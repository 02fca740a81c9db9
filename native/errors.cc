#include "errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <new>

namespace vfd {

// Every Linux errno by its own name. Kept here rather than taken from the C library: glibc's
// strerrorname_np needs glibc 2.32 (newer than the glibc the prebuilds must load on) and musl has no
// such call; libuv's uv_err_name lacks some we report (ENOEXEC, ESTALE, ECHILD). The aliases
// EWOULDBLOCK, EDEADLOCK and ENOTSUP share a number with EAGAIN, EDEADLK and EOPNOTSUPP.
#define VFD_ERRNO_NAMES(X) \
  X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(ENOEXEC) X(EBADF) X(ECHILD) X(EAGAIN) X(ENOMEM) \
  X(EACCES) X(EFAULT) X(ENOTBLK) X(EBUSY) X(EEXIST) X(EXDEV) X(ENODEV) X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE) \
  X(EMFILE) X(ENOTTY) X(ETXTBSY) X(EFBIG) X(ENOSPC) X(ESPIPE) X(EROFS) X(EMLINK) X(EPIPE) X(EDOM) X(ERANGE) \
  X(EDEADLK) X(ENAMETOOLONG) X(ENOLCK) X(ENOSYS) X(ENOTEMPTY) X(ELOOP) X(ENOMSG) X(EIDRM) X(ECHRNG) X(EL2NSYNC) \
  X(EL3HLT) X(EL3RST) X(ELNRNG) X(EUNATCH) X(ENOCSI) X(EL2HLT) X(EBADE) X(EBADR) X(EXFULL) X(ENOANO) X(EBADRQC) \
  X(EBADSLT) X(EBFONT) X(ENOSTR) X(ENODATA) X(ETIME) X(ENOSR) X(ENONET) X(ENOPKG) X(EREMOTE) X(ENOLINK) X(EADV) \
  X(ESRMNT) X(ECOMM) X(EPROTO) X(EMULTIHOP) X(EDOTDOT) X(EBADMSG) X(EOVERFLOW) X(ENOTUNIQ) X(EBADFD) X(EREMCHG) \
  X(ELIBACC) X(ELIBBAD) X(ELIBSCN) X(ELIBMAX) X(ELIBEXEC) X(EILSEQ) X(ERESTART) X(ESTRPIPE) X(EUSERS) X(ENOTSOCK) \
  X(EDESTADDRREQ) X(EMSGSIZE) X(EPROTOTYPE) X(ENOPROTOOPT) X(EPROTONOSUPPORT) X(ESOCKTNOSUPPORT) X(EOPNOTSUPP) \
  X(EPFNOSUPPORT) X(EAFNOSUPPORT) X(EADDRINUSE) X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETUNREACH) X(ENETRESET) \
  X(ECONNABORTED) X(ECONNRESET) X(ENOBUFS) X(EISCONN) X(ENOTCONN) X(ESHUTDOWN) X(ETOOMANYREFS) X(ETIMEDOUT) \
  X(ECONNREFUSED) X(EHOSTDOWN) X(EHOSTUNREACH) X(EALREADY) X(EINPROGRESS) X(ESTALE) X(EUCLEAN) X(ENOTNAM) X(ENAVAIL) \
  X(EISNAM) X(EREMOTEIO) X(EDQUOT) X(ENOMEDIUM) X(EMEDIUMTYPE) X(ECANCELED) X(ENOKEY) X(EKEYEXPIRED) X(EKEYREVOKED) \
  X(EKEYREJECTED) X(EOWNERDEAD) X(ENOTRECOVERABLE) X(ERFKILL) X(EHWPOISON)

std::string ErrnoName(int neg_errno) {
  switch (-neg_errno) {
#define VFD_ERRNO_CASE(e) \
  case e:                 \
    return #e;
    VFD_ERRNO_NAMES(VFD_ERRNO_CASE)
#undef VFD_ERRNO_CASE
  }
  return "E" + std::to_string(-neg_errno);
}

std::string ErrnoText(int neg_errno) {
  // strerror is in every C library and every glibc; its text for a known errno is a constant string.
  return strerror(-neg_errno);
}

Napi::Error ErrnoError(Napi::Env env, int neg_errno, const char* syscall, const std::string& path,
                       const std::string& message) {
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

std::string Octal(mode_t mode) {
  char buf[8];
  snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

const char* FileType(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device node";
  if (S_ISSOCK(mode)) return "a socket";
  return "of an unknown type";
}

void RaiseUncaught(Napi::Env env) {
  if (!env.IsExceptionPending()) return;
  Napi::Error err = env.GetAndClearPendingException();
  napi_fatal_exception(env, err.Value());
}

}  // namespace vfd

#if defined(__GLIBCXX__)
// g++ >= 11 makes every std::vector call this for an impossible size, and takes it from
// libstdc++ 11 (GLIBCXX_3.4.29), newer than the libstdc++ Node's own binaries need (3.4.21).
// Defined here, the addon loads wherever Node does. Without C++ exceptions (-fno-exceptions)
// the library's version would end in std::terminate: abort says the same.
namespace std {
void __throw_bad_array_new_length() { abort(); }
}  // namespace std
#endif
