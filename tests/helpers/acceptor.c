/* A tiny socket-activated server for tests/upgrade/: accept connections
 * on fd 3 (a listening socket passed in by cairn) forever, answer each with
 * "ok\n" and close it. Built statically at test time, so it runs in the
 * busybox image, which has no libc. */
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    static const char msg[] = "ok\n";
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
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
