/* clear-nonblock PROGRAM [ARG...]: clear O_NONBLOCK on fd 3, then exec PROGRAM.
 *
 * The "made to work" baseline of bench/index.js (Table 3): a listening socket made by Node's
 * net.Server is O_NONBLOCK, and Node has no fcntl(), but the legacy virtiofsd calls accept()
 * on the --fd socket expecting it to block (it exits with EAGAIN otherwise). O_NONBLOCK is a
 * flag of the open file description, so clearing it here clears it for every copy of the fd. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: clear-nonblock PROGRAM [ARG...]\n");
    return 2;
  }
  int fl = fcntl(3, F_GETFL);
  if (fl < 0 || fcntl(3, F_SETFL, fl & ~O_NONBLOCK) < 0) {
    fprintf(stderr, "clear-nonblock: fd 3: %s\n", strerror(errno));
    return 127;
  }
  execv(argv[1], argv + 1);
  fprintf(stderr, "clear-nonblock: exec %s: %s\n", argv[1], strerror(errno));
  return 127;
}
