// SPDX-License-Identifier: Apache-2.0
/*
 * probe: the daemon stand-in of the native tests.
 *
 * It reports what it inherited (pid, process group, every open fd, the signal mask and
 * ignored signals, fd 3 as a socket, environment, cwd) as one JSON object, then acts as
 * its command line asks. The report is built before anything else is opened, so the fd
 * list is exactly the table exec gave us.
 *
 *   probe [--out PATH] [--fork-child] [--write-stderr TEXT] [--ignore SIG]...
 *         [--sleep MS] [--kill-self SIG] [--segv] [--wait] [--exit N]
 *
 * The actions run in that order, whatever their order on the command line. Without --out
 * the report goes to stdout; with it, to PATH.tmp, renamed to PATH once complete, so a
 * reader that sees PATH sees all of it. Exit code 0 unless --exit says otherwise;
 * 2 on a usage error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A probe left waiting by a crashed test ends itself (by SIGALRM) after this long. */
#define WAIT_LIMIT_S 300

#define bail(...)                                                                          \
  do {                                                                                     \
    fprintf(stderr, "probe: " __VA_ARGS__);                                                \
    fputc('\n', stderr);                                                                   \
    exit(2);                                                                               \
  } while (0)

struct options {
  const char *out;
  const char *write_stderr;
  sigset_t ignore;
  long exit_code;
  long sleep_ms;
  int kill_self;
  bool fork_child;
  bool segv;
  bool wait;
};

/* Write s as a JSON string: quoted, with quotes, backslashes and control bytes escaped. */
static void json_str(FILE *f, const char *s, size_t len) {
  fputc('"', f);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

/* A signal given as a number or a name, with or without "SIG" ("15", "TERM", "SIGTERM"). */
static int parse_signal(const char *arg) {
  static const struct { const char *name; int signo; } names[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
      {"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
      {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"CHLD", SIGCHLD},
      {"XFSZ", SIGXFSZ},
  };
  char *end;
  long n = strtol(arg, &end, 10);
  if (*arg && !*end && n > 0 && n < NSIG) return (int)n;
  if (!strncmp(arg, "SIG", 3)) arg += 3;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(arg, names[i].name)) return names[i].signo;
  bail("unknown signal '%s'", arg);
}

/* A whole decimal number at least min; anything else is a usage error. */
static long parse_long(const char *opt, const char *arg, long min) {
  char *end;
  errno = 0;
  long n = strtol(arg, &end, 10);
  if (!*arg || *end || errno || n < min) bail("%s: bad number '%s'", opt, arg);
  return n;
}

/* Fill o from argv; every option that takes a value must have one. */
static void parse_args(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof *o);
  sigemptyset(&o->ignore);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (!strcmp(a, "--fork-child")) o->fork_child = true;
    else if (!strcmp(a, "--segv")) o->segv = true;
    else if (!strcmp(a, "--wait")) o->wait = true;
    else if (!has_value) bail("unknown option or missing value: %s", a);
    else if (!strcmp(a, "--out")) o->out = argv[++i];
    else if (!strcmp(a, "--write-stderr")) o->write_stderr = argv[++i];
    else if (!strcmp(a, "--exit")) o->exit_code = parse_long(a, argv[++i], 0);
    else if (!strcmp(a, "--sleep")) o->sleep_ms = parse_long(a, argv[++i], 0);
    else if (!strcmp(a, "--kill-self")) o->kill_self = parse_signal(argv[++i]);
    else if (!strcmp(a, "--ignore")) sigaddset(&o->ignore, parse_signal(argv[++i]));
    else bail("unknown option: %s", a);
  }
}

/* The file type of st as the report names it. */
static const char *fd_type(const struct stat *st) {
  if (S_ISSOCK(st->st_mode)) return "socket";
  if (S_ISFIFO(st->st_mode)) return "pipe";
  if (S_ISREG(st->st_mode)) return "file";
  if (S_ISCHR(st->st_mode)) return "chr";
  if (S_ISDIR(st->st_mode)) return "dir";
  return "other";
}

/*
 * Write "fds": every entry of /proc/self/fd but the directory's own fd, in the order the
 * kernel lists them (ascending), each with its type, inode and close-on-exec bit.
 */
static void report_fds(FILE *f) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) bail("opendir /proc/self/fd: %s", strerror(errno));
  fputs("\"fds\":[", f);
  const char *sep = "";
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    struct stat st;
    if (fd == dirfd(d) || fstat(fd, &st) < 0) continue;
    int fdflags = fcntl(fd, F_GETFD);
    fprintf(f, "%s{\"fd\":%d,\"type\":\"%s\",\"inode\":%llu,\"cloexec\":%d}", sep, fd,
            fd_type(&st), (unsigned long long)st.st_ino, (fdflags & FD_CLOEXEC) ? 1 : 0);
    sep = ",";
  }
  closedir(d);
  fputs("]", f);
}

/* Write "fd3": null when fd 3 is closed, else its flags and, if a socket, what kind. */
static void report_fd3(FILE *f) {
  int flags = fcntl(3, F_GETFL);
  if (flags < 0) {
    fputs("\"fd3\":null", f);
    return;
  }
  fprintf(f, "\"fd3\":{\"flags\":%d,\"nonblock\":%d", flags, (flags & O_NONBLOCK) ? 1 : 0);
  int accept_conn = -1, so_type = -1;
  socklen_t len = sizeof accept_conn;
  if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &accept_conn, &len) < 0) accept_conn = -1;
  len = sizeof so_type;
  if (getsockopt(3, SOL_SOCKET, SO_TYPE, &so_type, &len) < 0) so_type = -1;
  fprintf(f, ",\"acceptConn\":%d,\"soType\":%d,\"sockName\":", accept_conn, so_type);
  struct sockaddr_un sun;
  len = sizeof sun;
  memset(&sun, 0, sizeof sun);
  if (getsockname(3, (struct sockaddr *)&sun, &len) == 0 && sun.sun_family == AF_UNIX &&
      len > offsetof(struct sockaddr_un, sun_path)) {
    /* An abstract name starts with a NUL and is not terminated; a path is. */
    size_t n = len - offsetof(struct sockaddr_un, sun_path);
    if (sun.sun_path[0]) n = strnlen(sun.sun_path, n);
    json_str(f, sun.sun_path, n);
  } else {
    fputs("null", f);
  }
  fputs("}", f);
}

/* Write "sigBlk" and "sigIgn": the hex masks as /proc/self/status shows them. */
static void report_signals(FILE *f) {
  FILE *st = fopen("/proc/self/status", "re");
  if (!st) bail("open /proc/self/status: %s", strerror(errno));
  char line[256], blk[64] = "", ign[64] = "";
  while (fgets(line, sizeof line, st)) {
    sscanf(line, "SigBlk: %63s", blk);
    sscanf(line, "SigIgn: %63s", ign);
  }
  fclose(st);
  fprintf(f, "\"sigBlk\":\"%s\",\"sigIgn\":\"%s\"", blk, ign);
}

/*
 * Build the whole report in memory. Called first thing, before any fd of ours is open,
 * except that the grandchild (if any) already exists, so its pid can be included.
 */
static char *build_report(pid_t grandchild, size_t *size) {
  char *buf;
  FILE *f = open_memstream(&buf, size);
  if (!f) bail("open_memstream: %s", strerror(errno));
  fprintf(f, "{\"pid\":%d,\"ppid\":%d,\"pgid\":%d,", (int)getpid(), (int)getppid(), (int)getpgrp());
  report_fds(f);
  fputc(',', f);
  report_fd3(f);
  fputc(',', f);
  report_signals(f);
  fputs(",\"env\":[", f);
  for (char **e = environ; *e; e++) {
    if (e != environ) fputc(',', f);
    json_str(f, *e, strlen(*e));
  }
  fputs("],\"cwd\":", f);
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd)) json_str(f, cwd, strlen(cwd));
  else fputs("null", f);
  if (grandchild > 0) fprintf(f, ",\"grandchild\":%d", (int)grandchild);
  fputs("}\n", f);
  if (fclose(f)) bail("building the report: %s", strerror(errno));
  return buf;
}

/* Write all of buf to fd; false (errno set) if that fails. */
static bool write_all(int fd, const char *buf, size_t n) {
  while (n) {
    ssize_t w = write(fd, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    buf += w;
    n -= (size_t)w;
  }
  return true;
}

/* Put the report where it was asked for: PATH via PATH.tmp and rename, or stdout. */
static void emit_report(const char *out, const char *buf, size_t n) {
  if (!out) {
    /* stdout may be closed or /dev/null: the tests that read the report pass --out. */
    write_all(STDOUT_FILENO, buf, n);
    return;
  }
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp) bail("--out path too long");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) bail("open %s: %s", tmp, strerror(errno));
  if (!write_all(fd, buf, n) || close(fd) < 0) bail("write %s: %s", tmp, strerror(errno));
  if (rename(tmp, out) < 0) bail("rename %s: %s", tmp, strerror(errno));
}

/*
 * Fork a grandchild that stays in our process group with no fds open (so it holds no
 * pipe of the test open) and sleeps until a signal ends it, WAIT_LIMIT_S at most.
 */
static pid_t fork_grandchild(void) {
  pid_t pid = fork();
  if (pid < 0) bail("fork: %s", strerror(errno));
  if (pid > 0) return pid;
  if (syscall(SYS_close_range, 0U, ~0U, 0U) < 0)
    for (int fd = 0; fd < 1024; fd++) close(fd);
  alarm(WAIT_LIMIT_S);
  for (;;) pause();
}

/* Sleep ms milliseconds, resuming after signals that did not end us. */
static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Report first, then act: the order of the actions is fixed (see the header comment). */
int main(int argc, char **argv) {
  struct options o;
  parse_args(argc, argv, &o);

  pid_t grandchild = o.fork_child ? fork_grandchild() : 0;
  size_t size;
  char *report = build_report(grandchild, &size);
  emit_report(o.out, report, size);
  free(report);

  if (o.write_stderr) {
    write_all(STDERR_FILENO, o.write_stderr, strlen(o.write_stderr));
  }
  for (int sig = 1; sig < NSIG; sig++)
    if (sigismember(&o.ignore, sig) == 1) signal(sig, SIG_IGN);
  if (o.sleep_ms) sleep_ms(o.sleep_ms);
  if (o.kill_self) raise(o.kill_self);
  if (o.segv) {
    /* No core file: the tests run in directories they remove, or in the repository. */
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    raise(SIGSEGV);
  }
  if (o.wait) {
    alarm(WAIT_LIMIT_S);
    for (;;) pause();
  }
  return (int)o.exit_code;
}
