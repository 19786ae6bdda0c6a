/* Probe for the system call filter tests: calls what a container's filter
 * refuses and what it allows, and reports what the kernel answered.
 *
 *   secprobe            one line per call: "NAME=ok", "NAME=<errno name>"
 *                       or "NAME=killed:<signal>", each call made in a
 *                       child of its own (so no call changes the probe)
 *   secprobe ptys N     open /dev/ptmx up to N times and hold them:
 *                       "ptys=<opened> errno=<errno name of the failure>"
 *   secprobe one NAME   the same for one call only
 *   secprobe threads N  start N threads that each open a socket: "threads=ok"
 *
 * Arguments are chosen so that, without a filter, the kernel itself does
 * not answer EPERM where it can be avoided (a bad fd, a bad pointer, a
 * missing path): then EPERM can only come from the filter. The test knows
 * which calls the kernel refuses with EPERM anyway. They are also chosen to
 * do nothing even for root (a too-long host name, kexec flags the kernel
 * rejects), and the probe refuses to run outside a cairn container.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_statmount
#define SYS_statmount 457
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif

static const char *errname(int e) {
    switch (e) {
    case 0: return "ok";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOTTY: return "ENOTTY";
    case ENOSPC: return "ENOSPC";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ENOKEY: return "ENOKEY";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ESRCH: return "ESRCH";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
    }
}

/* Each check returns 0 on success or an errno. */
typedef int (*check_fn)(void);
#define RET(expr) return (expr) < 0 ? errno : 0

static int c_unshare_user(void) { RET(unshare(CLONE_NEWUSER)); }
static int c_unshare_user_mount_net(void) {
    RET(unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET));
}
static int c_unshare_fs(void) { RET(unshare(CLONE_FS)); }
static int c_clone_newuser(void) {
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(r, NULL, 0);
    RET(r);
}
static int c_clone_fork(void) {
    long r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(r, NULL, 0);
    RET(r);
}
static int c_clone3(void) {
    unsigned long long args[11] = {0};
    args[4] = SIGCHLD; /* exit_signal */
    long r = syscall(SYS_clone3, args, 88);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(r, NULL, 0);
    RET(r);
}
static int c_setns(void) { RET(setns(-1, 0)); }
static int c_mount(void) { RET(mount("none", "/nonexistent", "tmpfs", 0, NULL)); }
static int c_umount2(void) { RET(umount2("/nonexistent", 0)); }
static int c_pivot_root(void) { RET(syscall(SYS_pivot_root, "/nonexistent", "/nonexistent")); }
static int c_chroot(void) { RET(chroot("/nonexistent")); }
static int c_open_tree(void) {
    long fd = syscall(SYS_open_tree, -1, "/", 0);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_fsopen(void) { RET(syscall(SYS_fsopen, "tmpfs", 0)); }
static int c_mount_setattr(void) { RET(syscall(SYS_mount_setattr, -1, "", 0, NULL, 0)); }
static int c_statmount(void) { RET(syscall(SYS_statmount, NULL, NULL, 0, 0)); }
static int c_keyctl(void) { RET(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0, 0, 0)); }
static int c_add_key(void) {
    /* The thread keyring: created for this child, gone with it. */
    RET(syscall(SYS_add_key, "user", "cairn-probe", "v", 1, -1 /* @t */));
}
static int c_request_key(void) {
    RET(syscall(SYS_request_key, "user", "cairn-probe-missing", NULL, 0));
}
static int c_bpf(void) { RET(syscall(SYS_bpf, 0x7fff, NULL, 0)); }
static int c_perf_event_open(void) { RET(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0)); }
static int c_userfaultfd(void) {
    long fd = syscall(SYS_userfaultfd, 1 /* UFFD_USER_MODE_ONLY */ | O_CLOEXEC);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_io_uring_setup(void) { RET(syscall(SYS_io_uring_setup, 1, NULL)); }
static int c_io_uring_enter(void) { RET(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0)); }
static int c_io_uring_register(void) { RET(syscall(SYS_io_uring_register, -1, 0, NULL, 0)); }
/* Flags with an unknown architecture: even root gets EINVAL (never
 * "unload the crash kernel", which 0 would mean). */
static int c_kexec_load(void) { RET(syscall(SYS_kexec_load, 0, 0, NULL, 0x7fff0000)); }
static int c_init_module(void) { RET(syscall(SYS_init_module, NULL, 0, "")); }
static int c_finit_module(void) { RET(syscall(SYS_finit_module, -1, "", 0)); }
static int c_open_by_handle_at(void) { RET(syscall(SYS_open_by_handle_at, -1, NULL, 0)); }
static int c_name_to_handle_at(void) {
    RET(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0));
}
static int c_clock_settime(void) { RET(syscall(SYS_clock_settime, CLOCK_REALTIME, NULL)); }
static int c_settimeofday(void) { RET(syscall(SYS_settimeofday, (void *)1, NULL)); }
static int c_memfd_secret(void) {
    long fd = syscall(SYS_memfd_secret, 0);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_kcmp(void) {
    RET(syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 0));
}
static int c_pidfd_getfd(void) { RET(syscall(SYS_pidfd_getfd, -1, 0, 0)); }
static int c_reboot(void) { RET(syscall(SYS_reboot, 0, 0, 0, NULL)); }
static int c_swapon(void) { RET(syscall(SYS_swapon, NULL, 0)); }
static int c_acct(void) { RET(syscall(SYS_acct, "/nonexistent")); }
/* Too long a name: even root gets EINVAL, never an empty host name. */
static int c_sethostname(void) { RET(syscall(SYS_sethostname, "x", 1000)); }
static int c_quotactl(void) { RET(syscall(SYS_quotactl, 0, NULL, 0, NULL)); }
static int c_mbind(void) { RET(syscall(SYS_mbind, NULL, 0, 0, NULL, 0, 0)); }
static int c_move_pages(void) { RET(syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0)); }
static int c_socket_vsock(void) {
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_socket_alg(void) {
    int fd = socket(AF_ALG, SOCK_SEQPACKET, 0);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_personality_no_aslr(void) { RET(personality(ADDR_NO_RANDOMIZE)); }
static int c_tiocsti(void) {
    char c = 'x';
    RET(ioctl(-1, TIOCSTI, &c));
}
static int c_x32(void) { RET(syscall(0x40000000 | SYS_getpid)); }
static int c_unknown(void) { RET(syscall(1000)); }
/* An i386 system call from a 64-bit process: getpid through int 0x80. */
static int c_int80(void) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    return r < 0 ? (int)-r : 0;
}

/* What every program needs. */
static int c_getpid(void) { RET(getpid()); }
static int c_socket_inet(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_socket_inet6(void) {
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_socket_unix(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_socket_netlink(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW, 0);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_socketpair(void) {
    int sv[2];
    int r = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (r == 0) { close(sv[0]); close(sv[1]); }
    RET(r);
}
static int c_personality_query(void) { RET(personality(0xffffffff)); }
static void *thread_main(void *arg) { return arg; }
static int c_pthread(void) {
    pthread_t t;
    int e = pthread_create(&t, NULL, thread_main, NULL);
    if (e) return e;
    return pthread_join(t, NULL);
}
static int c_memfd_create(void) {
    int fd = memfd_create("probe", MFD_CLOEXEC);
    if (fd >= 0) close(fd);
    RET(fd);
}
static int c_tcgets(void) {
    struct termios t;
    int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    if (fd < 0) return errno;
    int r = ioctl(fd, TCGETS, &t);
    int e = r < 0 ? errno : 0;
    close(fd);
    return e;
}
static int c_execve(void) {
    char *argv[] = {"true", NULL};
    char *envp[] = {NULL};
    execve("/bin/true", argv, envp);
    return errno;
}
static int c_prctl(void) {
    char name[16];
    RET(prctl(PR_GET_NAME, name));
}
static int c_clock_gettime(void) {
    struct timespec ts;
    RET(clock_gettime(CLOCK_MONOTONIC, &ts));
}

static const struct {
    const char *name;
    check_fn fn;
} CHECKS[] = {
    {"unshare_user", c_unshare_user},
    {"unshare_user_mount_net", c_unshare_user_mount_net},
    {"clone_newuser", c_clone_newuser},
    {"clone3", c_clone3},
    {"setns", c_setns},
    {"mount", c_mount},
    {"umount2", c_umount2},
    {"pivot_root", c_pivot_root},
    {"chroot", c_chroot},
    {"open_tree", c_open_tree},
    {"fsopen", c_fsopen},
    {"mount_setattr", c_mount_setattr},
    {"statmount", c_statmount},
    {"keyctl", c_keyctl},
    {"add_key", c_add_key},
    {"request_key", c_request_key},
    {"bpf", c_bpf},
    {"perf_event_open", c_perf_event_open},
    {"userfaultfd", c_userfaultfd},
    {"io_uring_setup", c_io_uring_setup},
    {"io_uring_enter", c_io_uring_enter},
    {"io_uring_register", c_io_uring_register},
    {"kexec_load", c_kexec_load},
    {"init_module", c_init_module},
    {"finit_module", c_finit_module},
    {"open_by_handle_at", c_open_by_handle_at},
    {"name_to_handle_at", c_name_to_handle_at},
    {"clock_settime", c_clock_settime},
    {"settimeofday", c_settimeofday},
    {"memfd_secret", c_memfd_secret},
    {"kcmp", c_kcmp},
    {"pidfd_getfd", c_pidfd_getfd},
    {"reboot", c_reboot},
    {"swapon", c_swapon},
    {"acct", c_acct},
    {"sethostname", c_sethostname},
    {"quotactl", c_quotactl},
    {"mbind", c_mbind},
    {"move_pages", c_move_pages},
    {"socket_vsock", c_socket_vsock},
    {"socket_alg", c_socket_alg},
    {"personality_no_aslr", c_personality_no_aslr},
    {"tiocsti", c_tiocsti},
    {"x32", c_x32},
    {"unknown", c_unknown},
    {"int80", c_int80},
    {"getpid", c_getpid},
    {"clone_fork", c_clone_fork},
    {"unshare_fs", c_unshare_fs},
    {"socket_inet", c_socket_inet},
    {"socket_inet6", c_socket_inet6},
    {"socket_unix", c_socket_unix},
    {"socket_netlink", c_socket_netlink},
    {"socketpair", c_socketpair},
    {"personality_query", c_personality_query},
    {"pthread", c_pthread},
    {"memfd_create", c_memfd_create},
    {"tcgets", c_tcgets},
    {"execve", c_execve},
    {"prctl", c_prctl},
    {"clock_gettime", c_clock_gettime},
};

static int ptys(int n) {
    int opened = 0, err = 0;
    for (; opened < n; opened++) {
        /* Kept open: each one holds a pty of the container's devpts. */
        if (open("/dev/ptmx", O_RDWR | O_NOCTTY) < 0) {
            err = errno;
            break;
        }
    }
    printf("ptys=%d errno=%s\n", opened, errname(err));
    return 0;
}

static void *sock_thread(void *arg) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return (void *)1;
    close(fd);
    return arg;
}

static int threads(int n) {
    pthread_t t[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, sock_thread, NULL)) {
            printf("threads=create-failed\n");
            return 1;
        }
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r) {
            printf("threads=socket-failed\n");
            return 1;
        }
    }
    printf("threads=ok\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && !strcmp(argv[1], "ptys")) return ptys(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "threads")) return threads(atoi(argv[2]));
    /* Only where cairn started us: these calls are meant for a container,
     * not for a root shell on the host. */
    if (!getenv("CAIRN_NAME")) {
        fprintf(stderr, "secprobe: not in a cairn container (no CAIRN_NAME)\n");
        return 2;
    }
    const char *only = argc == 3 && !strcmp(argv[1], "one") ? argv[2] : NULL;
    for (size_t i = 0; i < sizeof CHECKS / sizeof CHECKS[0]; i++) {
        if (only && strcmp(only, CHECKS[i].name)) continue;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) _exit(CHECKS[i].fn());
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) < 0) {
            printf("%s=probe-failed\n", CHECKS[i].name);
            continue;
        }
        if (WIFSIGNALED(st))
            printf("%s=killed:%d\n", CHECKS[i].name, WTERMSIG(st));
        else
            printf("%s=%s\n", CHECKS[i].name, errname(WEXITSTATUS(st)));
    }
    return 0;
}
