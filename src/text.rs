//! Untrusted text made safe for one line of a log or a terminal.
//!
//! Container configs come from images, and what they say (keys, values,
//! variable names, paths) ends up quoted in error messages. Written raw, a
//! newline in such a value forges a well-formed line in the tree's log or
//! a sandbox log, and an escape sequence (`ESC ] ... BEL`, `ESC [ 2J`)
//! drives the operator's terminal. `escape` shows every such character as
//! a visible escape instead, and escapes the backslash too, so the output
//! is unambiguous (see `tests::escaping_is_injective`).
//!
//! The rule for callers: text stays raw where it is stored (an instance's
//! `error` file, state.json, a `ConfigError`) and is escaped exactly once,
//! where it leaves cairn for a log line or a terminal. JSON output needs
//! nothing more (serde escapes control characters), and must not get this
//! on top, or a backslash would show doubled.
//!
//! This module depends on nothing of cairn, so every layer can use it.

use std::borrow::Cow;
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether `c` must not reach a log line or a terminal as it is: the
/// backslash (the escape character itself), every control character
/// (C0 including `\n`, `\r`, `\t` and ESC; DEL; C1, U+0080..U+009F, which
/// some terminals read as CSI, OSC and NEL), every Unicode bidi control
/// (embeddings, overrides, isolates and marks: they reorder what is shown,
/// "Trojan Source"), and the Unicode line and paragraph separators (a line
/// break to some viewers).
pub fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200e}' | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}')
}

/// `s` with every character `needs_escape` names shown as an escape:
/// `\\`, `\n`, `\r`, `\t`, `\xNN` for other ASCII controls (NN < 80), and
/// `\u{N}` for the rest (C1, bidi, separators). Borrowed when nothing
/// needed escaping, which is the common case.
pub fn escape(s: &str) -> Cow<'_, str> {
    match s.find(needs_escape) {
        None => Cow::Borrowed(s),
        Some(first) => {
            let mut out = String::with_capacity(s.len() + 8);
            out.push_str(&s[..first]);
            push_escaped(&mut out, &s[first..]);
            Cow::Owned(out)
        }
    }
}

/// Like `escape`, for bytes that may not be UTF-8 (a path from the file
/// system): a byte that is not part of valid UTF-8 shows as `\xNN`, with
/// NN >= 80, so it cannot be mistaken for a character (`\xNN` from a
/// character is always below 80, and the rest are `\u{N}`).
pub fn escape_bytes(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => escape(s),
        Err(_) => {
            let mut out = String::with_capacity(b.len() + 8);
            for chunk in b.utf8_chunks() {
                push_escaped(&mut out, chunk.valid());
                for byte in chunk.invalid() {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
            Cow::Owned(out)
        }
    }
}

/// JSON text (as serde_json writes it) made safe for a log line or a
/// terminal without changing what it means: serde escapes C0 controls, the
/// quote and the backslash, but leaves DEL, C1, bidi controls and the line
/// separators raw. Those can only be inside strings, where `\uXXXX` is the
/// same character; they are written so. `\n`, `\r` and `\t` are left as
/// they are (raw, they can only be whitespace between tokens, which
/// compact JSON has none of). Not `escape` on top: that would double every
/// backslash and change the value.
pub fn json(s: &str) -> Cow<'_, str> {
    let raw = |c: char| needs_escape(c) && !matches!(c, '\\' | '\n' | '\r' | '\t');
    match s.find(raw) {
        None => Cow::Borrowed(s),
        Some(first) => {
            let mut out = String::with_capacity(s.len() + 8);
            out.push_str(&s[..first]);
            for c in s[first..].chars() {
                if raw(c) {
                    // All of them are in the BMP: one `\uXXXX` each.
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    out.push(c);
                }
            }
            Cow::Owned(out)
        }
    }
}

/// A path for a log line or a terminal (`escape_bytes` of its bytes).
pub fn path(p: &Path) -> Cow<'_, str> {
    escape_bytes(p.as_os_str().as_bytes())
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if !needs_escape(c) {
            out.push(c);
            continue;
        }
        // Writing to a String cannot fail.
        let _ = match c {
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if c.is_ascii() => write!(out, "\\x{:02x}", c as u32),
            c => write!(out, "\\u{{{:x}}}", c as u32),
        };
    }
}

/// RFC 3339 (UTC, seconds) for a system time.
/// RFC 3339 in UTC with milliseconds: `2026-12-03T07:53:54.123Z` (log
/// lines).
pub fn rfc3339_ms(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let s = rfc3339(t);
    format!("{}.{ms:03}Z", s.trim_end_matches('Z'))
}

pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let c = civil(i64::try_from(secs).unwrap_or(i64::MAX));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

// The calendar arithmetic is one `core`-only source, shared with the
// stdio log pump (which cairn-init, a freestanding program, includes too).
// Included, not imported: `text` and `sys` are one layer and may not
// import each other (tests/layers.rs), so the lib compiles it twice.
#[allow(clippy::duplicate_mod)]
#[path = "sys/civil.rs"]
mod civil_src;
pub use civil_src::{Civil, civil};

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
