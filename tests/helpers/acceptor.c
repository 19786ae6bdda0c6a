/* A tiny socket-activated server for tests/upgrade/ and tests/tree/:
 * accept connections on fd 3 (a listening socket passed in by cairn)
 * forever, answer each with "ok\n" and close it. With the argument
 * "graceful", SIGTERM ends it once the connection in hand is answered.
 * Built statically at test time, so it runs in the busybox image, which
 * has no libc. */
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_term(int sig) {
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv) {
    static const char msg[] = "ok\n";
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "graceful") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term; /* no SA_RESTART: accept returns EINTR */
        sigaction(SIGTERM, &sa, 0);
    }
    for (;;) {
        if (stopping)
            return 0;
        int c = accept(3, 0, 0);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            return 1; /* fd 3 is not a listening socket */
        }
        size_t off = 0;
        while (off < sizeof msg - 1) {
            ssize_t n = write(c, msg + off, sizeof msg - 1 - off);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            off += (size_t)n;
        }
        close(c);
    }
}
