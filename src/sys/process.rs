//! Processes: fork, ids, prctl flags, kill, waiting, exec, the working
//! directory. Namespaces are in `namespace`, rlimits in `rlimit`, the fd
//! table in `fd`, signal masks and signalfd in `signal`.

use std::ffi::CString;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Error, Result, check, cstr};

pub(super) fn nix_err(op: &'static str, target: impl std::fmt::Display, e: nix::Error) -> Error {
    Error::new(op, target, std::io::Error::from_raw_os_error(e as i32))
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

/// PR_GET_DUMPABLE: whether we are dumpable (false if it cannot be told).
pub fn is_dumpable() -> bool {
    // SAFETY: prctl without pointer arguments.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 }
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

/// CLOCK_MONOTONIC in nanoseconds (the same clock across exec).
pub fn monotonic_ns() -> u64 {
    // SAFETY: zeroed timespec is a valid out-buffer.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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

/// How far local time is ahead of UTC at `secs` after the epoch, in
/// seconds (localtime_r(3): `TZ`, else /etc/localtime); `None` when the C
/// library cannot tell.
// libc marks musl's `time_t` deprecated (for musl's move to a 64-bit
// time_t on 32-bit targets); on the 64-bit hosts cairn runs on it is i64.
#[allow(deprecated)]
pub fn utc_offset(secs: i64) -> Option<i64> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: a zeroed tm is a valid out-buffer.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm; localtime_r is the
    // reentrant form and keeps no pointer to either.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    // c_long: the same as i64 on the 64-bit hosts cairn runs on.
    #[allow(clippy::useless_conversion)]
    let offset = i64::from(tm.tm_gmtoff);
    (!r.is_null()).then_some(offset)
}
