//! cairn-init's side of the stdio log pump (`log_pump.rs`): the pipe it
//! reads and the log file it writes, with raw system calls, everything
//! relative to the log dir's fd, never through a symlink.

use super::*;

/// The pump's side of things: the pipe the workload writes into, and how
/// the log is written.
pub(crate) struct Log {
    pub(crate) pipe: usize,
    pub(crate) file: InitLog,
    pub(crate) max_size: u64,
    pub(crate) files: u32,
    pub(crate) timestamps: bool,
    pub(crate) name: &'static [u8],
    /// Until the pipe's end (every writer gone).
    pub(crate) open: bool,
}

impl Log {
    pub(crate) fn config(&self) -> log_pump::Config<'static> {
        log_pump::Config { max_size: self.max_size, files: self.files, timestamps: self.timestamps, name: self.name }
    }

    /// Read what the pipe has, `rounds` reads at most; false at its end.
    pub(crate) fn pump(&mut self, pump: &mut log_pump::Pump, rounds: usize) -> bool {
        let cfg = self.config();
        let mut i = 0;
        while i < rounds {
            let space = pump.space();
            let n = sys(SYS_READ, self.pipe, space.as_mut_ptr() as usize, space.len(), 0);
            if n == 0 {
                return false;
            }
            if n == -EINTR {
                continue;
            }
            if n < 0 {
                // EAGAIN: all read for now.
                return true;
            }
            let short = (n as usize) < space.len();
            pump.filled(n as usize, now_ms(), &cfg, &mut self.file);
            // A short read emptied the pipe: back to waiting, without a
            // read that would only say so.
            if short {
                return true;
            }
            i += 1;
        }
        true
    }
}

const CLOCK_REALTIME: usize = 0;
const O_APPEND: usize = 0o2000;
const O_NOCTTY: usize = 0o400;
const O_NONBLOCK: usize = 0o4000;
const AT_EMPTY_PATH: usize = 0x1000;
const AT_SYMLINK_NOFOLLOW: usize = 0x100;
const LOCK_EX: usize = 2;
const LOCK_UN: usize = 8;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

pub(crate) fn now_ms() -> u64 {
    let mut ts = [0i64; 2];
    if sys(SYS_CLOCK_GETTIME, CLOCK_REALTIME, ts.as_mut_ptr() as usize, 0, 0) < 0 {
        return 0;
    }
    (ts[0] as u64).wrapping_mul(1000).wrapping_add(ts[1] as u64 / 1_000_000)
}

/// A `struct stat` (128 bytes on aarch64, 144 on x86_64).
type Stat = [u64; 20];

/// fstatat(2) of `name` (a C string) in `dir`, or of `dir` itself when
/// `name` is empty; (dev, ino, size, mode).
fn stat(dir: usize, name: &[u8], flags: usize) -> Option<(u64, u64, u64, u32)> {
    let mut st: Stat = [0; 20];
    if sys(SYS_NEWFSTATAT, dir, name.as_ptr() as usize, st.as_mut_ptr() as usize, flags) < 0 {
        return None;
    }
    let m = st[ST_MODE_AT / 8];
    let mode = if ST_MODE_AT % 8 == 0 { m as u32 } else { (m >> 32) as u32 };
    // st_dev, st_ino and st_size are at 0, 8 and 48 on both.
    Some((st[0], st[1], st[6], mode))
}

/// The log file, in cairn-init: `log_pump::LogFile` with raw system calls,
/// everything relative to the log dir's fd, never through a symlink.
pub(crate) struct InitLog {
    pub(crate) file: usize,
    pub(crate) dir: usize,
    pub(crate) name: &'static [u8],
}

impl InitLog {
    /// `NAME` (i = 0) or `NAME.i`, NUL-terminated, in `out`.
    fn indexed<'b>(&self, i: u32, out: &'b mut [u8; 272]) -> &'b [u8] {
        let mut len = 0;
        put(out, &mut len, self.name);
        if i > 0 {
            put(out, &mut len, b".");
            put_num(out, &mut len, i as i32);
        }
        put(out, &mut len, b"\0");
        &out[..len]
    }
}

/// struct iovec.
#[derive(Clone, Copy)]
#[repr(C)]
struct Iovec {
    base: usize,
    len: usize,
}

impl log_pump::LogFile for InitLog {
    fn write_parts(&mut self, parts: &[&[u8]]) -> bool {
        let mut iov = [Iovec { base: 0, len: 0 }; 2 * log_pump::BATCH + 1];
        let mut n = 0;
        for p in parts {
            if !p.is_empty() && n < iov.len() {
                iov[n] = Iovec { base: p.as_ptr() as usize, len: p.len() };
                n += 1;
            }
        }
        let mut at = 0;
        while at < n {
            let r = sys(SYS_WRITEV, self.file, iov[at..].as_ptr() as usize, n - at, 0);
            if r == -EINTR {
                continue;
            }
            if r < 0 {
                return false;
            }
            let mut done = r as usize;
            while at < n && done >= iov[at].len {
                done -= iov[at].len;
                at += 1;
            }
            if at < n && done > 0 {
                iov[at].base += done;
                iov[at].len -= done;
            }
        }
        true
    }

    fn size(&mut self) -> Option<u64> {
        stat(self.file, b"\0", AT_EMPTY_PATH).map(|s| s.2)
    }

    fn lock(&mut self) -> bool {
        loop {
            let r = sys(SYS_FLOCK, self.dir, LOCK_EX, 0, 0);
            if r != -EINTR {
                return r == 0;
            }
        }
    }

    fn unlock(&mut self) {
        sys(SYS_FLOCK, self.dir, LOCK_UN, 0, 0);
    }

    fn is_current(&mut self) -> bool {
        let mut buf = [0u8; 272];
        let name = self.indexed(0, &mut buf);
        match (stat(self.file, b"\0", AT_EMPTY_PATH), stat(self.dir, name, AT_SYMLINK_NOFOLLOW)) {
            (Some(a), Some(b)) => a.0 == b.0 && a.1 == b.1,
            _ => false,
        }
    }

    fn rename(&mut self, from: u32, to: u32) {
        let (mut a, mut b) = ([0u8; 272], [0u8; 272]);
        let (from, to) = (self.indexed(from, &mut a), self.indexed(to, &mut b));
        // SAFETY: valid fds and NUL-terminated names in live buffers.
        unsafe { syscall6(SYS_RENAMEAT2, self.dir, from.as_ptr() as usize, self.dir, to.as_ptr() as usize, 0, 0) };
    }

    fn reopen(&mut self) -> bool {
        let mut buf = [0u8; 272];
        let name = self.indexed(0, &mut buf);
        let how = O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
        let mut fd = sys(SYS_OPENAT, self.dir, name.as_ptr() as usize, how | O_CREAT | O_EXCL, 0o640);
        if fd >= 0 {
            // root:root 0640, whatever the umask.
            sys(SYS_FCHOWN, fd as usize, 0, 0, 0);
            sys(SYS_FCHMOD, fd as usize, 0o640, 0, 0);
        } else {
            // An existing log (a regular file, checked below; O_NONBLOCK:
            // nothing planted there can hang us).
            fd = sys(SYS_OPENAT, self.dir, name.as_ptr() as usize, how, 0);
        }
        if fd < 0 {
            return false;
        }
        match stat(fd as usize, b"\0", AT_EMPTY_PATH) {
            Some(s) if s.3 & S_IFMT == S_IFREG => {
                sys(SYS_CLOSE, self.file, 0, 0, 0);
                self.file = fd as usize;
                true
            }
            _ => {
                sys(SYS_CLOSE, fd as usize, 0, 0, 0);
                false
            }
        }
    }
}
