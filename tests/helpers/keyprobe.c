/* Probe for the keyring tests: what a workload can reach through the
 * session keyring it inherited.
 *
 *   keyprobe               print "session=<description>" of @s, then
 *                          "secret=<payload>" if a user key called
 *                          "cairn-test-secret" can be found, else
 *                          "secret=none"
 *   keyprobe put VALUE     add user key "cairn-test-channel" = VALUE to @s
 *   keyprobe get           print "channel=<payload>" or "channel=none"
 *
 * Raw system calls: busybox has no keyctl and the image has no libkeyutils.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#define KEY_SPEC_SESSION_KEYRING -3
#define KEYCTL_DESCRIBE 6
#define KEYCTL_READ 11

static long keyctl(long op, long a, long b, long c) {
    return syscall(SYS_keyctl, op, a, b, c, 0);
}

static void show(const char *label, const char *desc) {
    long id = syscall(SYS_request_key, "user", desc, NULL, 0);
    char buf[256];
    long n = id < 0 ? -1 : keyctl(KEYCTL_READ, id, (long)buf, sizeof buf - 1);
    if (n < 0) {
        printf("%s=none\n", label);
        return;
    }
    buf[n < (long)sizeof buf - 1 ? n : (long)sizeof buf - 1] = 0;
    printf("%s=%s\n", label, buf);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "put") == 0) {
        long id = syscall(SYS_add_key, "user", "cairn-test-channel", argv[2],
                          strlen(argv[2]), KEY_SPEC_SESSION_KEYRING);
        printf("put=%s\n", id < 0 ? "failed" : "ok");
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "get") == 0) {
        show("channel", "cairn-test-channel");
        return 0;
    }
    char desc[256];
    long n = keyctl(KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING, (long)desc, sizeof desc);
    printf("session=%s\n", n < 0 ? "none" : desc);
    show("secret", "cairn-test-secret");
    return 0;
}
