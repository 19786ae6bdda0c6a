//! The journal's native protocol (systemd's "Native Journal Protocol"):
//! one datagram per entry to `/run/systemd/journal/socket`, made of
//! fields. A field is `NAME=value` and a newline, or, when the value
//! holds a newline, `NAME`, a newline, the value's length as a 64-bit
//! little-endian number, the value and a newline.
//!
//! Whether to use it: systemd sets `JOURNAL_STREAM=DEV:INODE` (decimal)
//! for a service whose stdout or stderr it connected to the journal; the
//! tree logs natively when its stderr (fd 2) is that very stream, and not
//! when it merely inherited the variable from a parent whose stderr went
//! elsewhere.

use std::os::fd::AsFd;

/// Where journald takes native entries.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Append one field to `out`.
pub fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The datagram of one entry: `PRIORITY` (syslog's severity),
/// `SYSLOG_IDENTIFIER`, `SYSLOG_PID` and `MESSAGE`. journald stamps the
/// time itself, so the message carries none.
pub fn datagram(priority: u8, name: &str, pid: u32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + name.len() + 64);
    field(&mut out, "PRIORITY", priority.to_string().as_bytes());
    field(&mut out, "SYSLOG_IDENTIFIER", name.as_bytes());
    field(&mut out, "SYSLOG_PID", pid.to_string().as_bytes());
    field(&mut out, "MESSAGE", message.as_bytes());
    out
}

/// `DEV:INODE` of `JOURNAL_STREAM`.
pub fn parse_stream(s: &str) -> Option<(u64, u64)> {
    let (dev, ino) = s.split_once(':')?;
    let num = |t: &str| {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    Some((num(dev)?, num(ino)?))
}

/// Whether our stderr is the journal stream systemd named in
/// `JOURNAL_STREAM`.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some(want) = stream.to_str().and_then(parse_stream) else {
        return false;
    };
    crate::sys::fd::dev_ino(std::io::stderr().as_fd()).is_ok_and(|got| got == want)
}
