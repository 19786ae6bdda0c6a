//! The stdio log pump: what pid 1 of a container does with its workload's
//! output when the sandbox's stdio log is capped or prefixed. The workload
//! writes into a pipe; its init (cairn-init, or the knot while it stays
//! pid 1) reads the pipe and appends whole lines to the sandbox's log on
//! the host, each line optionally prefixed with the time and the
//! instance's name, and rotates the log when it reaches its size: the
//! current file is renamed `NAME.1`, `NAME.1` becomes `NAME.2`, and so on,
//! the oldest (`NAME.FILES`) is replaced. The tree itself does no work per
//! line: each instance's own pid 1 does it, and a workload that writes
//! faster than its log can take is slowed down by the full pipe, never
//! the disk filled.
//!
//! Several instances of a sandbox share one log. Each appends with
//! `O_APPEND` (one write per batch of whole lines, so lines never mix);
//! the one whose write brings the file to its size rotates under an
//! exclusive lock of the log dir, and only if the file it wrote is still
//! the current one (another may have rotated it first). The others notice
//! at their next write (their file is then past the size, and no longer
//! the current one) and reopen: a rotated file grows past the size by at
//! most one batch per instance.
//!
//! cairn-init is freestanding and includes this file as its own source
//! (`#[path]`, as `init_policy.rs`), so it uses nothing but `core`: fixed
//! buffers, and the file side behind `LogFile`.

// The same source as `text::civil` (see src/sys/civil.rs).
#[allow(clippy::duplicate_mod)]
#[path = "civil.rs"]
mod civil;

/// Bytes read from the pipe at a time, and the longest line kept whole (a
/// longer one is cut into lines of this size).
pub const CHUNK: usize = 16 * 1024;

/// The most lines (each with its prefix) in one write.
pub const BATCH: usize = 128;

/// `2026-12-03T07:53:54.123Z`
pub const STAMP_LEN: usize = 24;

/// The longest name in a prefix (longer ones are cut).
pub const NAME_MAX: usize = 64;

/// A prefix: stamp, space, name, space.
pub const PREFIX_MAX: usize = STAMP_LEN + 1 + NAME_MAX + 1;

/// How one instance writes its sandbox's log.
#[derive(Clone, Copy)]
pub struct Config<'a> {
    /// Rotate once the file has this many bytes; 0: never.
    pub max_size: u64,
    /// Rotated files kept (`NAME.1` to `NAME.FILES`); at least 1.
    pub files: u32,
    /// Prefix each line with the time it was read (UTC, milliseconds).
    pub timestamps: bool,
    /// Prefix each line with this name (none when empty).
    pub name: &'a [u8],
}

/// The log file, as the pump needs it. Index 0 of `rename` is the log's
/// own name, `i` is `NAME.i`.
pub trait LogFile {
    /// Append `parts`, in order, as one write where the kernel allows;
    /// false if some could not be written (they are dropped: a full disk
    /// must not stop the workload).
    fn write_parts(&mut self, parts: &[&[u8]]) -> bool;
    /// The size of the file being written.
    fn size(&mut self) -> Option<u64>;
    /// Take the lock that serialises rotations of this log dir (blocking);
    /// false if it cannot be had.
    fn lock(&mut self) -> bool;
    fn unlock(&mut self);
    /// Whether the file being written is still the one under the log's
    /// name (nobody rotated or removed it).
    fn is_current(&mut self) -> bool;
    /// Rename `NAME.from` to `NAME.to` (replacing it); a missing one is
    /// no error.
    fn rename(&mut self, from: u32, to: u32);
    /// Write from now on to the file under the log's name, created if
    /// missing; false (and keep the old one) if that fails.
    fn reopen(&mut self) -> bool;
}

/// How often (ms) the pump looks whether its file is still the log's: a
/// log moved away or removed by an operator (logrotate without
/// `copytruncate`, `rm`) is replaced within this of the next line.
pub const RECHECK_MS: u64 = 1000;

/// The pump's buffer: bytes read but not yet written (a line's start).
pub struct Pump {
    buf: [u8; CHUNK],
    len: usize,
    /// When the file was last found to be the log's.
    checked_ms: u64,
}

impl Default for Pump {
    fn default() -> Self {
        Self::new()
    }
}

impl Pump {
    pub const fn new() -> Pump {
        Pump {
            buf: [0; CHUNK],
            len: 0,
            checked_ms: 0,
        }
    }

    /// Where the next read goes (never empty: a full buffer is written
    /// out as a line before this is asked again).
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// `n` bytes were read into `space()`, at `now_ms` (ms since the
    /// epoch): write every whole line, keep the start of the next.
    pub fn filled<F: LogFile>(&mut self, n: usize, now_ms: u64, cfg: &Config, file: &mut F) {
        self.len = (self.len + n).min(CHUNK);
        let end = match last_newline(&self.buf[..self.len]) {
            Some(i) => i + 1,
            // A line as long as the buffer: out it goes, as a line.
            None if self.len == CHUNK => CHUNK,
            None => return,
        };
        self.recheck(now_ms, file);
        let mut prefix = [0u8; PREFIX_MAX];
        let plen = prefix_of(cfg, now_ms, &mut prefix);
        emit(&self.buf[..end], &prefix[..plen], cfg, file);
        self.buf.copy_within(end..self.len, 0);
        self.len -= end;
    }

    /// At most every `RECHECK_MS`: a file that is no longer the log's is
    /// left for the log's (created if missing).
    fn recheck<F: LogFile>(&mut self, now_ms: u64, file: &mut F) {
        if now_ms.wrapping_sub(self.checked_ms) < RECHECK_MS {
            return;
        }
        self.checked_ms = now_ms;
        if !file.is_current() {
            file.reopen();
        }
    }

    /// The workload's output ended (or its init is about to): write what
    /// is left, ended by a newline.
    pub fn finish<F: LogFile>(&mut self, now_ms: u64, cfg: &Config, file: &mut F) {
        if self.len == 0 {
            return;
        }
        let mut prefix = [0u8; PREFIX_MAX];
        let plen = prefix_of(cfg, now_ms, &mut prefix);
        emit(&self.buf[..self.len], &prefix[..plen], cfg, file);
        self.len = 0;
    }
}

/// Write `text` (whole lines, the last one's newline added if missing),
/// each line after `prefix`, in batches of `BATCH` lines, and rotate the
/// log after a batch that filled it (so a file grows past its size by at
/// most one batch of each instance).
fn emit<F: LogFile>(text: &[u8], prefix: &[u8], cfg: &Config, file: &mut F) {
    let newline: &[u8] = b"\n";
    if prefix.is_empty() {
        if text.ends_with(newline) {
            file.write_parts(&[text]);
        } else {
            file.write_parts(&[text, newline]);
        }
        rotate_if_full(cfg, file);
        return;
    }
    let mut parts: [&[u8]; 2 * BATCH + 1] = [&[]; 2 * BATCH + 1];
    let mut n = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let cut = first_newline(rest).map_or(rest.len(), |i| i + 1);
        parts[n] = prefix;
        parts[n + 1] = &rest[..cut];
        n += 2;
        rest = &rest[cut..];
        if rest.is_empty() && !parts[n - 1].ends_with(newline) {
            parts[n] = newline;
            n += 1;
        }
        if n >= 2 * BATCH || rest.is_empty() {
            file.write_parts(&parts[..n]);
            rotate_if_full(cfg, file);
            n = 0;
        }
    }
}

/// Rotate the log if the file just written has reached its size (see the
/// module's text for how instances sharing it agree).
pub fn rotate_if_full<F: LogFile>(cfg: &Config, file: &mut F) {
    if cfg.max_size == 0 {
        return;
    }
    match file.size() {
        Some(s) if s >= cfg.max_size => {}
        _ => return,
    }
    if !file.lock() {
        return;
    }
    if file.is_current() {
        let mut i = cfg.files.max(1);
        while i > 1 {
            file.rename(i - 1, i);
            i -= 1;
        }
        file.rename(0, 1);
    }
    file.reopen();
    file.unlock();
}

fn first_newline(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn last_newline(b: &[u8]) -> Option<usize> {
    let mut i = b.len();
    while i > 0 {
        i -= 1;
        if b[i] == b'\n' {
            return Some(i);
        }
    }
    None
}

/// The prefix for lines read at `now_ms` into `out`; its length.
fn prefix_of(cfg: &Config, now_ms: u64, out: &mut [u8; PREFIX_MAX]) -> usize {
    let mut len = 0;
    if cfg.timestamps {
        let mut s = [0u8; STAMP_LEN];
        stamp(now_ms, &mut s);
        out[..STAMP_LEN].copy_from_slice(&s);
        out[STAMP_LEN] = b' ';
        len = STAMP_LEN + 1;
    }
    if !cfg.name.is_empty() {
        let mut i = 0;
        while i < cfg.name.len() && i < NAME_MAX {
            let c = cfg.name[i];
            // Printable ASCII but the space: a prefix is one word.
            out[len] = if (0x21..0x7f).contains(&c) { c } else { b'?' };
            len += 1;
            i += 1;
        }
        out[len] = b' ';
        len += 1;
    }
    len
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-12-03T07:53:54.123Z`.
pub fn stamp(ms: u64, out: &mut [u8; STAMP_LEN]) {
    let c = civil::civil((ms / 1000) as i64);
    let fields: [(usize, u64, usize); 7] = [
        (0, c.year.clamp(0, 9999) as u64, 4),
        (5, c.month as u64, 2),
        (8, c.day as u64, 2),
        (11, c.hour as u64, 2),
        (14, c.minute as u64, 2),
        (17, c.second as u64, 2),
        (20, ms % 1000, 3),
    ];
    *out = *b"0000-00-00T00:00:00.000Z";
    let mut f = 0;
    while f < fields.len() {
        let (at, mut v, width) = fields[f];
        let mut i = width;
        while i > 0 {
            i -= 1;
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        f += 1;
    }
}

#[cfg(test)]
#[path = "log_pump_tests.rs"]
mod tests;
