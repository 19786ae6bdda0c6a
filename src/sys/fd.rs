//! The fd table: pipes, dups, close-on-exec, closing ranges, memfds.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::process::nix_err;
use super::{Result, check, cstr};

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
