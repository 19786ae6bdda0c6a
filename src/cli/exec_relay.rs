//! `cairn exec`: while the command runs, its stdio goes through us. The
//! caller's stdin, stdout and stderr are never the command's own fds: it
//! gets pipes (or, with `-t`, a terminal of its container's devpts), and
//! we copy between those and the caller's. So nothing of the host is open
//! in the container (a terminal's or a file's path in /proc/PID/fd, a
//! file to reopen through that link), and the caller's terminal is not
//! the command's controlling terminal. Signals sent to us are passed on
//! to the command; with `-t`, the terminal's size follows the caller's.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use crate::sys::init_policy::{self, Action};
use crate::sys::process::{self, Exit};
use crate::sys::{fd, pty, signal};

/// How much is read at once.
const CHUNK: usize = 64 << 10;

/// Where the caller's stdin goes, and what comes back to its stdout and
/// stderr.
pub struct Relay {
    /// The command (our child).
    pub child: i32,
    pub sigfd: OwnedFd,
    /// The command's stdin: our end of its pipe, or the pty's master.
    pub input: Option<OwnedFd>,
    /// (our end of a pipe or the pty's master, the caller's fd it goes to).
    pub outputs: Vec<(OwnedFd, RawFd)>,
    /// With `-t`: the pty's master, resized as the caller's terminal.
    pub master: Option<OwnedFd>,
}

impl Relay {
    /// Copy until the command ends; its exit. Output it wrote before it
    /// ended is copied whole; what a process it left running writes
    /// later is not waited for.
    pub fn run(mut self) -> Exit {
        let mut stdin_open = self.input.is_some() && fd::is_open(0);
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let mut fds: Vec<(RawFd, libc::c_short, libc::c_short)> =
                vec![(raw(&self.sigfd), libc::POLLIN, 0)];
            let input_at = match &self.input {
                Some(inp) if !pending.is_empty() => {
                    fds.push((raw(inp), libc::POLLOUT, 0));
                    Some(fds.len() - 1)
                }
                _ => None,
            };
            let stdin_at = (stdin_open && pending.is_empty()).then(|| {
                fds.push((0, libc::POLLIN, 0));
                fds.len() - 1
            });
            let first_out = fds.len();
            for (f, _) in &self.outputs {
                fds.push((raw(f), libc::POLLIN, 0));
            }
            if fd::poll(&mut fds, -1).is_err() {
                continue;
            }
            if fds[0].2 != 0
                && let Some(exit) = self.signals()
            {
                self.drain(&mut buf);
                return exit;
            }
            if let Some(i) = stdin_at
                && fds[i].2 != 0
            {
                match fd::read_raw(0, &mut buf) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        // End of input: the command's stdin pipe closes
                        // (a terminal has no end; it stays).
                        if self.master.is_none() {
                            self.input = None;
                        }
                    }
                    Ok(k) => pending.extend_from_slice(&buf[..k]),
                }
            }
            if let (Some(i), Some(inp)) = (input_at, &self.input)
                && fds[i].2 != 0
            {
                match fd::write_some(inp.as_fd(), &pending) {
                    Ok(k) => {
                        pending.drain(..k);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                    // The command closed its stdin: drop the rest.
                    Err(_) => {
                        pending.clear();
                        stdin_open = false;
                        self.input = None;
                    }
                }
            }
            let mut gone = Vec::new();
            for (k, (f, to)) in self.outputs.iter().enumerate() {
                if fds[first_out + k].2 != 0 && copy_once(f.as_fd(), *to, &mut buf).is_none() {
                    gone.push(k);
                }
            }
            for k in gone.into_iter().rev() {
                self.outputs.remove(k);
            }
        }
    }

    /// Handle what the signalfd holds; the command's exit once it ended.
    fn signals(&mut self) -> Option<Exit> {
        let mut ended = None;
        while let Ok(Some(si)) = signal::read_signal(self.sigfd.as_fd()) {
            if si.signo == libc::SIGWINCH {
                if let (Some(m), Some(size)) = (&self.master, pty::caller_size()) {
                    let _ = pty::set_window_size(m.as_fd(), size);
                }
                continue;
            }
            // The command has a session of its own: a key typed at the
            // caller's terminal (Ctrl-C) reached only us; pass it on.
            match init_policy::on_signal(si.signo as u32, si.code, false) {
                Action::Reap => {
                    while let Some((pid, exit)) = process::reap_any() {
                        if pid == self.child {
                            ended = Some(exit);
                        }
                    }
                }
                Action::Forward if ended.is_none() => {
                    let _ = process::kill(self.child, si.signo);
                }
                Action::Forward | Action::Ignore => {}
            }
        }
        ended
    }

    /// After the end: copy what is there to read, without waiting for more.
    fn drain(&mut self, buf: &mut [u8]) {
        for (f, to) in &self.outputs {
            while copy_once(f.as_fd(), *to, buf) == Some(true) {}
        }
    }
}

fn raw(f: &OwnedFd) -> RawFd {
    std::os::fd::AsRawFd::as_raw_fd(f)
}

/// One read from `from` (non-blocking), written whole to the caller's
/// fd `to`: `Some(true)` when something was copied, `Some(false)` when
/// nothing is there yet (EAGAIN), `None` when nothing more will come (end
/// of file; EIO, a pty whose every slave side is closed; an error).
fn copy_once(from: BorrowedFd<'_>, to: RawFd, buf: &mut [u8]) -> Option<bool> {
    let n = match fd::read_some(from, buf) {
        Ok(0) => return None,
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Some(false),
        Err(_) => return None,
    };
    // A caller whose stdout is gone loses the rest; we still read it, so
    // the command never blocks on a full pipe.
    let _ = fd::write_all_raw(to, &buf[..n]);
    Some(true)
}
