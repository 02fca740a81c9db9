/* The tiny spawn target of bench/index.js (Table 1): exits 0 at once.
 *
 * scripts/build-helpers.js builds the ordinary C program below (build/helpers/true). For the
 * benchmark, bench/index.js builds it once more with -DBENCH_NOSTDLIB -nostdlib -static: no
 * libc and no dynamic loader, just _start → exit(0). Even a static glibc program spends
 * hundreds of µs in its start-up code on a VM (CPUID, which traps to the hypervisor, in
 * init_cpu_features), a cost that is the same for every spawner and only hides their
 * differences. */
#ifdef BENCH_NOSTDLIB
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\tmov $60, %eax\n\txor %edi, %edi\n\tsyscall\n");
#elif defined(__aarch64__)
__asm__(".globl _start\n_start:\n\tmov x0, #0\n\tmov x8, #93\n\tsvc #0\n");
#else
#error "no raw _start for this architecture; bench/index.js falls back to a libc build"
#endif
#else
int main(void) { return 0; }
#endif
