// SPDX-License-Identifier: Apache-2.0
/*
 * cgroup-kill-seq: starts one child in a cgroup v2 directory and reports whether it ran.
 *
 *   cgroup-kill-seq [--join DIR] [--via clone3|procs] TARGET
 *
 * --join DIR   first move this process into DIR (writes 0 to DIR/cgroup.procs): the spawner's
 *              own cgroup is what the kernel compares with (see below).
 * --via clone3 (default) clone3(CLONE_INTO_CGROUP) with an fd of TARGET: the child is created
 *              in TARGET. --via procs: fork(), and the child writes 0 to TARGET/cgroup.procs.
 *
 * The child's first instruction sets a flag in a MAP_SHARED page, then it exits 0. One line on
 * stdout: "via=clone3 ran=1 exit=0", or "via=clone3 ran=0 signal=9" for a child that the kernel
 * killed before it ran anything. Exit status 0 when it could report, 2 on a failed system call.
 *
 * Why: on Linux 6.18 (and every kernel with "cgroup: fix race between fork and cgroup.kill",
 * mainline b69bb476dee9, 6.14, backported to the stable series, 6.1/6.6/6.12 among them),
 * cgroup_css_set_fork() records kargs->kill_seq before it sets kargs->cgrp for
 * CLONE_INTO_CGROUP, so it records the SPAWNER's cgroup's kill_seq; cgroup_post_fork() compares
 * it with the TARGET's and SIGKILLs the child when they differ. Every write of 1 to cgroup.kill
 * increments kill_seq of that cgroup and of all its live descendants, so a cgroup that was ever
 * killed kills every child cloned into it by a process whose cgroup has another count - and a
 * spawner in a killed cgroup kills children into fresh ones. The cgroup.procs path goes through
 * the spawner's own cgroup, and survives.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

static int write_zero(const char *dir) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int ok = write(fd, "0", 1) == 1;
  close(fd);
  return ok ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *join = NULL, *via = "clone3", *target = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--join") && i + 1 < argc) join = argv[++i];
    else if (!strcmp(argv[i], "--via") && i + 1 < argc) via = argv[++i];
    else target = argv[i];
  }
  if (!target || (strcmp(via, "clone3") && strcmp(via, "procs"))) {
    fprintf(stderr, "usage: cgroup-kill-seq [--join DIR] [--via clone3|procs] TARGET\n");
    return 2;
  }
  if (join && write_zero(join) < 0) {
    perror(join);
    return 2;
  }
  volatile int *ran = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (ran == MAP_FAILED) {
    perror("mmap");
    return 2;
  }

  pid_t pid;
  if (!strcmp(via, "clone3")) {
    int dirfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
      perror(target);
      return 2;
    }
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)dirfd;
    pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) {
      *ran = 1;
      _exit(0);
    }
    close(dirfd);
  } else {
    pid = fork();
    if (pid == 0) {
      *ran = 1;
      _exit(write_zero(target) < 0 ? 3 : 0);
    }
  }
  if (pid < 0) {
    perror(via);
    return 2;
  }
  int status;
  if (waitpid(pid, &status, 0) < 0) {
    perror("waitpid");
    return 2;
  }
  if (WIFSIGNALED(status)) printf("via=%s ran=%d signal=%d\n", via, *ran, WTERMSIG(status));
  else printf("via=%s ran=%d exit=%d\n", via, *ran, WEXITSTATUS(status));
  return 0;
}
