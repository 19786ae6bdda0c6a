//! Signals: the process signal mask, default dispositions before exec,
//! and reading signals from a signalfd(2) (the tree, the knot and
//! `cairn cmd` take every signal that way).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};

use super::process::nix_err;
use super::{Error, Result, check};

/// Block every signal; returns the previous mask.
pub fn block_all_signals() -> Result<SigSet> {
    let mut old = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .map_err(|e| nix_err("sigprocmask", "block", e))?;
    Ok(old)
}

/// Before exec: every signal back to its default action, none blocked.
/// Ignored signals survive execve(2) (Rust ignores SIGPIPE), so reset them.
pub fn reset_signals() -> Result<()> {
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL never runs user code.
        unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) }
            .map_err(|e| nix_err("signal", sig, e))?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| nix_err("sigprocmask", "unblock", e))?;
    Ok(())
}

/// In a forked child that keeps running our code (the config reader and
/// parser): nothing blocked, and SIGPIPE ignored, so that a write to a
/// peer that died fails with EPIPE instead of killing us. Other
/// dispositions are left alone: only the fatal ones have handlers (see
/// `crash::reset_fatal`).
pub fn unblock_all_ignore_sigpipe() -> Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| nix_err("sigprocmask", "unblock", e))?;
    // SAFETY: SIG_IGN runs no code.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map_err(|e| nix_err("signal", "SIGPIPE", e))?;
    Ok(())
}

/// A signalfd(2) for all signals (they must be blocked by the caller).
pub fn signalfd_all() -> Result<OwnedFd> {
    let mut set: libc::sigset_t = unsafe_zeroed_sigset();
    // SAFETY: valid sigset pointer.
    unsafe { libc::sigfillset(&mut set) };
    // SAFETY: valid sigset; -1 = new fd.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    let fd = check(fd, "signalfd", "")?;
    // SAFETY: new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Block `signals` and read them from a signalfd(2) instead (others keep
/// their dispositions: a command that only wants to end cleanly on INT
/// and TERM still stops on Ctrl-Z).
pub fn signalfd_of(signals: &[i32]) -> Result<OwnedFd> {
    let mut set: libc::sigset_t = unsafe_zeroed_sigset();
    // SAFETY: valid sigset pointer.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: valid sigset pointer; a bad number fails with EINVAL.
        check(unsafe { libc::sigaddset(&mut set, s) }, "sigaddset", s)?;
    }
    // SAFETY: valid sigset; the old mask is not wanted.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(Error::new(
            "pthread_sigmask",
            "block",
            std::io::Error::from_raw_os_error(ret),
        ));
    }
    // SAFETY: valid sigset; -1 = new fd.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    let fd = check(fd, "signalfd", "")?;
    // SAFETY: new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unsafe_zeroed_sigset() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigfillset initialize it.
    unsafe { std::mem::zeroed() }
}

/// One signal read from a signalfd: (signal number, sender pid, si_code).
#[derive(Debug, Clone, Copy)]
pub struct SigInfo {
    pub signo: i32,
    pub pid: u32,
    pub code: i32,
}

/// Read one pending signal from a non-blocking signalfd (`None` if none).
pub fn read_signal(fd: BorrowedFd<'_>) -> Result<Option<SigInfo>> {
    // SAFETY: zeroed struct is a valid buffer for read(2).
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: buffer of exactly `size` bytes.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            &mut info as *mut _ as *mut libc::c_void,
            size,
        )
    };
    if n == -1 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EAGAIN) || e.raw_os_error() == Some(libc::EINTR) {
            return Ok(None);
        }
        return Err(Error::new("read", "signalfd", e));
    }
    if n as usize != size {
        return Ok(None);
    }
    Ok(Some(SigInfo {
        signo: info.ssi_signo as i32,
        pid: info.ssi_pid,
        code: info.ssi_code,
    }))
}
