//! Thin typed wrappers over kernel features. This is the only module with
//! `unsafe` and raw syscalls; each wrapper is small, names the man page it
//! follows, and returns an error that names the operation and its target.

pub mod caps;
pub mod cgroup;
pub mod confine;
pub mod crash;
pub mod dgram;
pub mod embedded;
pub mod event;
pub mod fd;
pub mod fs;
pub mod hostfs;
pub mod idmap;
pub mod init_policy;
pub mod inotify;
pub mod keyring;
pub mod log_file;
pub mod log_pump;
pub mod mount;
pub mod namespace;
pub mod pidfd;
pub mod proc;
pub mod process;
pub mod proctitle;
pub mod pty;
pub mod remove;
pub mod rlimit;
pub mod seccomp;
pub mod signal;
pub mod socket;

use std::fmt;
use std::io;

/// A failed system call: what we tried, on what, and the errno.
#[derive(Debug)]
pub struct Error {
    pub op: &'static str,
    pub target: String,
    pub source: io::Error,
}

impl Error {
    /// The error of the last failed libc call.
    pub fn last(op: &'static str, target: impl fmt::Display) -> Error {
        Error {
            op,
            target: target.to_string(),
            source: io::Error::last_os_error(),
        }
    }
    pub fn new(op: &'static str, target: impl fmt::Display, source: io::Error) -> Error {
        Error {
            op,
            target: target.to_string(),
            source,
        }
    }
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.target.is_empty() {
            write!(f, "{}: {}", self.op, self.source)
        } else {
            write!(f, "{} {}: {}", self.op, self.target, self.source)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Turn a `-1` return into an error (for libc calls returning c_int/c_long).
fn check<T: Into<i64> + Copy>(ret: T, op: &'static str, target: impl fmt::Display) -> Result<T> {
    if ret.into() == -1 {
        Err(Error::last(op, target))
    } else {
        Ok(ret)
    }
}

fn cstr(s: &str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| {
        Error::new(
            "path",
            s.escape_debug(),
            io::Error::new(io::ErrorKind::InvalidInput, "contains a NUL byte"),
        )
    })
}
