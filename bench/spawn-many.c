/* spawn-many COUNT TARGET
 *
 * The C reference of bench/index.js (Table 2): posix_spawn COUNT copies of TARGET (a program
 * that pause()s; /dev/null on 0, 1 and 2), then SIGKILL them all and waitpid() until the last
 * one is reaped. Prints one JSON line with the start and reap times and what our RSS, fd count
 * and thread count were before and after the start, and the median time of one posix_spawn()
 * among the first 100 and the last 100. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long status_field(const char *name) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  size_t len = strlen(name);
  long v = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, name, len) == 0 && line[len] == ':') {
      v = atol(line + len + 1);
      break;
    }
  }
  fclose(f);
  return v;
}

static int fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  if (!d) return -1;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median of n values starting at v (v is reordered). */
static double median(double *v, long n) {
  if (n <= 0) return -1;
  qsort(v, n, sizeof(double), cmp_double);
  return v[n / 2];
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: spawn-many COUNT TARGET\n");
    return 2;
  }
  long count = atol(argv[1]);
  const char *target = argv[2];
  pid_t *pids = calloc(count, sizeof(pid_t));
  double *took_us = calloc(count, sizeof(double));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  char *cargv[] = {(char *)target, NULL};

  long rss0 = status_field("VmRSS"), thr0 = status_field("Threads");
  int fds0 = fd_count();
  double t0 = now_ms();
  for (long i = 0; i < count; i++) {
    double ts = now_ms();
    int err = posix_spawn(&pids[i], target, &actions, NULL, cargv, environ);
    took_us[i] = (now_ms() - ts) * 1e3;
    if (err) {
      fprintf(stderr, "spawn-many: posix_spawn %s: %s\n", target, strerror(err));
      for (long j = 0; j < i; j++) kill(pids[j], SIGKILL);
      return 1;
    }
  }
  double t1 = now_ms();
  long rss1 = status_field("VmRSS"), thr1 = status_field("Threads");
  int fds1 = fd_count();

  double t2 = now_ms();
  for (long i = 0; i < count; i++) kill(pids[i], SIGKILL);
  for (long left = count; left > 0;) {
    if (waitpid(-1, NULL, 0) > 0) left--;
    else if (errno == ECHILD) break;
  }
  double t3 = now_ms();
  long edge = count < 100 ? count : 100;
  double first = median(took_us, edge);
  double last = median(took_us + count - edge, edge);

  printf("{\"count\":%ld,\"startMs\":%.3f,\"reapMs\":%.3f,\"rssBeforeKB\":%ld,\"rssAfterKB\":%ld,"
         "\"fdsBefore\":%d,\"fdsAfter\":%d,\"threadsBefore\":%ld,\"threadsAfter\":%ld,\"first100Us\":%.1f,\"last100Us\":%.1f}\n",
         count, t1 - t0, t3 - t2, rss0, rss1, fds0, fds1, thr0, thr1, first, last);
  return 0;
}
