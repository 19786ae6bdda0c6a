//! cairn-init: the container's pid 1 for supervised instances, after the
//! knot has built the container and started the workload.
//!
//! The knot is a fork of the supervisor and carries its whole address
//! space; staying pid 1 for the workload's life would cost each instance
//! the pages that fork touched. So once the workload runs, the knot execs
//! this: a freestanding program (no std, no libc, raw system calls) whose
//! whole memory is a stack page or two. It blocks every signal, reads them
//! from a signalfd, forwards TERM/INT/HUP/QUIT/USR1/USR2 to the workload,
//! reaps every child (orphans are reparented to pid 1), and when the
//! workload ends it records the exit in the instance dir, tells the
//! supervisor, and exits with the workload's status.
//!
//! Built by build.rs with rustc alone (panic=abort, static, no start
//! files) and embedded into cairn, which runs it from a sealed memfd.
//!
//! Arguments: `cairn-init INSTANCE` as one argv[0] (its title in `ps`;
//! the instance name becomes its `comm`, cut to 15 bytes by the kernel),
//! then `WORKLOAD_PID INTERACTIVE OOM_BEFORE [STOP_SIGNAL [LOG NAME FILE]]`
//! (STOP_SIGNAL: what a TERM is passed on as, TERM when not given; LOG,
//! NAME and FILE when it pumps the workload's output into the sandbox's
//! stdio log, see `log_pump.rs` and `Log` below). Its fd contract
//! with the knot that execs it (`knot::hand_over`): fd 3 the write end of
//! the ready pipe to the supervisor (one `x` when the workload has ended),
//! fd 4 the instance dir (for `exit-status`), fd 5 the memory cgroup dir
//! (for the OOM kill count), 6 and up the listening sockets it keeps open
//! for the supervisor to take back; each of 3 to 5 may be closed when
//! there is none. x86_64 and aarch64 (system call numbers, open flags and
//! the entry point are per architecture; the rest is shared). What to do
//! with a signal, and how a wait status reads, come from `init_policy.rs`
//! (the same source the knot and `cairn cmd` use).
//!
//! It has a second job: `cairn-exec ERR_FD PATH ARGV...` execs a workload
//! (the knot's fork runs it, once the container is ready). Then the
//! process calling execve for the workload is this memfd, never a fork of
//! the cairn binary on the host, which `/proc/self/exe` would name.

#![no_std]
#![no_main]

use core::arch::global_asm;

#[path = "../init_policy.rs"]
mod policy;

#[path = "../log_pump.rs"]
mod log_pump;

mod log;
use log::{InitLog, Log, now_ms};

// ---- system calls, per architecture ---------------------------------------

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const SYS_READ: usize = 0;
    pub const SYS_WRITE: usize = 1;
    pub const SYS_CLOSE: usize = 3;
    pub const SYS_RT_SIGPROCMASK: usize = 14;
    pub const SYS_GETPID: usize = 39;
    pub const SYS_EXECVE: usize = 59;
    pub const SYS_WAIT4: usize = 61;
    pub const SYS_KILL: usize = 62;
    pub const SYS_FCNTL: usize = 72;
    pub const SYS_PRCTL: usize = 157;
    pub const SYS_EXIT_GROUP: usize = 231;
    pub const SYS_OPENAT: usize = 257;
    pub const SYS_UNLINKAT: usize = 263;
    pub const SYS_SIGNALFD4: usize = 289;
    pub const SYS_WRITEV: usize = 20;
    pub const SYS_NEWFSTATAT: usize = 262;
    pub const SYS_FLOCK: usize = 73;
    pub const SYS_RENAMEAT2: usize = 316;
    pub const SYS_FCHOWN: usize = 93;
    pub const SYS_FCHMOD: usize = 91;
    pub const SYS_PPOLL: usize = 271;
    pub const SYS_CLOCK_GETTIME: usize = 228;
    /// <asm/fcntl.h>: these two differ between architectures.
    pub const O_NOFOLLOW: usize = 0o400000;
    /// Where `st_mode` is in `struct stat`.
    pub const ST_MODE_AT: usize = 24;

    pub unsafe fn syscall6(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
        let ret: isize;
        // SAFETY (caller): the arguments are valid for system call `n`.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
                 in("rdx") c, in("r10") d, in("r8") e, in("r9") f, lateout("rcx") _,
                 lateout("r11") _, options(nostack));
        }
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    // <asm-generic/unistd.h>
    pub const SYS_READ: usize = 63;
    pub const SYS_WRITE: usize = 64;
    pub const SYS_CLOSE: usize = 57;
    pub const SYS_RT_SIGPROCMASK: usize = 135;
    pub const SYS_GETPID: usize = 172;
    pub const SYS_EXECVE: usize = 221;
    pub const SYS_WAIT4: usize = 260;
    pub const SYS_KILL: usize = 129;
    pub const SYS_FCNTL: usize = 25;
    pub const SYS_PRCTL: usize = 167;
    pub const SYS_EXIT_GROUP: usize = 94;
    pub const SYS_OPENAT: usize = 56;
    pub const SYS_UNLINKAT: usize = 35;
    pub const SYS_SIGNALFD4: usize = 74;
    pub const SYS_WRITEV: usize = 66;
    pub const SYS_NEWFSTATAT: usize = 79;
    pub const SYS_FLOCK: usize = 32;
    pub const SYS_RENAMEAT2: usize = 276;
    pub const SYS_FCHOWN: usize = 55;
    pub const SYS_FCHMOD: usize = 52;
    pub const SYS_PPOLL: usize = 73;
    pub const SYS_CLOCK_GETTIME: usize = 113;
    pub const O_NOFOLLOW: usize = 0o100000;
    /// Where `st_mode` is in `struct stat`.
    pub const ST_MODE_AT: usize = 16;

    pub unsafe fn syscall6(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
        let ret: isize;
        // SAFETY (caller): the arguments are valid for system call `n`.
        unsafe {
            core::arch::asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b,
                 in("x2") c, in("x3") d, in("x4") e, in("x5") f, options(nostack));
        }
        ret
    }
}

use arch::*;

// The same on both (asm-generic and x86_64 agree).
const F_SETFD: usize = 2;
const FD_CLOEXEC: usize = 1;
const O_WRONLY: usize = 0o1;
const O_CREAT: usize = 0o100;
const O_EXCL: usize = 0o200;
const O_CLOEXEC: usize = 0o2000000;
const SFD_CLOEXEC: usize = O_CLOEXEC;
const SIG_BLOCK: usize = 0;
const EINTR: isize = 4;
const ENOENT: i32 = 2;
/// The size of `struct signalfd_siginfo`.
const SIGINFO_SIZE: usize = 128;

fn sys(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    // SAFETY: every call site passes arguments valid for its system call;
    // pointers point into live buffers of this program.
    unsafe { syscall6(n, a, b, c, d, 0, 0) }
}

fn exit(code: i32) -> ! {
    loop {
        sys(SYS_EXIT_GROUP, code as usize, 0, 0, 0);
    }
}

// ---- what the compiler may call without libc ------------------------------

#[unsafe(no_mangle)]
unsafe extern "C" fn memset(d: *mut u8, c: i32, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller gives a writable region of n bytes; volatile
        // keeps this loop from being turned back into a memset call.
        unsafe { core::ptr::write_volatile(d.add(i), c as u8) };
        i += 1;
    }
    d
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller gives valid, non-overlapping regions of n bytes.
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
    d
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    if (d as usize) < (s as usize) {
        // SAFETY: forwards copy is correct when the destination is lower.
        unsafe { memcpy(d, s, n) }
    } else {
        let mut i = n;
        while i > 0 {
            i -= 1;
            // SAFETY: valid regions of n bytes (caller), copied backwards.
            unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        }
        d
    }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller gives readable regions of n bytes.
        let (x, y) = unsafe { (core::ptr::read_volatile(a.add(i)), core::ptr::read_volatile(b.add(i))) };
        if x != y {
            return x as i32 - y as i32;
        }
        i += 1;
    }
    0
}

#[unsafe(no_mangle)]
unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller gives a NUL-terminated string; volatile keeps
    // this loop from being turned back into a strlen call.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}

#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// The prebuilt libcore was compiled for unwinding and names this symbol;
/// with panic=abort nothing ever calls it.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(125)
}

// ---- entry ----------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym start,
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "and sp, x0, #-16",
    "bl {main}",
    "brk #0",
    main = sym start,
);

/// The kernel's initial stack: argc, then argv pointers, a NULL, then
/// the environment pointers.
unsafe extern "C" fn start(sp: *const usize) -> ! {
    // SAFETY: the kernel puts argc and argc argv pointers (NUL-terminated
    // strings) at the initial stack pointer, then NULL, then envp.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
    // SAFETY: argv[0] exists (the knot always passes one) or is NULL.
    let arg0 = if argc > 0 { unsafe { *argv } } else { core::ptr::null() };
    if argc >= 4 && unsafe { is(arg0, b"cairn-exec\0") } {
        // SAFETY: envp follows argv's NULL terminator.
        let envp = unsafe { argv.add(argc + 1) };
        // SAFETY: argc >= 4, so argv[1..4] are valid C strings.
        unsafe { exec_workload(argv, envp) }
    }
    // Anything else is init mode, which only pid 1 of a container may be:
    // run any other way (an image script naming `/proc/self/exe` as its
    // interpreter reaches this memfd) there is nothing to do.
    if sys(SYS_GETPID, 0, 0, 0, 0) != 1 || argc < 1 || !unsafe { is(arg0, INIT_PREFIX) } {
        exit(126);
    }
    // Named for `top` after the instance that follows the prefix.
    // SAFETY: `is` saw the prefix, so the instance (maybe empty) follows.
    let name = unsafe { comm_of(arg0.add(INIT_PREFIX.len())) };
    must(sys(SYS_PRCTL, PR_SET_NAME, name as usize, 0, 0));
    let mut args = [0u64, 0, 0, policy::SIGTERM as u64];
    let mut i = 1;
    while i < argc && i <= 4 {
        // SAFETY: argv[i] is a valid C string for i < argc.
        args[i - 1] = unsafe { parse_c(*argv.add(i)) };
        i += 1;
    }
    // A stop signal out of range is a TERM: never signal 0 or a bad number.
    let stop = if (1..=64).contains(&args[3]) { args[3] as u32 } else { policy::SIGTERM };
    // The stdio log pump's: `PIPE,LOG,DIR,MAX_SIZE,FILES,TIMESTAMPS,NAMES`,
    // the name for the prefix, the log's file name.
    let mut log = None;
    if argc >= 8 {
        let mut n = [0u64; 7];
        // SAFETY: argv[5..8] are valid C strings (argc >= 8).
        let (spec, name, file) = unsafe { (*argv.add(5), c_bytes(*argv.add(6)), c_bytes(*argv.add(7))) };
        // SAFETY: a NUL-terminated string.
        unsafe { parse_list(spec, &mut n) };
        if name.len() <= 255 && !file.is_empty() && file.len() <= 255 {
            log = Some(Log {
                pipe: n[0] as usize,
                file: InitLog { file: n[1] as usize, dir: n[2] as usize, name: file },
                max_size: n[3],
                files: n[4] as u32,
                timestamps: n[5] != 0,
                name: if n[6] != 0 { name } else { &[] },
                open: true,
            });
        }
    }
    run(args[0] as i32, args[1] != 0, args[2], stop, log)
}

/// The bytes of a C string, without its NUL (one that lives as long as
/// the process: an argv string).
unsafe fn c_bytes(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: p is NUL-terminated.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: n bytes before the NUL, never freed or written.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// Comma-separated decimal numbers from a C string into `out`.
unsafe fn parse_list(mut p: *const u8, out: &mut [u64]) {
    let mut i = 0;
    loop {
        // SAFETY: p walks a NUL-terminated string.
        let c = unsafe { *p };
        if c == 0 {
            return;
        }
        if c == b',' {
            i += 1;
        } else if c.is_ascii_digit() && i < out.len() {
            out[i] = out[i].wrapping_mul(10).wrapping_add((c - b'0') as u64);
        }
        // SAFETY: not past the NUL.
        p = unsafe { p.add(1) };
    }
}

/// How argv[0] begins in init mode (`cairn-init INSTANCE`).
const INIT_PREFIX: &[u8] = b"cairn-init ";

/// Where our name (at most 15 bytes) begins in the C string `instance`:
/// all of it when it fits, else its `PROCESS.N` (after the last `/`),
/// else the last 15 bytes of that; the knot's rule (`knot::title::comm`).
unsafe fn comm_of(instance: *const u8) -> *const u8 {
    let (mut len, mut after_slash) = (0, 0);
    // SAFETY: a NUL-terminated string, read up to its NUL.
    while unsafe { *instance.add(len) } != 0 {
        if unsafe { *instance.add(len) } == b'/' {
            after_slash = len + 1;
        }
        len += 1;
    }
    let start = if len <= 15 {
        0
    } else if len - after_slash <= 15 {
        after_slash
    } else {
        len - 15
    };
    instance.wrapping_add(start)
}

/// Whether the C string `p` begins with `want`; with a `want` that ends
/// in NUL, whether it is exactly that.
unsafe fn is(p: *const u8, want: &[u8]) -> bool {
    if p.is_null() {
        return false;
    }
    let mut i = 0;
    while i < want.len() {
        // SAFETY: p is NUL-terminated; we stop at the first difference,
        // which comes at the latest at its NUL (want has no NUL but
        // maybe at its end).
        if unsafe { *p.add(i) } != want[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `cairn-exec ERR_FD PATH ARGV...`: the last step of a workload's start
/// (see exec_trampoline in embedded.rs). ERR_FD is closed on a successful
/// exec; if execve fails, `E<errno>` goes there and we exit 127 (not found)
/// or 126, the shell's statuses.
unsafe fn exec_workload(argv: *const *const u8, envp: *const *const u8) -> ! {
    // SAFETY: the caller checked argc >= 4.
    let (fd_arg, path) = unsafe { (*argv.add(1), *argv.add(2)) };
    // SAFETY: a NUL-terminated string.
    let err_fd = unsafe { parse_c(fd_arg) } as usize;
    if sys(SYS_FCNTL, err_fd, F_SETFD, FD_CLOEXEC, 0) < 0 {
        exit(125);
    }
    let ret = sys(SYS_EXECVE, path as usize, argv.wrapping_add(3) as usize, envp as usize, 0);
    let errno = -ret as i32;
    let mut msg = [0u8; 16];
    let mut len = 0;
    put(&mut msg, &mut len, b"E");
    put_num(&mut msg, &mut len, errno);
    sys(SYS_WRITE, err_fd, msg.as_ptr() as usize, len, 0);
    exit(if errno == ENOENT { 127 } else { 126 })
}

/// A decimal number from a C string (0 if none).
unsafe fn parse_c(mut p: *const u8) -> u64 {
    let mut v: u64 = 0;
    loop {
        // SAFETY: p walks a NUL-terminated string.
        let c = unsafe { *p };
        if !c.is_ascii_digit() {
            return v;
        }
        v = v.wrapping_mul(10).wrapping_add((c - b'0') as u64);
        // SAFETY: not past the NUL we have not seen yet.
        p = unsafe { p.add(1) };
    }
}

// ---- the init -------------------------------------------------------------

const PR_SET_NAME: usize = 15;
const PR_SET_DUMPABLE: usize = 4;
const WNOHANG: usize = 1;

/// Fail closed: an init that cannot do its job ends, and with it the
/// container (the supervisor sees 125 and restarts the instance).
fn must(r: isize) -> isize {
    if r < 0 {
        exit(125);
    }
    r
}

fn run(workload: i32, interactive: bool, oom_before: u64, stop: u32, mut log: Option<Log>) -> ! {
    must(sys(SYS_PRCTL, PR_SET_DUMPABLE, 0, 0, 0));
    let all: u64 = !0;
    must(sys(SYS_RT_SIGPROCMASK, SIG_BLOCK, &all as *const u64 as usize, 0, 8));
    let sfd = must(sys(SYS_SIGNALFD4, usize::MAX /* -1: a new fd */, &all as *const u64 as usize, 8, SFD_CLOEXEC));
    // A workload that ended before its signals were blocked sent its
    // SIGCHLD to nobody: look once before waiting for the next one.
    let mut pump = log_pump::Pump::new();
    let status = match reap(workload) {
        Some(ws) => ws,
        None => match &mut log {
            Some(l) => wait_pumping(workload, sfd, interactive, stop, l, &mut pump),
            None => wait_for(workload, sfd, interactive, stop),
        },
    };
    // What the workload's output left in the pipe, and the start of a
    // line (what still runs in the container may write on: a bound).
    if let Some(l) = &mut log {
        l.pump(&mut pump, 64);
        let now = now_ms();
        pump.finish(now, &l.config(), &mut l.file);
    }
    let (shell, signal) = policy::shell_status(status);
    let oom = signal == policy::SIGKILL as i32 && oom_kills() > oom_before;
    record(shell, signal, oom);
    let x = b'x';
    sys(SYS_WRITE, 3, &x as *const u8 as usize, 1, 0);
    sys(SYS_CLOSE, 3, 0, 0, 0);
    exit(shell)
}

/// One signal read from the signalfd (which has one): what to do.
fn on_signal(info: &[u8; SIGINFO_SIZE], workload: i32, interactive: bool, stop: u32) -> Option<i32> {
    let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
    let code = i32::from_ne_bytes([info[8], info[9], info[10], info[11]]);
    match policy::on_signal(signo, code, interactive) {
        policy::Action::Reap => return reap(workload),
        policy::Action::Forward => {
            let to = policy::passed_on_as(signo, stop);
            sys(SYS_KILL, workload as usize, to as usize, 0, 0);
        }
        policy::Action::Ignore => {}
    }
    None
}

const POLLIN: i16 = 1;

/// `wait_for`, pumping the workload's output into its log meanwhile.
fn wait_pumping(workload: i32, sfd: isize, interactive: bool, stop: u32, log: &mut Log, pump: &mut log_pump::Pump) -> i32 {
    let mut info = [0u8; SIGINFO_SIZE];
    loop {
        // struct pollfd: fd (i32), events (i16), revents (i16).
        let mut fds = [(sfd as i32, POLLIN, 0i16), (log.pipe as i32, POLLIN, 0i16)];
        let nfds = if log.open { 2 } else { 1 };
        let n = sys(SYS_PPOLL, fds.as_mut_ptr() as usize, nfds, 0, 0);
        if n == -EINTR {
            continue;
        }
        if n < 0 {
            exit(125);
        }
        if log.open && fds[1].2 != 0 {
            log.open = log.pump(pump, 4);
        }
        if fds[0].2 != 0 {
            let n = sys(SYS_READ, sfd as usize, info.as_mut_ptr() as usize, info.len(), 0);
            if n == -EINTR {
                continue;
            }
            if n != SIGINFO_SIZE as isize {
                exit(125);
            }
            if let Some(ws) = on_signal(&info, workload, interactive, stop) {
                return ws;
            }
        }
    }
}

/// Pass signals on and reap children until the workload ends; its wait
/// status.
fn wait_for(workload: i32, sfd: isize, interactive: bool, stop: u32) -> i32 {
    let mut info = [0u8; SIGINFO_SIZE];
    loop {
        let n = sys(SYS_READ, sfd as usize, info.as_mut_ptr() as usize, info.len(), 0);
        if n == -EINTR {
            continue;
        }
        // A signalfd returns whole records or fails: anything else means
        // it no longer works, and spinning on it would hold a CPU forever.
        if n != SIGINFO_SIZE as isize {
            exit(125);
        }
        if let Some(ws) = on_signal(&info, workload, interactive, stop) {
            return ws;
        }
    }
}

/// Reap every child that has ended; the workload's wait status, if it is
/// one of them.
fn reap(workload: i32) -> Option<i32> {
    let mut found = None;
    loop {
        let mut ws: i32 = 0;
        let pid = sys(SYS_WAIT4, usize::MAX /* -1: any child */, &mut ws as *mut i32 as usize, WNOHANG, 0);
        if pid <= 0 {
            return found;
        }
        if pid as i32 == workload {
            found = Some(ws);
        }
    }
}

/// `oom_kill N` from the memory cgroup dir at fd 5 (v1 memory.oom_control
/// or v2 memory.events); 0 when unknown.
fn oom_kills() -> u64 {
    for file in [&b"memory.oom_control\0"[..], &b"memory.events\0"[..]] {
        let fd = sys(SYS_OPENAT, 5, file.as_ptr() as usize, O_CLOEXEC /* | O_RDONLY (0) */, 0);
        if fd < 0 {
            continue;
        }
        let mut buf = [0u8; 512];
        let n = sys(SYS_READ, fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0);
        sys(SYS_CLOSE, fd as usize, 0, 0, 0);
        if n <= 0 {
            continue;
        }
        let text = &buf[..n as usize];
        let key = b"oom_kill ";
        let mut i = 0;
        while i + key.len() <= text.len() {
            if (i == 0 || text[i - 1] == b'\n') && &text[i..i + key.len()] == key {
                let mut v = 0u64;
                let mut j = i + key.len();
                while j < text.len() && text[j].is_ascii_digit() {
                    v = v * 10 + (text[j] - b'0') as u64;
                    j += 1;
                }
                return v;
            }
            i += 1;
        }
    }
    0
}

/// Append the decimal form of `v` to `out` at `len`.
fn put_num(out: &mut [u8], len: &mut usize, v: i32) {
    let mut digits = [0u8; 12];
    let mut n = 0;
    let mut x = v as i64;
    if x < 0 {
        put(out, len, b"-");
        x = -x;
    }
    loop {
        digits[n] = b'0' + (x % 10) as u8;
        n += 1;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    while n > 0 {
        n -= 1;
        put(out, len, &digits[n..n + 1]);
    }
}

fn put(out: &mut [u8], len: &mut usize, s: &[u8]) {
    for &b in s {
        if *len < out.len() {
            out[*len] = b;
            *len += 1;
        }
    }
}

/// `<instance>/exit-status` (fd 4), in the JSON the supervisor reads:
/// replaced, never followed (unlink, then create exclusively, no symlinks).
fn record(status: i32, signal: i32, oom: bool) {
    let mut json = [0u8; 96];
    let mut len = 0;
    put(&mut json, &mut len, b"{\"status\":");
    put_num(&mut json, &mut len, status);
    put(&mut json, &mut len, b",\"signal\":");
    if signal == 0 {
        put(&mut json, &mut len, b"null");
    } else {
        put_num(&mut json, &mut len, signal);
    }
    put(&mut json, &mut len, if oom { b",\"oom_killed\":true}" } else { b",\"oom_killed\":false}" });
    let name = b"exit-status\0";
    sys(SYS_UNLINKAT, 4, name.as_ptr() as usize, 0, 0);
    let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    let fd = sys(SYS_OPENAT, 4, name.as_ptr() as usize, flags, 0o644);
    if fd >= 0 {
        sys(SYS_WRITE, fd as usize, json.as_ptr() as usize, len, 0);
        sys(SYS_CLOSE, fd as usize, 0, 0, 0);
    }
}
