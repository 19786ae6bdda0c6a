//! Pseudo-terminals (pty(7)) for `cairn exec -t`: a new pair in the
//! container's own devpts, the terminal's size, and raw mode for the
//! caller's terminal while its keys are relayed.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Error, Result, check};

/// The device number of every devpts instance's `ptmx` (5, 2): what an
/// fd opened from `/dev/ptmx` (a link to `pts/ptmx`) must be.
fn is_ptmx_dev(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && libc::major(st.st_rdev) == 5
        && libc::minor(st.st_rdev) == 2
}

/// Whether `fd` is the master side of a pseudo-terminal (a devpts ptmx).
pub fn is_master(fd: BorrowedFd<'_>) -> bool {
    super::fs::fstat(fd).is_ok_and(|st| is_ptmx_dev(&st))
}

/// A new pseudo-terminal from the `ptmx` that `master` was opened from
/// (close-on-exec, not our controlling terminal): unlock it and open its
/// other side through the master (`TIOCGPTPEER`, Linux 4.13), so no path
/// under `/dev/pts` is looked up. Returns the slave side.
pub fn open_peer(master: BorrowedFd<'_>) -> Result<OwnedFd> {
    if !is_master(master) {
        return Err(Error::new(
            "open",
            "/dev/ptmx",
            std::io::Error::other("not a pseudo-terminal multiplexer (char device 5:2)"),
        ));
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer we pass.
    check(
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) },
        "ioctl TIOCSPTLCK",
        "pty",
    )?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let s = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let s = check(s, "ioctl TIOCGPTPEER", "pty")?;
    // SAFETY: a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(s) })
}

/// Make the terminal `fd` the controlling terminal of our session (we
/// must lead a session that has none: after setsid(2)).
pub fn make_controlling(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: TIOCSCTTY with an integer argument (0: do not steal it).
    check(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) },
        "ioctl TIOCSCTTY",
        "pty",
    )?;
    Ok(())
}

/// Whether `fd` is a terminal.
pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty on an integer fd.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// The size of the terminal `fd` (rows, columns), if it is one.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    // SAFETY: a zeroed winsize is a valid out-buffer for TIOCGWINSZ.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize to the pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

/// The size of the terminal on our stdin, or else on our stdout.
pub fn caller_size() -> Option<(u16, u16)> {
    [0, 1].into_iter().find_map(|fd| {
        // SAFETY: a zeroed winsize is a valid out-buffer for TIOCGWINSZ,
        // which writes one to the pointer; an fd that is not open or not
        // a terminal is only an error.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        (r == 0).then_some((ws.ws_row, ws.ws_col))
    })
}

/// Put our stdin in raw mode, if it is a terminal (see `raw_mode`).
pub fn raw_stdin() -> Result<Option<RawMode>> {
    if !super::fd::is_open(0) {
        return Ok(None);
    }
    // SAFETY: fd 0 is open (checked just above) and stays open for our
    // life: we never close our stdin.
    raw_mode(unsafe { BorrowedFd::borrow_raw(0) })
}

/// Set the size of the terminal `fd` (the kernel tells its foreground
/// process group with SIGWINCH when it changes).
pub fn set_window_size(fd: BorrowedFd<'_>, (rows, cols): (u16, u16)) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    check(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        "ioctl TIOCSWINSZ",
        "pty",
    )?;
    Ok(())
}

/// A terminal put in raw mode, put back as it was when this is dropped.
pub struct RawMode {
    fd: libc::c_int,
    saved: libc::termios,
}

/// Put the terminal `fd` in raw mode (cfmakeraw(3)): keys go through as
/// bytes, Ctrl-C included, and nothing is echoed here. `None` when `fd`
/// is not a terminal. The fd must stay open while the `RawMode` lives.
pub fn raw_mode(fd: BorrowedFd<'_>) -> Result<Option<RawMode>> {
    if !is_tty(fd) {
        return Ok(None);
    }
    // SAFETY: a zeroed termios is a valid out-buffer for tcgetattr.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes one termios to the pointer.
    check(
        unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut saved) },
        "tcgetattr",
        "the terminal",
    )?;
    let mut raw = saved;
    // SAFETY: cfmakeraw only changes the struct it is given.
    unsafe { libc::cfmakeraw(&mut raw) };
    // SAFETY: tcsetattr reads one termios from the pointer.
    check(
        unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &raw) },
        "tcsetattr",
        "the terminal",
    )?;
    Ok(Some(RawMode {
        fd: fd.as_raw_fd(),
        saved,
    }))
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: tcsetattr reads the termios we saved; the fd is the
        // caller's terminal, open for as long as we live (see raw_mode).
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}
