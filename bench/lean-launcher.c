/* lean-launcher: the limit for bench/density.js - what starting a virtiofsd takes in plain C.
 *
 * Per daemon: socket + bind + listen on a unix socket, posix_spawn of the daemon in a process
 * group of its own with /dev/null on 0 and 1, a pipe on 2 and the listening socket at fd 3
 * (every signal at its default, an empty mask), then read its stderr until the line that holds
 * "Waiting for vhost-user socket connection". Nothing else: no checks, no logging.
 *
 *   lean-launcher serve [--rss-mb M] -- DAEMON ARGS...
 *       One start per line "SOCKET_PATH" on stdin; answers "READY_US\n" (from before socket()
 *       until the ready line was read), then kills the group, reaps the daemon, waits until
 *       no live process of its group is left and removes the socket (untimed).
 *   lean-launcher storm N SOCKET_DIR [--rss-mb M] -- DAEMON ARGS...
 *       Starts N daemons at once (one epoll over every stderr pipe) and prints
 *       "ready_ms cpu_ms rss_kb"; then reads (and drops) their stderr until a line on stdin,
 *       prints "rss_kb fds", kills every group, reaps every daemon, waits until no live
 *       process of any group is left, removes the sockets and prints "stop_ms cpu_ms".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MARKER "Waiting for vhost-user socket connection"

static char **daemon_argv;

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static double cpu_ms(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e3 + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e3;
}

static long status_kb(const char *field) {
  char buf[4096];
  FILE *f = fopen("/proc/self/status", "r");
  long v = -1;
  while (f && fgets(buf, sizeof(buf), f)) {
    if (strncmp(buf, field, strlen(field)) == 0) v = atol(buf + strlen(field) + 1);
  }
  if (f) fclose(f);
  return v;
}

static int fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  while (d && readdir(d)) n++;
  if (d) closedir(d);
  return n - 3; /* ".", ".." and the dir's own fd */
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

struct daemon {
  pid_t pid;
  int err;  /* our end of its stderr pipe */
  int ready;
  size_t used;
  char line[512];
  char path[108];
};

/* Listen at path and spawn the daemon with the socket at fd 3 and a stderr pipe. */
static void start(struct daemon *d, const char *path) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
  snprintf(d->path, sizeof(d->path), "%s", path);
  unlink(path);
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 128) < 0) die("listen");
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) die("pipe2");
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  posix_spawn_file_actions_adddup2(&fa, s, 3);
  posix_spawnattr_init(&at);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setsigmask(&at, &none);
  int e = posix_spawn(&d->pid, daemon_argv[0], &fa, &at, daemon_argv, environ);
  if (e) {
    errno = e;
    die("posix_spawn");
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(p[1]);
  close(s);
  d->err = p[0];
  d->ready = 0;
  d->used = 0;
}

/* Read what is there; 1 once the ready line has been seen, -1 at EOF. */
static int consume(struct daemon *d) {
  char buf[4096];
  ssize_t n = read(d->err, buf, sizeof(buf));
  if (n == 0) return -1;
  if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
  for (ssize_t i = 0; i < n; i++) {
    if (buf[i] == '\n') {
      d->line[d->used] = '\0';
      if (!d->ready && strstr(d->line, MARKER)) d->ready = 1;
      d->used = 0;
    } else if (d->used < sizeof(d->line) - 1) {
      d->line[d->used++] = buf[i];
    }
  }
  return d->ready;
}

/* 1 while a non-zombie process of one of the groups lives: one /proc walk for all. */
static int any_group_alive(struct daemon *ds, int n) {
  DIR *dir = opendir("/proc");
  struct dirent *e;
  int alive = 0;
  while (!alive && dir && (e = readdir(dir))) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0) continue;
    buf[len] = '\0';
    char *p = strrchr(buf, ')'), state;
    int ppid, pgrp;
    if (!p || sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) != 3 || state == 'Z' || state == 'X') continue;
    for (int i = 0; i < n; i++) {
      if (ds[i].pid == pgrp) alive = 1;
    }
  }
  if (dir) closedir(dir);
  return alive;
}

static void stop_all(struct daemon *ds, int n) {
  for (int i = 0; i < n; i++) kill(-ds[i].pid, SIGKILL);
  for (int i = 0; i < n; i++) {
    while (waitpid(ds[i].pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  int unsure = 0;
  for (int i = 0; i < n; i++) {
    if (!(kill(-ds[i].pid, 0) < 0 && errno == ESRCH)) unsure = 1;
  }
  double deadline = now_us() + 5e6;
  while (unsure && any_group_alive(ds, n) && now_us() < deadline) usleep(1000);
  for (int i = 0; i < n; i++) {
    close(ds[i].err);
    unlink(ds[i].path);
  }
}

static void ballast(long mb) {
  if (mb <= 0) return;
  char *p = malloc((size_t)mb << 20);
  if (!p) die("malloc");
  memset(p, 1, (size_t)mb << 20);
}

static int serve(void) {
  char path[256];
  while (fgets(path, sizeof(path), stdin)) {
    path[strcspn(path, "\n")] = '\0';
    struct daemon d;
    double t0 = now_us();
    start(&d, path);
    while (consume(&d) == 0) {
      struct pollfd pfd = {.fd = d.err, .events = POLLIN};
      poll(&pfd, 1, -1);
    }
    double t1 = now_us();
    if (!d.ready) {
      fprintf(stderr, "lean-launcher: daemon exited before it was ready\n");
      return 1;
    }
    stop_all(&d, 1);
    printf("%.1f\n", t1 - t0);
    fflush(stdout);
  }
  return 0;
}

static int storm(int n, const char *dir) {
  struct daemon *ds = calloc((size_t)n, sizeof(*ds));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  double t0 = now_us(), c0 = cpu_ms();
  for (int i = 0; i < n; i++) {
    char path[256];
    snprintf(path, sizeof(path), "%s/c%d.sock", dir, i);
    start(&ds[i], path);
    fcntl(ds[i].err, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ds[i].err, &ev) < 0) die("epoll_ctl");
  }
  int ready = 0;
  struct epoll_event evs[256];
  while (ready < n) {
    int k = epoll_wait(ep, evs, 256, 10000);
    if (k <= 0) {
      fprintf(stderr, "lean-launcher: only %d of %d ready\n", ready, n);
      return 1;
    }
    for (int j = 0; j < k; j++) {
      struct daemon *d = &ds[evs[j].data.u32];
      int was = d->ready;
      int r = consume(d);
      if (r < 0) {
        fprintf(stderr, "lean-launcher: daemon %d exited before it was ready\n", (int)d->pid);
        return 1;
      }
      if (!was && d->ready) ready++;
    }
  }
  printf("%.1f %.1f %ld\n", (now_us() - t0) / 1e3, cpu_ms() - c0, status_kb("VmHWM"));
  fflush(stdout);
  /* Running: keep reading every pipe until told to stop. */
  struct pollfd in = {.fd = 0, .events = POLLIN};
  for (;;) {
    if (poll(&in, 1, 0) > 0) break;
    int k = epoll_wait(ep, evs, 256, 50);
    for (int j = 0; j < k; j++) consume(&ds[evs[j].data.u32]);
  }
  printf("%ld %d\n", status_kb("VmRSS"), fd_count());
  fflush(stdout);
  double s0 = now_us(), sc0 = cpu_ms();
  stop_all(ds, n);
  printf("%.1f %.1f\n", (now_us() - s0) / 1e3, cpu_ms() - sc0);
  return 0;
}

int main(int argc, char **argv) {
  int dash = 0;
  long rss_mb = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      dash = i;
      break;
    }
    if (strcmp(argv[i], "--rss-mb") == 0 && i + 1 < argc) rss_mb = atol(argv[++i]);
  }
  if (!dash || dash + 1 >= argc) {
    fprintf(stderr, "usage: lean-launcher serve|storm N DIR [--rss-mb M] -- DAEMON ARGS...\n");
    return 2;
  }
  daemon_argv = argv + dash + 1;
  signal(SIGPIPE, SIG_IGN);
  ballast(rss_mb);
  if (strcmp(argv[1], "serve") == 0) return serve();
  if (strcmp(argv[1], "storm") == 0 && argc > 3) return storm(atoi(argv[2]), argv[3]);
  fprintf(stderr, "lean-launcher: unknown mode %s\n", argv[1]);
  return 2;
}
