/* A tiny sd_notify client for tests/tree/notify.rs (busybox has no
 * systemd-notify): each argument is a step, run in order, then it sleeps
 * forever (a sender that stays alive can have its credentials checked).
 *   sleep:MS   wait MS milliseconds
 *   ping:MS    send WATCHDOG=1 every MS milliseconds, forever
 *   TEXT       send TEXT (one datagram) to $NOTIFY_SOCKET
 * Failures to send are reported on stderr and do not stop it. Built
 * statically at test time, so it runs in the busybox image. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void say(int fd, const struct sockaddr_un *to, const char *text) {
    if (sendto(fd, text, strlen(text), MSG_NOSIGNAL, (const struct sockaddr *)to,
               sizeof *to) < 0)
        fprintf(stderr, "notifier: sendto %s: %s\n", to->sun_path, strerror(errno));
}

int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un to;
    int fd, i;
    if (!path || strlen(path) >= sizeof to.sun_path) {
        fprintf(stderr, "notifier: no usable NOTIFY_SOCKET\n");
        return 2;
    }
    memset(&to, 0, sizeof to);
    to.sun_family = AF_UNIX;
    strcpy(to.sun_path, path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("notifier: socket");
        return 2;
    }
    for (i = 1; i < argc; i++) {
        if (strncmp(argv[i], "sleep:", 6) == 0) {
            nap(atol(argv[i] + 6));
        } else if (strncmp(argv[i], "ping:", 5) == 0) {
            long ms = atol(argv[i] + 5);
            for (;;) {
                say(fd, &to, "WATCHDOG=1");
                nap(ms);
            }
        } else {
            say(fd, &to, argv[i]);
        }
    }
    for (;;)
        pause();
}
