//! How a start that never reached the workload is told to the knot:
//! `SpawnError` (the knot's exit status, the words for the operator, and
//! the `Failure` record for the tree), and its form on the error pipe,
//! which the workload's child writes before it exits, or cairn-init when
//! its execve of the workload fails.
//!
//! The pipe is close-on-exec: an execve that succeeds closes it with
//! nothing written, so end of file with no bytes means the workload runs.
//! Any byte on it means the start failed, whether or not the report
//! reads: one that is cut short, garbled, too long, or names a status
//! other than 125 to 127 is still a failure (of the setup stage, with no
//! errno), never taken for a success or for a normal exit.

use crate::protocol::{Failure, SETUP_FAILED, Stage};

/// Exit codes of a workload that never ran: exec failed, or the
/// executable was not found (shell conventions).
pub const EXEC_FAILED: i32 = 126;
pub const NOT_FOUND: i32 = 127;

/// The most the knot reads from the error pipe; a longer report is
/// unreadable (a real one is a few hundred bytes: a message and a path).
pub(super) const REPORT_CAP: usize = 64 << 10;

/// Why the workload did not start, and the status that reports it: 125
/// (`SETUP_FAILED`) for everything before execve, 126/127 for execve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpawnError {
    pub code: i32,
    pub message: String,
    /// The step that failed, its errno and path, for the tree
    /// (`exit-status`).
    pub failure: Option<Failure>,
}

impl SpawnError {
    /// A failure of `stage`, with the status it calls for: 127 for an
    /// executable that is not there, 126 for one that would not execute,
    /// 125 for anything before.
    pub(super) fn new(
        stage: Stage,
        message: String,
        errno: Option<i32>,
        path: Option<String>,
    ) -> SpawnError {
        let code = match stage {
            Stage::Executable if errno == Some(libc::ENOENT) => NOT_FOUND,
            Stage::Executable => EXEC_FAILED,
            Stage::Setup | Stage::Workdir => SETUP_FAILED,
        };
        SpawnError {
            code,
            message,
            failure: Some(Failure { stage, errno, path }),
        }
    }

    /// The report on the error pipe: a header line `F CODE STAGE ERRNO
    /// PATHLEN MSGLEN` (`-` for a stage, errno or path it does not have),
    /// then the path and the message, exactly PATHLEN and MSGLEN bytes:
    /// any byte may be in either (a path from a container config may hold
    /// spaces and newlines), and a report cut short shows.
    pub(super) fn to_wire(&self) -> Vec<u8> {
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let f = self.failure.as_ref();
        let stage = f.map_or("-", |f| f.stage.as_str());
        let errno = dash(f.and_then(|f| f.errno).map(|e| e.to_string()));
        let path = f.and_then(|f| f.path.as_deref());
        let plen = dash(path.map(|p| p.len().to_string()));
        let mut out = format!(
            "F {} {stage} {errno} {plen} {}\n",
            self.code,
            self.message.len()
        )
        .into_bytes();
        out.extend_from_slice(path.unwrap_or("").as_bytes());
        out.extend_from_slice(self.message.as_bytes());
        out
    }

    /// What the error pipe held, read to its end (at most `REPORT_CAP`
    /// bytes and one more): `None` when it was empty (the workload
    /// exec'd), else the failure. Besides our own report, it reads
    /// cairn-init's `E<errno>` (its execve of `executable` failed) and
    /// the report of an older cairn, `CODE STAGE ERRNO MESSAGE`.
    pub(super) fn from_report(executable: &str, bytes: &[u8]) -> Option<SpawnError> {
        if bytes.is_empty() {
            return None;
        }
        let read = if bytes.len() > REPORT_CAP {
            None
        } else {
            tagged(bytes)
                .or_else(|| from_init(executable, bytes))
                .or_else(|| untagged(bytes))
        };
        Some(read.unwrap_or_else(|| unreadable(bytes)))
    }
}

/// A report that does not read: a failure all the same.
fn unreadable(bytes: &[u8]) -> SpawnError {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    SpawnError::new(
        Stage::Setup,
        format!(
            "the workload's start failed and its report does not read ({} bytes: {shown:?})",
            bytes.len()
        ),
        None,
        None,
    )
}

/// A status a report may name (what a start that failed exits with).
fn code(s: &str) -> Option<i32> {
    s.parse()
        .ok()
        .filter(|c| (SETUP_FAILED..=NOT_FOUND).contains(c))
}

/// `-` (none) or a value; `None` when it is neither.
fn opt<T: std::str::FromStr>(s: &str) -> Option<Option<T>> {
    if s == "-" {
        Some(None)
    } else {
        s.parse().ok().map(Some)
    }
}

fn stage(s: &str) -> Option<Option<Stage>> {
    if s == "-" {
        Some(None)
    } else {
        Stage::parse(s).map(Some)
    }
}

/// Our report (`to_wire`), when it is whole and well formed.
fn tagged(bytes: &[u8]) -> Option<SpawnError> {
    let rest = bytes.strip_prefix(b"F ")?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&rest[..nl]).ok()?;
    let body = &rest[nl + 1..];
    let [c, st, e, pl, ml] = head.split(' ').collect::<Vec<_>>()[..] else {
        return None;
    };
    let (code, stage, errno) = (code(c)?, stage(st)?, opt::<i32>(e)?);
    let plen: Option<usize> = opt(pl)?;
    let mlen: usize = ml.parse().ok()?;
    if plen.unwrap_or(0).checked_add(mlen)? != body.len() {
        return None;
    }
    let (path, message) = body.split_at(plen.unwrap_or(0));
    let path = match plen {
        Some(_) => Some(String::from_utf8(path.to_vec()).ok()?),
        None => None,
    };
    Some(SpawnError {
        code,
        message: String::from_utf8(message.to_vec()).ok()?,
        failure: stage.map(|stage| Failure { stage, errno, path }),
    })
}

/// cairn-init's `E<errno>`: its execve of the workload failed.
fn from_init(executable: &str, bytes: &[u8]) -> Option<SpawnError> {
    let digits = bytes.strip_prefix(b"E")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let errno: i32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let e = std::io::Error::from_raw_os_error(errno);
    Some(SpawnError::new(
        Stage::Executable,
        format!("cannot execute {executable}: {e}"),
        Some(errno),
        Some(executable.to_string()),
    ))
}

/// An older cairn's report, `CODE STAGE ERRNO MESSAGE` (no path).
fn untagged(bytes: &[u8]) -> Option<SpawnError> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut it = text.splitn(4, ' ');
    let (c, st, e, message) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let (code, stage, errno) = (code(c)?, stage(st)?, opt::<i32>(e)?);
    Some(SpawnError {
        code,
        message: message.to_string(),
        failure: stage.map(|stage| Failure {
            stage,
            errno,
            path: None,
        }),
    })
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
