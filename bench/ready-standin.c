/* ready-standin: the daemon of bench/density.js's one-start table: prints virtiofsd's ready
 * line on stderr and waits for a signal.
 *
 * bench/density.js builds it with -DBENCH_NOSTDLIB -nostdlib -static (no libc, no loader:
 * _start → write → pause), so that the time measured is the launcher's, not the daemon's
 * start-up. The libc build (scripts/build-helpers.js) also ticks: with $STANDIN_TICK_MS it
 * logs a line every that many ms, as a busy daemon would (the boot storm's steady state). */
#ifdef BENCH_NOSTDLIB
#if defined(__x86_64__)
__asm__(
    ".globl _start\n_start:\n"
    "\tmov $1, %eax\n\tmov $2, %edi\n\tlea msg(%rip), %rsi\n\tmov $len, %edx\n\tsyscall\n"
    "1:\tmov $34, %eax\n\tsyscall\n\tjmp 1b\n"
    "msg:\t.ascii \"[INFO  virtiofsd] Waiting for vhost-user socket connection...\\n\"\n"
    "\t.set len, . - msg\n");
#elif defined(__aarch64__)
__asm__(
    ".globl _start\n_start:\n"
    "\tmov x0, #2\n\tadr x1, msg\n\tmov x2, #(msgend - msg)\n\tmov x8, #64\n\tsvc #0\n"
    "1:\tmov x0, #0\n\tmov x1, #0\n\tmov x2, #0\n\tmov x3, #0\n\tmov x8, #73\n\tsvc #0\n\tb 1b\n"
    "msg:\t.ascii \"[INFO  virtiofsd] Waiting for vhost-user socket connection...\\n\"\nmsgend:\n");
#else
#error "no raw _start for this architecture"
#endif
#else
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
  fprintf(stderr, "[INFO  virtiofsd] Waiting for vhost-user socket connection...\n");
  const char *tick = getenv("STANDIN_TICK_MS");
  long ms = tick ? atol(tick) : 0;
  for (unsigned long n = 1;; n++) {
    if (ms <= 0) {
      pause();
      continue;
    }
    usleep((useconds_t)ms * 1000);
    fprintf(stderr, "[INFO  virtiofsd] tick %lu\n", n);
  }
}
#endif
