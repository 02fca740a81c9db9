// SPDX-License-Identifier: Apache-2.0
/*
 * cgroup-standin: a virtiofsd stand-in for the cgroup tests.
 *
 * The very first thing it does is read its own /proc/self/cgroup, before it could have been
 * moved anywhere, and write it to $STANDIN_OUT (renamed into place once complete). Then, as
 * asked through the environment (its command line is virtiofsd's, and ignored):
 *   STANDIN_ESCAPE=1   fork a grandchild that calls setsid() - out of our process group and
 *                      session - and sleeps; once out, it writes its pid to $STANDIN_OUT.escaped
 *   STANDIN_BURN_MS=N  spin until it has used N ms of CPU time (for stats())
 * Then it prints virtiofsd's ready line on stderr and waits for a signal.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void write_file(const char *path, const char *data, size_t len) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0 || rename(tmp, path) < 0) {
    perror(path);
    exit(1);
  }
}

int main(void) {
  char cg[4096];
  ssize_t n = 0;
  int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) n = read(fd, cg, sizeof(cg));
  if (fd < 0 || n < 0) {
    perror("/proc/self/cgroup");
    return 1;
  }
  const char *out = getenv("STANDIN_OUT");
  if (out) write_file(out, cg, (size_t)n);

  if (getenv("STANDIN_ESCAPE")) {
    // The grandchild reports itself once it has left: a reader never sees it still in the group.
    pid_t pid = fork();
    if (pid == 0) {
      if (setsid() < 0 || !out) _exit(1);
      char path[4096], text[32];
      snprintf(path, sizeof(path), "%s.escaped", out);
      int len = snprintf(text, sizeof(text), "%d\n", (int)getpid());
      write_file(path, text, (size_t)len);
      for (;;) pause();
    }
    if (pid < 0) return 1;
  }

  const char *burn = getenv("STANDIN_BURN_MS");
  if (burn) {
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < atol(burn));
  }

  fprintf(stderr, "[INFO  virtiofsd] Waiting for vhost-user socket connection...\n");
  for (;;) pause();
}
