/* holdknot PID: hold the next knot that process PID (a cairn tree) clones,
 * before it runs a single instruction of its own, until told to let go.
 *
 * A test uses it to make "the tree died between cloning a knot and the
 * knot becoming findable" happen every time: it seizes the tree with
 * ptrace, catches the tree's next clone into a new pid namespace (other
 * children, such as the confined config parser, are let go at once),
 * detaches from the tree and keeps the new knot stopped. It prints
 * "ready" once it traces the tree and "held KNOTPID" once it holds a knot;
 * a line on stdin then lets the knot go, and it prints "released" (or
 * "gone" when the knot died while held, e.g. by a parent-death signal).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether PID is in a pid namespace of its own (NSpid has two ids). */
static int own_pidns(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int yes = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "NSpid:", 6) == 0) {
            int a, b;
            yes = sscanf(line + 6, "%d %d", &a, &b) == 2;
            break;
        }
    }
    fclose(f);
    return yes;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: holdknot PID\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t tree = atoi(argv[1]);
    long opts = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK;
    if (ptrace(PTRACE_SEIZE, tree, 0, (void *)opts) != 0) {
        perror("PTRACE_SEIZE");
        return 1;
    }
    printf("ready\n");
    /* The tree's clone event and the new child's first stop come in
     * either order. */
    pid_t held = 0;
    int held_stopped = 0, tree_detached = 0;
    while (!(held && held_stopped && tree_detached)) {
        int st;
        pid_t p = waitpid(-1, &st, __WALL);
        if (p < 0) {
            perror("waitpid");
            return 1;
        }
        if (p == tree) {
            if (WIFEXITED(st) || WIFSIGNALED(st)) {
                fprintf(stderr, "the tree ended\n");
                return 1;
            }
            int event = st >> 16;
            if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK ||
                event == PTRACE_EVENT_VFORK) {
                unsigned long child = 0;
                ptrace(PTRACE_GETEVENTMSG, tree, 0, &child);
                if ((pid_t)child == held || (!held && own_pidns((pid_t)child))) {
                    held = (pid_t)child;
                    ptrace(PTRACE_DETACH, tree, 0, 0);
                    tree_detached = 1;
                    continue;
                }
                ptrace(PTRACE_CONT, tree, 0, 0);
            } else {
                /* A signal for the tree, or a group stop: pass it on. */
                int sig = event ? 0 : WSTOPSIG(st);
                ptrace(PTRACE_CONT, tree, 0, (void *)(long)sig);
            }
            continue;
        }
        if (!WIFSTOPPED(st)) {
            if (p == held) {
                printf("gone\n");
                return 0;
            }
            continue;
        }
        if (p == held || (!held && own_pidns(p))) {
            held = p;
            held_stopped = 1;
            continue;
        }
        /* A child that is not a knot (the config parser, say): let go. */
        ptrace(PTRACE_DETACH, p, 0, 0);
    }
    printf("held %d\n", held);
    /* Until told: let go of any other child that still reports. */
    for (;;) {
        struct pollfd in = {.fd = 0, .events = POLLIN};
        if (poll(&in, 1, 50) == 1)
            break;
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, __WALL | WNOHANG)) > 0) {
            if (p == held && !WIFSTOPPED(st)) {
                printf("gone\n");
                return 0;
            }
            if (p != held && WIFSTOPPED(st))
                ptrace(PTRACE_DETACH, p, 0, 0);
        }
    }
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    if (ptrace(PTRACE_DETACH, held, 0, 0) != 0) {
        printf(errno == ESRCH ? "gone\n" : "detach failed\n");
        return 0;
    }
    printf("released\n");
    return 0;
}
