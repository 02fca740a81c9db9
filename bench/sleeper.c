/* The long-lived target of bench/index.js (Table 2): sleeps until a signal ends it.
 * PR_SET_PDEATHSIG: should the benchmark parent die without cleaning up, the kernel kills us
 * too, so that no sleeper is left behind.
 *
 * scripts/build-helpers.js builds the libc program below (build/helpers/sleeper);
 * bench/index.js builds it once more with -DBENCH_NOSTDLIB -nostdlib -static (raw system
 * calls, no libc start-up: see true.c), so that 1,000 children starting up do not compete
 * with the parent for the CPUs while it is being measured. */
#ifdef BENCH_NOSTDLIB
#if defined(__x86_64__)
#define NR_PRCTL 157
#define NR_GETPPID 110
#define NR_EXIT 60
#define NR_PAUSE 34
static long sys3(long n, long a, long b, long c) {
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}
#elif defined(__aarch64__)
#define NR_PRCTL 167
#define NR_GETPPID 173
#define NR_EXIT 93
#define NR_PPOLL 73
static long sys3(long n, long a, long b, long c) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  return x0;
}
#else
#error "no raw system calls for this architecture; bench/index.js falls back to a libc build"
#endif

__attribute__((noreturn, used)) static void start_c(void) {
  sys3(NR_PRCTL, 1 /* PR_SET_PDEATHSIG */, 9 /* SIGKILL */, 0);
  if (sys3(NR_GETPPID, 0, 0, 0) == 1) sys3(NR_EXIT, 1, 0, 0); /* the parent is already gone */
  for (;;) {
#ifdef NR_PAUSE
    sys3(NR_PAUSE, 0, 0, 0);
#else
    sys3(NR_PPOLL, 0, 0, 0); /* no fds, no timeout: sleeps until a signal */
#endif
  }
}

/* The entry point: align the stack as a call would have, then go to C. */
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\tand $-16, %rsp\n\tcall start_c\n");
#else
__asm__(".globl _start\n_start:\n\tbl start_c\n");
#endif

#else
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1; /* the parent is already gone */
  for (;;) pause();
}
#endif
