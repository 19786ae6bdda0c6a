//! Readiness probes: their state per instance, and the pure parts (the
//! HTTP request and status line). The event loop runs them without
//! blocking (`tree::readiness`).
//!
//! - `!Fd N`: the tree made a pipe at the start; the workload got its
//!   write end as fd N. A newline read from it is ready.
//! - `!Tcp PORT`: a non-blocking connect to 127.0.0.1:PORT in the
//!   container's network namespace (a bridged instance's own; the host's
//!   otherwise) that succeeds is ready.
//! - `!Http`: that connect, then `GET PATH HTTP/1.0`, and a status line
//!   with a 2xx or 3xx code is ready.
//! - `!Exec`: a command run inside the instance (`tree::exec_probe`) that
//!   exits 0 is ready.
//!
//! Connect and `!Exec` probes are tried every `RETRY` until the instance
//! is ready or its ready deadline passes; each attempt has `ATTEMPT` at
//! most (a health check's, `health-timeout`). Only an
//! instance that is Starting with its program running has one running;
//! an instance without a probe costs nothing (no timer, no fd).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Between two attempts of a connect probe.
pub const RETRY: Duration = Duration::from_millis(250);
/// One connect probe attempt, at most.
pub const ATTEMPT: Duration = Duration::from_secs(1);
/// The most an `!Fd` pipe is read before its newline: more, and the tree
/// stops reading it (the instance is not ready).
pub const FD_PROBE_MAX: usize = 4096;
/// The most of an HTTP answer read to find its status line.
const STATUS_LINE_MAX: usize = 512;

/// Token kinds (the low two bits of a poller token; the rest is the
/// instance's token).
pub const KIND_READY: u64 = 0;
pub const KIND_PIDFD: u64 = 1;
pub const KIND_FD_PROBE: u64 = 2;
/// A `!Notify` socket shares the `!Fd` pipe's kind: an instance has one
/// readiness fd at most, and the two low bits are all taken.
pub const KIND_NOTIFY: u64 = KIND_FD_PROBE;
pub const KIND_SOCKET: u64 = 3;

/// An instance's readiness probe (while it is starting) or health check
/// (while it runs).
#[derive(Default)]
pub struct Probe {
    /// A health check (`health-check`), not a readiness probe.
    pub health: bool,
    /// Health: failed attempts in a row.
    pub failures: u32,
    /// `!Fd`: the read end of the workload's ready pipe.
    pub pipe: Option<OwnedFd>,
    /// `!Fd`: the newline came (maybe before the knot reported the exec).
    pub seen: bool,
    /// `!Fd`: bytes read so far.
    pub read: usize,
    /// A connect probe's attempt in flight.
    pub attempt: Option<Attempt>,
    /// When the next connect attempt is due.
    pub next: Option<Instant>,
    /// An `!Exec` attempt under way (see `tree::exec_probe`).
    pub exec: Option<ExecAttempt>,
    /// The last trouble logged (logged again only when it changes).
    pub last_problem: Option<String>,
}

pub struct Attempt {
    pub fd: OwnedFd,
    /// Still connecting (watched for output), else reading the answer.
    pub connecting: bool,
    pub until: Instant,
    pub buf: Vec<u8>,
}

/// One `!Exec` attempt under way.
pub struct ExecAttempt {
    /// The command's pid (our child).
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The read end of its report pipe (non-blocking): empty once it
    /// exec'd, why it failed otherwise.
    pub report: OwnedFd,
    /// Held while it runs (see `protocol::Joined::alive`).
    pub alive: OwnedFd,
    pub until: Instant,
}

/// What an HTTP answer read so far says: `Some(true)` a 2xx/3xx status
/// line, `Some(false)` any other (or not HTTP), `None` not yet known.
pub fn http_status_ok(buf: &[u8]) -> Option<bool> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return (buf.len() >= STATUS_LINE_MAX).then_some(false);
    };
    let line = std::str::from_utf8(&buf[..end]).ok()?;
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Some(false);
    };
    if !version.starts_with("HTTP/") || code.len() != 3 {
        return Some(false);
    }
    Some(matches!(code.parse::<u16>(), Ok(200..=399)))
}

/// The request of an `!Http` probe.
pub fn http_request(path: &str, port: u16) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\nUser-Agent: cairn-probe\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_lines() {
        assert_eq!(http_status_ok(b""), None);
        assert_eq!(http_status_ok(b"HTTP/1.1 200 OK"), None);
        assert_eq!(http_status_ok(b"HTTP/1.1 200 OK\r\n"), Some(true));
        assert_eq!(
            http_status_ok(b"HTTP/1.0 204 No Content\r\nX: y"),
            Some(true)
        );
        assert_eq!(http_status_ok(b"HTTP/1.1 301 Moved\n"), Some(true));
        assert_eq!(http_status_ok(b"HTTP/1.1 399 x\n"), Some(true));
        assert_eq!(http_status_ok(b"HTTP/1.1 199 x\n"), Some(false));
        assert_eq!(http_status_ok(b"HTTP/1.1 400 Bad\r\n"), Some(false));
        assert_eq!(http_status_ok(b"HTTP/1.1 503 Unavailable\r\n"), Some(false));
        assert_eq!(http_status_ok(b"SSH-2.0-OpenSSH\r\n"), Some(false));
        assert_eq!(http_status_ok(b"HTTP/1.1 2000 x\n"), Some(false));
        assert_eq!(http_status_ok(b"HTTP/1.1\n"), Some(false));
        assert_eq!(http_status_ok(&[b'x'; STATUS_LINE_MAX]), Some(false));
        assert_eq!(http_status_ok(&[b'x'; STATUS_LINE_MAX - 1]), None);
    }

    #[test]
    fn http_requests_name_path_and_port() {
        let r = String::from_utf8(http_request("/ready?x=1", 8080)).unwrap();
        assert!(r.starts_with("GET /ready?x=1 HTTP/1.0\r\nHost: localhost:8080\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
