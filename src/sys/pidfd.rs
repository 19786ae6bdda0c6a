//! pidfd_open(2): a stable handle to a process that is not our child (an
//! instance adopted after the supervisor was restarted). It becomes
//! readable when the process exits, so it goes into the event loop.

use std::os::fd::{FromRawFd, OwnedFd};

use super::{Result, check};

/// A pidfd for `pid` (close-on-exec).
pub fn open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: plain syscall; flags 0 (PIDFD_NONBLOCK not needed: we poll).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = check(fd, "pidfd_open", pid)?;
    // SAFETY: a new fd that nobody else owns. pidfds are O_CLOEXEC.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// waitid(P_PID, pid, WEXITED|WNOHANG|WNOWAIT): true when `pid` is one of
/// our children (alive, or a zombie not yet reaped), without reaping it.
pub fn is_our_child(pid: i32) -> bool {
    // SAFETY: zeroed siginfo is a valid out-buffer.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; flags are constants.
    let ret = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    ret == 0
}

/// pidfd_getfd(2): a duplicate (close-on-exec) of fd `target` of the
/// process behind `pidfd`. Used to take back the listening sockets an
/// adopted knot holds, after the tree lost its own copies.
pub fn get_fd(pidfd: std::os::fd::BorrowedFd<'_>, target: i32) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall; flags must be 0.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    let fd = check(fd, "pidfd_getfd", target)?;
    // SAFETY: a new fd nobody else owns (the kernel sets O_CLOEXEC).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_send_signal(2) of `sig` to the process behind `pidfd`: never to a
/// process that took its pid over after it died (ESRCH instead).
pub fn send_signal(pidfd: std::os::fd::BorrowedFd<'_>, sig: i32) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall; a null siginfo and flags 0 make it kill(2).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    check(r, "pidfd_send_signal", sig)?;
    Ok(())
}

/// Whether the process behind `pidfd` has not been reaped yet (it may be a
/// zombie). Until it is, its pid is its own: what /proc/PID said before
/// this call was said of it.
pub fn alive(pidfd: std::os::fd::BorrowedFd<'_>) -> bool {
    send_signal(pidfd, 0).is_ok()
}
