//! A log socket (syslog's or the journal's): an unbound, non-blocking
//! `AF_UNIX` datagram socket connected to the daemon's path.
//!
//! The tree must never wait for a log daemon, nor stop when one is gone
//! (restarting, not installed, its queue full): a line it cannot send goes
//! to stderr instead, as `TIME LEVEL message`, after one line that says
//! why. The next line tries again: a socket the daemon closed is dropped
//! and the path connected anew (a restarted daemon binds a new socket
//! there), at once, so a restart loses nothing. Once lines get through
//! again, a first one says how many went to stderr meanwhile.
//!
//! glibc's syslog(3) blocks instead (its socket is blocking) and falls
//! back to the console only with `LOG_CONS`.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{journal, syslog, text_line};

/// What the daemon at the other end reads.
pub enum Form {
    Syslog { facility: u8, name: String },
    Journal { name: String },
}

pub struct Remote {
    form: Form,
    path: PathBuf,
    sock: Option<UnixDatagram>,
    /// Lines that went to stderr since the socket last took one.
    missed: u64,
}

/// Errors after which a new connection may work: the daemon closed its
/// socket (restarted), or it is gone.
fn connection_lost(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::ECONNRESET
                | libc::ENOTCONN
                | libc::EPIPE
                | libc::ENOENT
                | libc::EDESTADDRREQ
        )
    )
}

impl Remote {
    pub fn new(form: Form, path: &Path) -> Remote {
        Remote {
            form,
            path: path.to_path_buf(),
            sock: None,
            missed: 0,
        }
    }

    /// Connect again at the next line.
    pub fn reset(&mut self) {
        self.sock = None;
    }

    fn datagram(&self, level: log::Level, message: &str, now: SystemTime) -> Vec<u8> {
        let pid = std::process::id();
        match &self.form {
            Form::Syslog { facility, name } => {
                syslog::datagram(*facility, level, name, pid, now, message)
            }
            Form::Journal { name } => {
                journal::datagram(syslog::severity(level), name, pid, message)
            }
        }
    }

    fn connect(&self) -> std::io::Result<UnixDatagram> {
        // Close-on-exec (std sets SOCK_CLOEXEC): no workload inherits it,
        // and a new tree image after an upgrade connects anew.
        let s = UnixDatagram::unbound()?;
        s.set_nonblocking(true)?;
        s.connect(&self.path)?;
        Ok(s)
    }

    fn send(&mut self, d: &[u8]) -> std::io::Result<()> {
        if let Some(s) = &self.sock {
            match s.send(d) {
                Ok(_) => return Ok(()),
                Err(e) if !connection_lost(&e) => return Err(e),
                Err(_) => self.sock = None,
            }
        }
        let s = self.connect()?;
        let sent = s.send(d);
        self.sock = Some(s);
        sent.map(|_| ())
    }

    /// Send one line (`message` escaped already); when that fails, write
    /// it to `fallback` (stderr).
    pub fn write(
        &mut self,
        level: log::Level,
        message: &str,
        now: SystemTime,
        fallback: &mut dyn Write,
    ) {
        let line = self.datagram(level, message, now);
        let sent = if self.missed > 0 {
            let note = format!(
                "{} takes the log again; {} line{} went to stderr meanwhile",
                self.path.display(),
                self.missed,
                if self.missed == 1 { "" } else { "s" }
            );
            let note = self.datagram(log::Level::Warn, &note, now);
            self.send(&note).and_then(|()| {
                self.missed = 0;
                self.send(&line)
            })
        } else {
            self.send(&line)
        };
        let Err(e) = sent else {
            return;
        };
        let mut text = String::new();
        if self.missed == 0 {
            let why = match e.kind() {
                ErrorKind::WouldBlock => "its queue is full".to_string(),
                _ => e.to_string(),
            };
            let note = format!(
                "cannot log to {}: {}; logging to stderr until it takes lines again",
                self.path.display(),
                crate::text::escape(&why)
            );
            text.push_str(&text_line(now, log::Level::Warn, &note));
        }
        self.missed += 1;
        text.push_str(&text_line(now, level, message));
        // Nowhere else to go if stderr fails too.
        let _ = fallback.write_all(text.as_bytes());
    }
}
