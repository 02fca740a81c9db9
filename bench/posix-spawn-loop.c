/* posix-spawn-loop COUNT RSS_MB TARGET [--stdin]
 *
 * The C reference of bench/index.js (Table 1): first grow our own RSS to about RSS_MB MiB
 * (malloc + memset, every page touched), then posix_spawn TARGET and waitpid() for it,
 * COUNT times, one at a time, timing each from before posix_spawn() until waitpid() returned.
 * The child gets what the Node spawners give theirs: /dev/null on 0, 1 and 2, a socket at 3,
 * nothing else.
 *
 * Prints one JSON line: {"rssKB":..., "samples_us":[...], "spawn_us":[...]}, the latter the
 * times until posix_spawn() returned (the child has exec'd by then: glibc uses CLONE_VFORK).
 * With --stdin: prints {"ready":true,"rssKB":...} once the memory is touched, then reads one
 * count per line from stdin and answers each with such a line (EOF or 0 ends), so that a
 * driver can interleave our rounds with other spawners while our memory stays touched. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static posix_spawn_file_actions_t actions;
static const char *target;

static void run(long count) {
  double *samples = malloc(sizeof(double) * (count > 0 ? count : 1));
  double *spawned = malloc(sizeof(double) * (count > 0 ? count : 1));
  char *argv[] = {(char *)target, NULL};
  for (long i = 0; i < count; i++) {
    pid_t pid;
    int status;
    double t0 = now_us();
    int err = posix_spawn(&pid, target, &actions, NULL, argv, environ);
    if (err) {
      fprintf(stderr, "posix-spawn-loop: posix_spawn %s: %s\n", target, strerror(err));
      exit(1);
    }
    spawned[i] = now_us() - t0;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        perror("posix-spawn-loop: waitpid");
        exit(1);
      }
    }
    samples[i] = now_us() - t0;
  }
  printf("{\"rssKB\":%ld,\"samples_us\":[", rss_kb());
  for (long i = 0; i < count; i++) printf("%s%.1f", i ? "," : "", samples[i]);
  printf("],\"spawn_us\":[");
  for (long i = 0; i < count; i++) printf("%s%.1f", i ? "," : "", spawned[i]);
  printf("]}\n");
  fflush(stdout);
  free(samples);
  free(spawned);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: posix-spawn-loop COUNT RSS_MB TARGET [--stdin]\n");
    return 2;
  }
  long count = atol(argv[1]);
  long rss_mb = atol(argv[2]);
  target = argv[3];
  int interactive = argc > 4 && strcmp(argv[4], "--stdin") == 0;

  long have_kb = rss_kb();
  long want = rss_mb * 1024 * 1024 - have_kb * 1024;
  if (want > 0) {
    char *mem = malloc(want);
    if (!mem) {
      fprintf(stderr, "posix-spawn-loop: cannot allocate %ld MiB\n", want >> 20);
      return 1;
    }
    memset(mem, 0x5a, want); /* touched, and kept: never freed */
  }

  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    perror("posix-spawn-loop: socket");
    return 1;
  }
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&actions, sock, 3);
  posix_spawn_file_actions_addclosefrom_np(&actions, 4);

  if (!interactive) {
    run(count);
    return 0;
  }
  printf("{\"ready\":true,\"rssKB\":%ld}\n", rss_kb());
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    long n = atol(line);
    if (n <= 0) break;
    run(n);
  }
  return 0;
}
