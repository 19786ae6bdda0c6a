//! `ready: !Notify`: the sd_notify protocol on a notify socket of the
//! instance's own (`NOTIFY_SOCKET`). This file is the pure part: what an
//! instance's socket holds, reading a datagram (`parse`), and who may
//! speak (`decide`). The loop's side is `tree::sdnotify_loop`.
//!
//! - The tree binds one `AF_UNIX` datagram socket per start, in
//!   `<runtime-dir>/notify/` (root's alone, 0700), and the knot binds its
//!   file read-only onto `/dev/cairn-notify` in the container
//!   (`spec::NOTIFY_SOCKET_PATH`). The workload can send to it, never
//!   replace it (its `/dev` is read-only, the host dir out of its reach).
//! - Every datagram carries its sender's pid (`SCM_CREDENTIALS`). It is
//!   believed only when that process is in the instance's pid namespace
//!   (the knot's: every process of the container, and none other; a host
//!   process, root or not, and another instance are refused). The pid
//!   namespace, not the cgroup: it holds with cgroups off too, and a
//!   workload cannot leave it.
//! - `READY=1` is the readiness event (after the exec, as for the other
//!   probes); `STATUS=` shows in `ps`; `STOPPING=1` is logged and stops the
//!   watchdog; `WATCHDOG=1` feeds the watchdog (`watchdog-timeout`);
//!   `EXTEND_TIMEOUT_USEC=` moves the ready deadline (at most
//!   `EXTEND_MAX` from now). Other keys are ignored.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// The longest datagram read whole (systemd's limit too); a longer one is
/// dropped.
pub const DATAGRAM_MAX: usize = 4096;
/// The longest `STATUS=` kept, in bytes once escaped.
pub const STATUS_MAX: usize = 256;
/// One `EXTEND_TIMEOUT_USEC=` moves the ready deadline at most this far
/// from now (a service may send it again).
pub const EXTEND_MAX: Duration = Duration::from_secs(3600);
/// The dir below the runtime dir that holds the socket files.
pub const DIR: &str = "notify";

/// An instance's notify socket and what it was told, for one start.
pub struct NotifySock {
    /// The bound socket (non-blocking, `SO_PASSCRED`).
    pub socket: OwnedFd,
    /// The knot's pid namespace (`pid:[N]`), read at the first datagram.
    pub pid_ns: Option<String>,
    /// `READY=1` came (maybe before the tree saw the exec).
    pub ready_seen: bool,
    /// The last `STATUS=`, escaped and capped.
    pub status: Option<String>,
    /// `STOPPING=1` came.
    pub stopping: bool,
    /// When the watchdog bites, while it is armed (running, with
    /// `watchdog-timeout`, not stopping).
    pub watchdog: Option<Instant>,
    /// Datagrams refused in this start (their senders were not of the
    /// instance, or unknown), for the log's rate limit.
    pub refused: u64,
}

impl NotifySock {
    pub fn new(socket: OwnedFd) -> NotifySock {
        NotifySock {
            socket,
            pid_ns: None,
            ready_seen: false,
            status: None,
            stopping: false,
            watchdog: None,
            refused: 0,
        }
    }
}

/// A notify socket in the upgrade hand-off: its fd crosses the exec, so
/// `READY=1` and `WATCHDOG=1` reach the new image; the rest is its state.
/// (An older cairn ignores it: its instances keep running, unwatched.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HNotify {
    pub fd: i32,
    #[serde(default)]
    pub pid_ns: Option<String>,
    #[serde(default)]
    pub ready_seen: bool,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub stopping: bool,
    /// Milliseconds until the watchdog bites, when armed.
    #[serde(default)]
    pub watchdog_in_ms: Option<u64>,
    #[serde(default)]
    pub refused: u64,
}

impl NotifySock {
    /// For the hand-off (the fd must then lose close-on-exec).
    pub fn handoff(&self, now: Instant) -> HNotify {
        use std::os::fd::AsRawFd;
        let NotifySock {
            socket,
            pid_ns,
            ready_seen,
            status,
            stopping,
            watchdog,
            refused,
        } = self;
        HNotify {
            fd: socket.as_raw_fd(),
            pid_ns: pid_ns.clone(),
            ready_seen: *ready_seen,
            status: status.clone(),
            stopping: *stopping,
            watchdog_in_ms: watchdog.map(|w| {
                w.saturating_duration_since(now)
                    .as_millis()
                    .min(u128::from(u64::MAX)) as u64
            }),
            refused: *refused,
        }
    }

    /// Back from the hand-off, with its socket (adopted by the caller).
    pub fn restore(h: HNotify, socket: OwnedFd, now: Instant) -> NotifySock {
        NotifySock {
            socket,
            pid_ns: h.pid_ns,
            ready_seen: h.ready_seen,
            status: h.status,
            stopping: h.stopping,
            watchdog: h.watchdog_in_ms.map(|ms| now + Duration::from_millis(ms)),
            refused: h.refused,
        }
    }
}

/// What one datagram says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Message {
    pub ready: bool,
    pub status: Option<String>,
    pub stopping: bool,
    pub watchdog: bool,
    /// `WATCHDOG=trigger`: the service asks to be treated as hung.
    pub watchdog_trigger: bool,
    pub extend: Option<Duration>,
}

/// Read a datagram: newline-separated `KEY=VALUE` assignments; the last
/// of a key wins; unknown keys, lines without `=` and values other than
/// the protocol's are ignored. `STATUS` is escaped (`text::escape_bytes`)
/// and capped at `STATUS_MAX` bytes; `EXTEND_TIMEOUT_USEC` at
/// `EXTEND_MAX`.
pub fn parse(bytes: &[u8]) -> Message {
    let mut m = Message::default();
    for line in bytes.split(|&b| b == b'\n') {
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        match key {
            b"READY" => m.ready |= value == b"1",
            b"STOPPING" => m.stopping |= value == b"1",
            b"WATCHDOG" if value == b"1" => m.watchdog = true,
            b"WATCHDOG" if value == b"trigger" => m.watchdog_trigger = true,
            b"STATUS" => m.status = Some(status_text(value)),
            b"EXTEND_TIMEOUT_USEC" => {
                if let Some(us) = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    m.extend = Some(Duration::from_micros(us).min(EXTEND_MAX));
                }
            }
            _ => {}
        }
    }
    m
}

/// A `STATUS=` value as `ps` shows it: escaped, at most `STATUS_MAX`
/// bytes (cut on a character, never inside an escape's character).
fn status_text(value: &[u8]) -> String {
    let shown = crate::text::escape_bytes(value);
    if shown.len() <= STATUS_MAX {
        return shown.into_owned();
    }
    let mut end = STATUS_MAX;
    while !shown.is_char_boundary(end) {
        end -= 1;
    }
    shown[..end].to_string()
}

/// Whether a datagram is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Dropped, and why (for the log).
    Refuse(&'static str),
}

/// Who may speak: the sender (its pid from the kernel, and the pid
/// namespace /proc shows for that pid when we looked) against the
/// instance (its knot's pid namespace). `proc_is_ours`: /proc numbers
/// processes as our pid namespace does (else a pid from the kernel names
/// another process there, and nothing can be checked).
pub fn decide(
    sender_pid: Option<i32>,
    sender_ns: Option<&str>,
    instance_ns: Option<&str>,
    proc_is_ours: bool,
) -> Verdict {
    let Some(pid) = sender_pid else {
        return Verdict::Refuse("no sender credentials");
    };
    if pid <= 0 {
        // 0: the sender is in a pid namespace we cannot see into.
        return Verdict::Refuse("sender not visible");
    }
    if !proc_is_ours {
        return Verdict::Refuse("/proc is not of the tree's pid namespace");
    }
    let Some(inst) = instance_ns else {
        return Verdict::Refuse("the instance's pid namespace is unknown");
    };
    match sender_ns {
        // Gone before we looked (or its pid is someone else's now): its
        // namespace cannot be told, so nothing it said is believed.
        None => Verdict::Refuse("sender gone before it could be checked"),
        Some(ns) if ns == inst => Verdict::Accept,
        Some(_) => Verdict::Refuse("sender is not a process of the instance"),
    }
}

/// The socket file's name for an instance: its name with `/` as `:` when
/// that is short and plain, else a hash of it.
pub fn file_name(instance: &str) -> String {
    let plain = instance
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':'));
    if plain && instance.len() <= 64 && !instance.starts_with('.') {
        return instance.replace('/', ":");
    }
    // FNV-1a: short and stable; the dir is root's alone, so a collision
    // could only move one of our own instances' files.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in instance.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Whether a count of refused datagrams is one to log (1, 10, 100, ...).
pub fn log_refusal(count: u64) -> bool {
    count > 0 && {
        let mut c = count;
        while c % 10 == 0 {
            c /= 10;
        }
        c == 1
    }
}

#[cfg(test)]
#[path = "sdnotify_tests.rs"]
mod tests;
