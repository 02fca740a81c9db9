/*
 * pid-reuser: hands a dead daemon's pid to a sentinel, for the PID-reuse case of
 * bench/reliability.js. It is the attacker a pid-number API loses to: the moment the pid is
 * free it is taken again, by a process that also leads a group of that number.
 *
 * Usage: pid-reuser <pid> <hold_ms> [wait_ms]
 *
 *   Prints "armed" on stdout, then waits (spinning, up to wait_ms, default 10000) until the
 *   number <pid> is free: no process has it as pid (reaped, not merely a zombie) nor as
 *   process group id. It then writes <pid>-1 to /proc/sys/kernel/ns_last_pid and forks, so the
 *   child gets <pid> unless another process on the machine took it first (then it gives up:
 *   "reused=0"; a fork that lost the number to a thread or a late group member is retried
 *   until wait_ms). The child (the sentinel)
 *   calls setpgid(0, 0), so both kill(pid) and kill(-pid) reach it, catches every catchable
 *   signal and lives for <hold_ms>. Output, one line each:
 *     "sentinel <pid_it_got>"                      as soon as it exists
 *     "result reused=<0|1> status=<s>"             once it ended, where <s> is
 *        exited:0           never signalled
 *        caught:<signo>     a catchable signal reached it
 *        signalled:<signo>  killed by an uncatchable one (SIGKILL)
 *   or "result timeout" when <pid> never went away.
 *
 * Needs root (ns_last_pid). Build: cc -O2 -Wall (scripts/build-helpers.js does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void on_signal(int sig)
{
    _exit(100 + sig);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sentinel(long hold_ms)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    for (int sig = 1; sig < 32; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &sa, NULL);
        }
    }
    setpgid(0, 0);
    long end = now_ms() + hold_ms;
    for (long left; (left = end - now_ms()) > 0;) {
        struct timespec ts = { left / 1000, (left % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pid-reuser <pid> <hold_ms> [wait_ms]\n");
        return 2;
    }
    pid_t target = (pid_t)atol(argv[1]);
    long hold_ms = atol(argv[2]);
    long wait_ms = argc > 3 ? atol(argv[3]) : 10000;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("armed\n");

    /* The number is free once no process has it as pid and none as process group id (a live
     * member of the daemon's group keeps it allocated). */
    long deadline = now_ms() + wait_ms;
    for (;;) {
        int gone = (kill(target, 0) < 0 && errno == ESRCH) && (kill(-target, 0) < 0 && errno == ESRCH);
        if (gone) {
            int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
            if (fd < 0) {
                printf("result error open ns_last_pid: %s\n", strerror(errno));
                return 1;
            }
            char buf[32];
            int n = snprintf(buf, sizeof buf, "%d", (int)target - 1);
            if (write(fd, buf, (size_t)n) != n) {
                printf("result error write ns_last_pid: %s\n", strerror(errno));
                return 1;
            }
            close(fd);
            pid_t child = fork();
            if (child < 0) {
                printf("result error fork: %s\n", strerror(errno));
                return 1;
            }
            if (child == 0) {
                if (getpid() != target) {
                    _exit(0);
                }
                sentinel(hold_ms);
            }
            if (child == target) {
                printf("sentinel %d\n", (int)child);
                int st;
                while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
                }
                if (WIFSIGNALED(st)) {
                    printf("result reused=1 status=signalled:%d\n", WTERMSIG(st));
                } else if (WEXITSTATUS(st) >= 100) {
                    printf("result reused=1 status=caught:%d\n", WEXITSTATUS(st) - 100);
                } else {
                    printf("result reused=1 status=exited:%d\n", WEXITSTATUS(st));
                }
                return 0;
            }
            waitpid(child, NULL, 0);
            if (kill(target, 0) == 0) {
                break; /* another process on the machine took it first: no reuse this time */
            }
        }
        if (now_ms() > deadline) {
            printf("result timeout\n");
            return 0;
        }
        sched_yield();
    }
    printf("sentinel 0\nresult reused=0 status=none\n");
    return 0;
}
