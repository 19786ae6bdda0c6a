//! The tree's log. One record per line, the message escaped
//! (`crate::text::escape`) whatever the destination, which is one of
//! (`target` decides, in this order):
//!
//! - stderr (`--log-stderr`): `TIME LEVEL message`;
//! - syslog (`syslog-facility`): datagrams to `/dev/log` in the form
//!   glibc's syslog(3) sends (`syslog`);
//! - the journal, natively (under systemd with stderr connected to the
//!   journal, unless `log-journal: false`): datagrams to
//!   `/run/systemd/journal/socket` (`journal`);
//! - the log file (`log-file`): `TIME LEVEL message`.
//!
//! A socket that is missing or refuses never blocks or stops the tree:
//! the line goes to stderr and the next one tries the socket again
//! (`remote`).

mod journal;
mod remote;
mod syslog;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

pub use journal::{JOURNAL_SOCKET, stderr_is_journal};
pub use syslog::SYSLOG_SOCKET;

use crate::text::rfc3339_ms;
use remote::{Form, Remote};

/// Where the tree logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    Stderr,
    /// `facility` is syslog(3)'s code (`daemon` is 3, `local0` 16).
    Syslog {
        facility: u8,
        name: &'a str,
    },
    Journal {
        name: &'a str,
    },
    File(&'a Path),
}

/// The precedence of the tree's log destinations: `--log-stderr`, then
/// `syslog-facility`, then the journal (when `journal`: detected and not
/// turned off), then `log-file`.
pub fn target<'a>(
    log_stderr: bool,
    syslog_facility: Option<u8>,
    journal: bool,
    name: &'a str,
    file: &'a Path,
) -> Target<'a> {
    match (log_stderr, syslog_facility, journal) {
        (true, _, _) => Target::Stderr,
        (false, Some(facility), _) => Target::Syslog { facility, name },
        (false, None, true) => Target::Journal { name },
        (false, None, false) => Target::File(file),
    }
}

/// Why the log could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file (the error names it).
    #[error("{0}")]
    Open(#[from] crate::sys::hostfs::Error),
    #[error("a logger is installed already")]
    Installed,
}

enum Sink {
    Stderr,
    /// The file and its path, to open again on SIGHUP.
    File(std::fs::File, PathBuf),
    Remote(Remote),
}

struct Logger {
    sink: Mutex<Sink>,
    level: log::LevelFilter,
}

static LOGGER: std::sync::OnceLock<&'static Logger> = std::sync::OnceLock::new();

/// Root's alone, never through a symlink (sys::hostfs).
fn open(p: &Path) -> Result<std::fs::File, LogError> {
    Ok(crate::sys::hostfs::open_log(p)?)
}

/// On SIGHUP: open the log file again (after logrotate moved it away), or
/// connect to the syslog or journal socket again at the next line (a
/// daemon that was restarted has a new socket).
pub fn reopen() {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    let Ok(mut sink) = logger.sink.lock() else {
        return;
    };
    match &mut *sink {
        Sink::Stderr => {}
        Sink::File(f, path) => {
            if let Ok(new) = open(path) {
                *f = new;
            }
        }
        Sink::Remote(r) => r.reset(),
    }
}

/// `TIME LEVEL message` and a newline: a line of the log file and of
/// stderr.
fn text_line(now: SystemTime, level: log::Level, message: &str) -> String {
    format!("{} {level} {message}\n", rfc3339_ms(now))
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // The whole message is escaped here, so that no caller can forget:
        // what it quotes (a config value, a path, a knot's error) may come
        // from an image and must stay inside this one line.
        let message = r.args().to_string();
        let message = crate::text::escape(&message);
        let now = SystemTime::now();
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        // A line that cannot be written has nowhere else to go.
        let _ = match &mut *sink {
            Sink::Stderr => {
                std::io::stderr().write_all(text_line(now, r.level(), &message).as_bytes())
            }
            Sink::File(f, _) => f.write_all(text_line(now, r.level(), &message).as_bytes()),
            Sink::Remote(remote) => {
                remote.write(r.level(), &message, now, &mut std::io::stderr());
                Ok(())
            }
        };
    }
    fn flush(&self) {}
}

/// Install the global logger.
pub fn init(target: Target<'_>, level: log::LevelFilter) -> Result<(), LogError> {
    let sink = match target {
        Target::Stderr => Sink::Stderr,
        Target::File(p) => Sink::File(open(p)?, p.to_path_buf()),
        Target::Syslog { facility, name } => Sink::Remote(Remote::new(
            Form::Syslog {
                facility,
                name: name.to_string(),
            },
            Path::new(SYSLOG_SOCKET),
        )),
        Target::Journal { name } => Sink::Remote(Remote::new(
            Form::Journal {
                name: name.to_string(),
            },
            Path::new(JOURNAL_SOCKET),
        )),
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        sink: Mutex::new(sink),
        level,
    }));
    log::set_logger(logger).map_err(|_| LogError::Installed)?;
    let _ = LOGGER.set(logger);
    log::set_max_level(level);
    Ok(())
}

#[cfg(test)]
mod tests;
