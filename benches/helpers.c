/*
 * Static workload helpers for the cairn benchmark harness (benches/run).
 * Built once per run by benches/run with:  cc -static -O2 -DROLE_<X> -o <name> helpers.c
 *
 *   ROLE_PAUSE  (wl_pause): write "S <ns> <pid>\n" to $BH_LOG, then pause() forever.
 *   ROLE_EXIT   (wl_exit):  write "S <ns> <pid>\n", sleep $BH_SLEEP_MS milliseconds,
 *                           write "E <ns> <pid>\n", then _exit(1). If $BH_NOTIFY_FD is set,
 *                           a newline is written to that fd right after "S" (s6 readiness).
 *   ROLE_STAMP  (stampexec): write "L <ns>\n" to $BH_LOG, then execvp(argv[1], argv+1).
 *
 * <ns> is CLOCK_MONOTONIC in nanoseconds (the same clock in every pid namespace).
 * $BH_LOG is a path, opened O_WRONLY|O_APPEND|O_CREAT for each line, so concurrent writers
 * never interleave a line. BH_LOG=- writes the line to fd 1 instead; under cairn fd 1 of a
 * workload is the sandbox stdio log, which cairn opens with O_APPEND, so a container needs
 * no volume to report its stamps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

__attribute__((unused)) static void stamp(char tag, int with_pid) {
  long long t = now_ns();
  const char *where = getenv("BH_LOG");
  char line[80];
  int len = with_pid ? snprintf(line, sizeof line, "%c %lld %d\n", tag, t, (int)getpid())
                     : snprintf(line, sizeof line, "%c %lld\n", tag, t);
  if (where == NULL || *where == '\0') return;
  int fd, own = 0;
  if (strcmp(where, "-") == 0) {
    fd = 1;
  } else {
    fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    own = 1;
  }
  ssize_t w;
  do { w = write(fd, line, (size_t)len); } while (w < 0 && errno == EINTR);
  if (own) close(fd);
}

int main(int argc, char **argv) {
#if defined(ROLE_PAUSE)
  (void)argc; (void)argv;
  stamp('S', 1);
  for (;;) pause();
#elif defined(ROLE_EXIT)
  (void)argc; (void)argv;
  stamp('S', 1);
  const char *nfd = getenv("BH_NOTIFY_FD");
  if (nfd && *nfd) {
    int fd = atoi(nfd);
    ssize_t w = write(fd, "\n", 1);
    (void)w;
    close(fd);
  }
  const char *ms = getenv("BH_SLEEP_MS");
  long v = ms ? atol(ms) : 0;
  if (v > 0) {
    struct timespec left = {v / 1000, (v % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {}
  }
  stamp('E', 1);
  _exit(1);
#elif defined(ROLE_STAMP)
  if (argc < 2) {
    fputs("usage: stampexec PROGRAM [ARG...]  (stamps L to $BH_LOG, then execs)\n", stderr);
    return 2;
  }
  stamp('L', 0);
  execvp(argv[1], argv + 1);
  perror("stampexec: execvp");
  return 127;
#else
#error "build with one of -DROLE_PAUSE -DROLE_EXIT -DROLE_STAMP"
#endif
}
