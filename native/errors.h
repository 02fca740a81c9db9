// JavaScript errors for failed system calls, shaped like Node's own:
// { message, code: 'ENOENT', errno: -2, syscall, path }, and the words their messages share. The
// entry points word what an errno means for their own call (addon_*.cc) and shape it here.
#ifndef VFD_ERRORS_H_
#define VFD_ERRORS_H_

#include <napi.h>
#include <sys/types.h>

#include <string>

namespace vfd {

// The errno's name ("ENOENT") and description ("No such file or directory").
std::string ErrnoName(int neg_errno);
std::string ErrnoText(int neg_errno);

// After calling JS from a libuv callback: an exception it left pending becomes the process's
// uncaught exception, as for a callback Node itself calls from the loop. Call it last: the
// process may end in it.
void RaiseUncaught(Napi::Env env);

// `neg_errno` is a negative errno. `message` replaces the default text
// ("<syscall> <CODE>: <strerror> '<path>'") when it is not empty.
Napi::Error ErrnoError(Napi::Env env, int neg_errno, const char* syscall, const std::string& path = "",
                       const std::string& message = "");

// The words messages use for what they found: a mode's permission bits in octal ("0755"), and a
// file type with its article ("a directory").
std::string Octal(mode_t mode);
const char* FileType(mode_t mode);

}  // namespace vfd

#endif  // VFD_ERRORS_H_
