//! The fd table: pipes, dups, close-on-exec, closing ranges, memfds.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

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

/// A close-on-exec pipe whose read end does not block: (read end, write
/// end).
pub fn pipe_nonblocking_read() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = pipe()?;
    // SAFETY: fcntl on our own fd.
    let flags = check(
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_GETFL) },
        "fcntl",
        "F_GETFL",
    )?;
    // SAFETY: as above.
    check(
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) },
        "fcntl",
        "F_SETFL O_NONBLOCK",
    )?;
    Ok((r, w))
}

/// One read(2) into `buf`: the bytes read (0 at the end), or the error
/// (EAGAIN when a non-blocking fd has nothing yet). EINTR is retried.
pub fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One write(2) of `buf`, without SIGPIPE for a socket whose peer is gone
/// (send(2) with MSG_NOSIGNAL): the bytes written.
pub fn send_some(fd: BorrowedFd<'_>, buf: &[u8]) -> std::io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
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

/// fstat(2): the device and inode of what `fd` refers to (for systemd's
/// `JOURNAL_STREAM=DEV:INODE`, which names the journal's stream socket).
pub fn dev_ino(fd: BorrowedFd<'_>) -> Result<(u64, u64)> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a pointer to a stat of the right size.
    check(
        unsafe { libc::fstat(fd.as_raw_fd(), &mut st) },
        "fstat",
        fd.as_raw_fd(),
    )?;
    Ok((st.st_dev, st.st_ino))
}

/// One write(2) of `buf` to any fd (a pipe, a terminal): the bytes
/// written, or the error (EAGAIN when a non-blocking fd is full, EPIPE
/// when nobody reads; SIGPIPE must be blocked or ignored). EINTR is
/// retried.
pub fn write_some(fd: BorrowedFd<'_>, buf: &[u8]) -> std::io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Set O_NONBLOCK on `fd` (its open file description: every copy of it).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: fcntl on a live fd.
    let flags = check(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) },
        "fcntl",
        "F_GETFL",
    )?;
    // SAFETY: as above.
    check(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) },
        "fcntl",
        "F_SETFL O_NONBLOCK",
    )?;
    Ok(())
}

/// Whether fd `fd` is open.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on an integer; fails with EBADF when not open.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// read(2) from an fd given by number, such as the caller's stdin, which
/// may not even be open (EBADF then): as `read_some`.
pub fn read_raw(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes; a closed fd is
        // only an error.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Write all of `buf` to an fd given by number (the caller's stdout or
/// stderr), waiting for room when it is non-blocking and full. Stops at
/// the first other error (EPIPE, EBADF), which it returns.
pub fn write_all_raw(fd: RawFd, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for `buf.len()` bytes; a closed fd is
        // only an error.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n > 0 {
            buf = &buf[n as usize..];
            continue;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                poll(&mut [(fd, libc::POLLOUT, 0)], -1)?;
            }
            _ if n == 0 => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            _ => return Err(e),
        }
    }
    Ok(())
}

/// poll(2) of (fd, events, revents) triples; fills in each `revents`.
/// Returns how many have events (0 on timeout); EINTR counts as 0.
pub fn poll(
    fds: &mut [(RawFd, libc::c_short, libc::c_short)],
    timeout_ms: i32,
) -> std::io::Result<usize> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events, _)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    // SAFETY: a valid array of pollfds for its length.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    for (f, q) in fds.iter_mut().zip(&p) {
        f.2 = q.revents;
    }
    Ok(n as usize)
}
