//! Processes: clone into namespaces, fork, ids, prctl flags, rlimits,
//! kill, waiting, exec, fd tables. Signal masks and signalfd are in
//! `signal`.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Error, Result, check, cstr};

pub(super) fn nix_err(op: &'static str, target: impl std::fmt::Display, e: nix::Error) -> Error {
    Error::new(op, target, std::io::Error::from_raw_os_error(e as i32))
}

/// Namespaces to create with `clone_into`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub net: bool,
}

/// clone(2) with `CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC`
/// (and `CLONE_NEWNET` if asked) and no new stack: fork semantics, the child
/// continues here as pid 1 of the new pid namespace. Returns the child's pid
/// in the parent, `None` in the child. The caller must be single-threaded.
pub fn clone_into(ns: Namespaces) -> Result<Option<i32>> {
    let mut flags =
        libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if ns.net {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: clone without CLONE_VM and with a null stack behaves like
    // fork(2): the child gets a copy of our memory and continues on its copy
    // of this stack. Arguments (x86_64 order): flags, stack, ptid, ctid, tls.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    let pid = check(ret, "clone", "new namespaces")?;
    Ok(if pid == 0 { None } else { Some(pid as i32) })
}

/// fork(2). `None` in the child.
pub fn fork() -> Result<Option<i32>> {
    // SAFETY: our callers are single-threaded (the knot, the tree's event
    // loop, cmd); the child only runs async-signal-safe-enough code of ours.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Some(child.as_raw())),
        Ok(nix::unistd::ForkResult::Child) => Ok(None),
        Err(e) => Err(nix_err("fork", "", e)),
    }
}

/// unshare(2) of a user namespace (the workload enters it right before
/// dropping privileges; its maps are written by the parent).
pub fn unshare_user() -> Result<()> {
    // SAFETY: plain syscall with a constant flag.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWUSER) },
        "unshare",
        "user namespace",
    )?;
    Ok(())
}

/// unshare(2) of a cgroup namespace: its root, in every hierarchy (v1
/// and v2 alike), is the cgroup the caller is in now, and that is all a
/// process in it sees of the cgroup tree (cgroup_namespaces(7)).
pub fn unshare_cgroup() -> Result<()> {
    // SAFETY: plain syscall with a constant flag.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
        "unshare",
        "cgroup namespace",
    )?;
    Ok(())
}

fn prctl(op: libc::c_int, arg: libc::c_ulong, what: &'static str) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(
        unsafe {
            libc::prctl(
                op,
                arg,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        },
        "prctl",
        what,
    )?;
    Ok(())
}

/// PR_SET_DUMPABLE: a non-dumpable process cannot be ptraced and its
/// /proc/PID/{exe,root,environ,mem} are closed to other users (proc(5)).
pub fn set_dumpable(on: bool) -> Result<()> {
    prctl(
        libc::PR_SET_DUMPABLE,
        u64::from(on) as libc::c_ulong,
        "PR_SET_DUMPABLE",
    )
}

/// PR_SET_NO_NEW_PRIVS: execve can never grant privileges again.
pub fn set_no_new_privs() -> Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")
}

/// PR_SET_CHILD_SUBREAPER: orphans below us are reparented to us.
pub fn set_child_subreaper() -> Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1, "PR_SET_CHILD_SUBREAPER")
}

/// PR_SET_PDEATHSIG: get `sig` when the parent dies.
pub fn set_pdeathsig(sig: i32) -> Result<()> {
    prctl(
        libc::PR_SET_PDEATHSIG,
        sig as libc::c_ulong,
        "PR_SET_PDEATHSIG",
    )
}

/// True when the write end of the pipe whose read end is `fd` is closed
/// everywhere (poll(2) reports POLLHUP): the holder is gone.
pub fn pipe_closed(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLHUP != 0
}

/// PR_SET_KEEPCAPS: keep permitted capabilities across setuid.
pub fn set_keepcaps(on: bool) -> Result<()> {
    prctl(
        libc::PR_SET_KEEPCAPS,
        u64::from(on) as libc::c_ulong,
        "PR_SET_KEEPCAPS",
    )
}

/// setgroups(2), setresgid(2), setresuid(2), in that order.
pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> Result<()> {
    // SAFETY: pointer and length of a live slice.
    check(
        unsafe { libc::setgroups(groups.len(), groups.as_ptr()) },
        "setgroups",
        format!("{groups:?}"),
    )?;
    // SAFETY: plain integer syscalls.
    check(unsafe { libc::setresgid(gid, gid, gid) }, "setresgid", gid)?;
    // SAFETY: as above.
    check(unsafe { libc::setresuid(uid, uid, uid) }, "setresuid", uid)?;
    Ok(())
}

/// The resource argument of getrlimit(2)/setrlimit(2): an enum type in
/// glibc, a plain int in musl.
#[cfg(target_env = "gnu")]
pub type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type Resource = libc::c_int;

/// setrlimit(2) with soft = hard.
pub fn set_rlimit(resource: Resource, value: u64, what: &'static str) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: valid rlimit struct.
    check(
        unsafe { libc::setrlimit(resource, &lim) },
        "setrlimit",
        what,
    )?;
    Ok(())
}

/// getrlimit(2); false if it failed.
pub fn get_rlimit(resource: Resource, out: &mut libc::rlimit) -> bool {
    // SAFETY: valid out pointer.
    unsafe { libc::getrlimit(resource, out) == 0 }
}

/// setrlimit(2) with distinct soft and hard limits.
pub fn set_rlimit_soft(resource: Resource, soft: u64, hard: u64) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: valid rlimit struct.
    check(
        unsafe { libc::setrlimit(resource, &lim) },
        "setrlimit",
        "soft limit",
    )?;
    Ok(())
}

/// Raise the soft limit of `resource` to its hard limit; returns the new
/// soft limit.
pub fn raise_soft_to_hard(resource: Resource, what: &'static str) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if !get_rlimit(resource, &mut lim) {
        return Err(Error::last("getrlimit", what));
    }
    if lim.rlim_cur < lim.rlim_max {
        set_rlimit_soft(resource, lim.rlim_max, lim.rlim_max)?;
    }
    Ok(lim.rlim_max)
}

pub const RLIMIT_NOFILE: Resource = libc::RLIMIT_NOFILE;
pub const RLIMIT_AS: Resource = libc::RLIMIT_AS;
pub const RLIMIT_CPU: Resource = libc::RLIMIT_CPU;
pub const RLIMIT_CORE: Resource = libc::RLIMIT_CORE;
pub const RLIMIT_FSIZE: Resource = libc::RLIMIT_FSIZE;
pub const RLIMIT_NPROC: Resource = libc::RLIMIT_NPROC;
pub const RLIMIT_MEMLOCK: Resource = libc::RLIMIT_MEMLOCK;

/// kill(2).
pub fn kill(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::kill(pid, sig) }, "kill", pid)?;
    Ok(())
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the code, or 128 + signal.
    pub fn as_status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// waitpid(-1, WNOHANG): one reaped child, if any.
pub fn reap_any() -> Option<(i32, Exit)> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => return Some((pid.as_raw(), Exit::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                return Some((pid.as_raw(), Exit::Signal(sig as i32)));
            }
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// waitpid(pid, 0): block until that child ends.
pub fn wait_for(pid: i32) -> Result<Exit> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig as i32)),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(nix_err("waitpid", pid, e)),
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| nix_err("pipe2", "", e))
}

/// dup2(2): the new fd is NOT close-on-exec.
pub fn dup2(src: RawFd, dst: RawFd) -> Result<()> {
    // SAFETY: plain syscall on integers.
    check(
        unsafe { libc::dup2(src, dst) },
        "dup2",
        format!("{src} -> {dst}"),
    )?;
    Ok(())
}

/// fcntl(F_DUPFD_CLOEXEC): a close-on-exec copy at `min` or above.
pub fn dup_above(src: RawFd, min: RawFd) -> Result<OwnedFd> {
    // SAFETY: plain syscall on integers.
    let fd = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, min) };
    let fd = check(fd, "fcntl F_DUPFD_CLOEXEC", src)?;
    // SAFETY: a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// close_range(2) with CLOSE_RANGE_CLOEXEC: mark `from..` close-on-exec.
pub fn cloexec_from(from: u32) -> Result<()> {
    // SAFETY: plain syscall on integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            from,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(ret, "close_range", from)?;
    Ok(())
}

/// close_range(2): close `from..=to`.
pub fn close_range(from: u32, to: u32) -> Result<()> {
    if from > to {
        return Ok(());
    }
    // SAFETY: plain syscall on integers; callers own the closed fds.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, from, to, 0) };
    check(ret, "close_range", from)?;
    Ok(())
}

/// Close every fd but 0-2 and those in `keep`.
pub fn close_all_but(keep: &[RawFd]) -> Result<()> {
    let mut keep: Vec<u32> = keep.iter().filter(|&&f| f > 2).map(|&f| f as u32).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = 3u32;
    for k in keep {
        if k > from {
            close_range(from, k - 1)?;
        }
        from = k + 1;
    }
    close_range(from, u32::MAX)
}

/// Clear close-on-exec on an fd we pass to a workload.
pub fn clear_cloexec(fd: RawFd) -> Result<()> {
    // SAFETY: plain fcntl on an integer fd.
    check(
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) },
        "fcntl F_SETFD",
        fd,
    )?;
    Ok(())
}

/// setns(2) into the network namespace `fd` refers to (an nsfs file such
/// as `/proc/self/ns/net`). The caller must be single-threaded.
pub fn enter_netns(fd: RawFd) -> Result<()> {
    // SAFETY: setns on an integer fd; the kernel checks that it is a
    // network namespace (nstype CLONE_NEWNET).
    check(
        unsafe { libc::setns(fd, libc::CLONE_NEWNET) },
        "setns (network namespace)",
        fd,
    )?;
    Ok(())
}

/// execve(2). Only returns on failure.
pub fn exec(path: &str, argv: &[String], env: &[String]) -> Error {
    let to_c = |v: &[String]| -> Option<Vec<CString>> {
        v.iter().map(|s| CString::new(s.as_str()).ok()).collect()
    };
    let (Ok(p), Some(a), Some(e)) = (cstr(path), to_c(argv), to_c(env)) else {
        return Error::new(
            "execve",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "NUL byte in argument or environment",
            ),
        );
    };
    let mut ap: Vec<*const libc::c_char> = a.iter().map(|c| c.as_ptr()).collect();
    ap.push(std::ptr::null());
    let mut ep: Vec<*const libc::c_char> = e.iter().map(|c| c.as_ptr()).collect();
    ep.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(p.as_ptr(), ap.as_ptr(), ep.as_ptr()) };
    Error::last("execve", path)
}

/// chdir(2).
pub fn chdir(path: &str) -> Result<()> {
    let c = cstr(path)?;
    // SAFETY: valid C string.
    check(unsafe { libc::chdir(c.as_ptr()) }, "chdir", path)?;
    Ok(())
}

/// fchdir(2) to a directory fd (found with openat2, so the path that led
/// there was checked).
pub fn fchdir(fd: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a live fd.
    check(unsafe { libc::fchdir(fd.as_raw_fd()) }, "fchdir", "")?;
    Ok(())
}

/// getcwd(2), raw: the kernel answers with a path that starts with
/// "(unreachable)" when the working directory is not below our root.
pub fn getcwd() -> Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the buffer is valid for its length; the raw syscall (not
    // libc's getcwd, which may hide "(unreachable)") fills it.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let n = check(n, "getcwd", "")?;
    // The kernel returns the length including the NUL.
    buf.truncate((n as usize).saturating_sub(1));
    Ok(buf)
}

/// setsid(2).
pub fn setsid() -> Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::setsid() }, "setsid", "")?;
    Ok(())
}

/// Our pid.
pub fn getpid() -> i32 {
    // SAFETY: always succeeds.
    unsafe { libc::getpid() }
}

/// _exit(2): leave now, without running destructors or atexit handlers
/// (used in forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: terminates the process.
    unsafe { libc::_exit(code) }
}

/// Write one byte to `fd` (a pipe inherited for this purpose). Errors are
/// ignored: the reader learns of our death from SIGCHLD anyway.
pub fn notify(fd: RawFd, byte: u8) {
    // SAFETY: a one-byte write from a live buffer to an fd we were given.
    unsafe { libc::write(fd, &byte as *const u8 as *const libc::c_void, 1) };
}

/// close(2) of an fd we were given as a number.
pub fn close_fd(fd: RawFd) {
    // SAFETY: the fd is ours; nothing else uses it afterwards.
    unsafe { libc::close(fd) };
}

/// CLOCK_MONOTONIC in nanoseconds (the same clock across exec).
pub fn monotonic_ns() -> u64 {
    // SAFETY: zeroed timespec is a valid out-buffer.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// memfd_create(2) with close-on-exec; the caller clears it to pass it on.
pub fn memfd(name: &str) -> Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid C string.
    let fd = check(
        unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) },
        "memfd_create",
        name,
    )?;
    // SAFETY: new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Set close-on-exec on an fd again (after a failed exec).
pub fn set_cloexec(fd: RawFd) -> Result<()> {
    // SAFETY: plain fcntl.
    check(
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) },
        "fcntl F_SETFD",
        fd,
    )?;
    Ok(())
}

/// malloc_trim(3): give free heap memory back to the kernel. In a forked
/// knot this drops its private copies of pages it no longer uses.
#[cfg(target_env = "gnu")]
pub fn trim_heap() {
    // SAFETY: glibc call without pointers; always safe to call.
    unsafe { libc::malloc_trim(0) };
}

/// musl's allocator returns freed memory to the kernel by itself.
#[cfg(not(target_env = "gnu"))]
pub fn trim_heap() {}

/// umask(2); returns the previous mask.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}
