// The per-architecture entry of Clone3 (see clone3.h), in the manner of glibc's internal
// clone3.S. The child starts on a fresh stack with every register as the parent had it
// (except the return value), so fn and arg travel in registers the system call leaves alone.
// Nothing touches the stack between the system call and the call of fn: that memory is the
// parent's frame, shared under CLONE_VM.
#include "clone3.h"

#include <errno.h>

namespace vfd {

extern "C" long vfd_clone3_raw(CloneArgs* args, size_t size, int (*fn)(void*), void* arg);

#if defined(__x86_64__)
// rdi = args, rsi = size, rdx = fn, rcx = arg. The syscall instruction clobbers rcx and
// r11, so fn and arg move to r8 and r9 first. The kernel starts the child with rsp at the
// top of the 16-byte aligned stack: the call leaves it aligned as the ABI expects at entry.
asm(R"(
  .text
  .globl vfd_clone3_raw
  .hidden vfd_clone3_raw
  .type vfd_clone3_raw, @function
vfd_clone3_raw:
  .cfi_startproc
  mov %rdx, %r8
  mov %rcx, %r9
  mov $435, %eax
  syscall
  test %rax, %rax
  jz 1f
  ret
1:
  .cfi_undefined rip
  xor %ebp, %ebp
  mov %r9, %rdi
  call *%r8
  mov %eax, %edi
  mov $60, %eax
  syscall
  hlt
  .cfi_endproc
  .size vfd_clone3_raw, .-vfd_clone3_raw
)");
#define VFD_HAVE_CLONE3_ENTRY 1
#elif defined(__aarch64__)
// x0 = args, x1 = size, x2 = fn, x3 = arg. svc preserves every register but x0, so fn and
// arg wait in x10 and x11. The child's sp is the (16-byte aligned) top of its stack; the
// frame and link registers are cleared so that unwinders stop there.
asm(R"(
  .text
  .globl vfd_clone3_raw
  .hidden vfd_clone3_raw
  .type vfd_clone3_raw, %function
vfd_clone3_raw:
  .cfi_startproc
  mov x10, x2
  mov x11, x3
  mov x8, #435
  svc #0
  cbz x0, 1f
  ret
1:
  .cfi_undefined x30
  mov x29, xzr
  mov x30, xzr
  mov x0, x11
  blr x10
  mov x8, #93
  svc #0
  brk #0
  .cfi_endproc
  .size vfd_clone3_raw, .-vfd_clone3_raw
)");
#define VFD_HAVE_CLONE3_ENTRY 1
#endif

long Clone3(CloneArgs* args, int (*fn)(void*), void* arg) {
#ifdef VFD_HAVE_CLONE3_ENTRY
  return vfd_clone3_raw(args, sizeof(*args), fn, arg);
#else
  (void)args, (void)fn, (void)arg;
  return -ENOSYS;
#endif
}

}  // namespace vfd
