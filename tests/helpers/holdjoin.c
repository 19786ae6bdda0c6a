/* holdjoin POINT CMD [ARG...]: run CMD (a `cairn exec`) and hold the
 * process it forks into a container at POINT, stopped (state T, with no
 * tracer), for a test to look at and let a hostile workload attack;
 * the test lets it go on with SIGCONT. Exits with CMD's status.
 *
 * POINT is where the joined process is held, at the entry of a system
 * call (PTRACE_GET_SYSCALL_INFO, Linux 5.3):
 *   privileged  the first prctl(PR_CAPBSET_DROP): every namespace joined,
 *               still uid 0 with every capability;
 *   filtered    seccomp(SECCOMP_SET_MODE_FILTER): ids and capabilities
 *               dropped, no_new_privs set, about to exec.
 * At that stop it is detached with SIGSTOP: the call runs, then it stops.
 * Prints "held PID" (its pid here) on stderr. Other children CMD forks
 * (the config parser) are let go at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether PID is in a pid namespace below ours (NSpid has two ids). */
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

static int at_point(const char *point, const struct __ptrace_syscall_info *si)
{
    if (si->op != PTRACE_SYSCALL_INFO_ENTRY)
        return 0;
    if (strcmp(point, "privileged") == 0)
        return si->entry.nr == SYS_prctl && si->entry.args[0] == PR_CAPBSET_DROP;
    return si->entry.nr == SYS_seccomp && si->entry.args[0] == 1 /* SET_MODE_FILTER */;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: holdjoin privileged|filtered CMD [ARG...]\n");
        return 2;
    }
    const char *point = argv[1];
    pid_t cmd = fork();
    if (cmd == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int st;
    waitpid(cmd, &st, 0);
    long opts = PTRACE_O_TRACEFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEVFORK |
                PTRACE_O_TRACESYSGOOD;
    ptrace(PTRACE_SETOPTIONS, cmd, 0, (void *)opts);
    ptrace(PTRACE_CONT, cmd, 0, 0);
    pid_t held = 0;
    for (;;) {
        pid_t p = waitpid(-1, &st, __WALL);
        if (p < 0) {
            perror("waitpid");
            return 1;
        }
        if (p == cmd) {
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            if (WIFSIGNALED(st))
                return 128 + WTERMSIG(st);
            int event = st >> 16;
            if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_CLONE ||
                event == PTRACE_EVENT_VFORK) {
                ptrace(PTRACE_CONT, cmd, 0, 0);
                continue;
            }
            int sig = event ? 0 : WSTOPSIG(st);
            if (sig == SIGTRAP)
                sig = 0;
            ptrace(PTRACE_CONT, cmd, 0, (void *)(long)sig);
            continue;
        }
        if (!WIFSTOPPED(st))
            continue;
        if (held == 0 && own_pidns(p))
            held = p;
        if (p != held) {
            /* Not the joining process (the config parser, say). */
            ptrace(PTRACE_DETACH, p, 0, 0);
            continue;
        }
        int sig = WSTOPSIG(st);
        if (sig == (SIGTRAP | 0x80)) {
            struct __ptrace_syscall_info si;
            memset(&si, 0, sizeof si);
            ptrace(PTRACE_GET_SYSCALL_INFO, p, (void *)sizeof si, &si);
            if (at_point(point, &si)) {
                ptrace(PTRACE_DETACH, p, 0, (void *)(long)SIGSTOP);
                fprintf(stderr, "held %d\n", p);
                continue;
            }
            ptrace(PTRACE_SYSCALL, p, 0, 0);
            continue;
        }
        /* Its first stop, or a signal: go on, stopping at each call. */
        ptrace(PTRACE_SYSCALL, p, 0, (void *)(long)(sig == SIGSTOP || sig == SIGTRAP ? 0 : sig));
    }
}
