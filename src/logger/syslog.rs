//! A syslog message as glibc's syslog(3) sends it to `/dev/log` (RFC 3164,
//! "BSD syslog"): `<PRI>Mmm dd hh:mm:ss NAME[PID]: message`, with PRI =
//! facility * 8 + severity, the time in local time (as localtime(3) gives
//! it: `TZ`, else /etc/localtime) and the day padded with a space
//! (`Dec  3`). No newline at the end.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::text::civil;

/// The local syslog socket: syslog(3)'s `_PATH_LOG`.
pub const SYSLOG_SOCKET: &str = "/dev/log";

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// syslog(3)'s severity of a log level: `LOG_ERR` (3), `LOG_WARNING` (4),
/// `LOG_INFO` (6), `LOG_DEBUG` (7). The journal's `PRIORITY=` is the same
/// number.
pub fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// `Mmm dd hh:mm:ss` of `secs` after the epoch, `offset` seconds ahead of
/// UTC.
pub fn timestamp(secs: i64, offset: i64) -> String {
    let c = civil(secs.saturating_add(offset));
    let month = MONTHS
        .get((c.month as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        c.day, c.hour, c.minute, c.second
    )
}

/// The datagram of one message (already escaped: one line).
pub fn datagram(
    facility: u8,
    level: log::Level,
    name: &str,
    pid: u32,
    now: SystemTime,
    message: &str,
) -> Vec<u8> {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let offset = crate::sys::process::utc_offset(secs).unwrap_or(0);
    let pri = u16::from(facility) * 8 + u16::from(severity(level));
    format!(
        "<{pri}>{} {name}[{pid}]: {message}",
        timestamp(secs, offset)
    )
    .into_bytes()
}
