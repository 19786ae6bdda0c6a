//! inotify(7): being told when a file of a directory was replaced or
//! closed after writing, instead of looking at it again and again (`cairn
//! ps --watch` follows the tree's `state.json`, which the tree replaces by
//! rename(2)).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{Error, Result, check, cstr};

/// A file was renamed into the watched directory (an atomic replace).
pub const MOVED_TO: u32 = libc::IN_MOVED_TO;
/// A file opened for writing was closed.
pub const CLOSE_WRITE: u32 = libc::IN_CLOSE_WRITE;
/// A file was removed from the watched directory.
pub const DELETE: u32 = libc::IN_DELETE;
/// The watched directory itself was removed or moved.
pub const DELETE_SELF: u32 = libc::IN_DELETE_SELF;
pub const MOVE_SELF: u32 = libc::IN_MOVE_SELF;
/// The watch is gone (its directory was removed, or its file system
/// unmounted).
pub const IGNORED: u32 = libc::IN_IGNORED;
/// The kernel's queue overflowed: events were lost (look again).
pub const Q_OVERFLOW: u32 = libc::IN_Q_OVERFLOW;

/// One event: what happened (`mask`) and to which entry of the directory
/// (`name`, `None` for the directory itself or an overflow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub mask: u32,
    pub name: Option<Vec<u8>>,
}

impl Event {
    /// Whether this event is about the entry `name`.
    pub fn is(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name.as_bytes())
    }
}

/// An inotify instance (close-on-exec, non-blocking: it goes into a
/// poller, and `read` takes what is queued).
pub struct Inotify {
    fd: OwnedFd,
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The size of `struct inotify_event` before its name.
const HEADER: usize = 16;

impl Inotify {
    pub fn new() -> Result<Inotify> {
        // SAFETY: plain system call with constant flags.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        let fd = check(fd, "inotify_init1", "")?;
        // SAFETY: a new fd nobody else owns.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watch the directory `dir` for `mask`. The path is not followed if
    /// it is a symlink (`IN_DONT_FOLLOW`) and must be a directory
    /// (`IN_ONLYDIR`).
    pub fn watch_dir(&self, dir: &Path, mask: u32) -> Result<()> {
        let shown = dir.display();
        let c = cstr(&dir.to_string_lossy())?;
        // SAFETY: valid fd and C string.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                mask | libc::IN_ONLYDIR | libc::IN_DONT_FOLLOW,
            )
        };
        check(wd, "inotify_add_watch", shown)?;
        Ok(())
    }

    /// Every event queued now (none when there is none).
    pub fn read(&self) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        // Room for many events at once; one is at most HEADER + NAME_MAX + 1.
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: a writable buffer of buf.len() bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(out),
                    Some(libc::EINTR) => continue,
                    _ => return Err(Error::new("read", "inotify", e)),
                }
            }
            if n == 0 {
                return Ok(out);
            }
            out.extend(parse(&buf[..n as usize]));
        }
    }
}

/// The events in `buf` as read(2) returned them: a header (`wd`, `mask`,
/// `cookie`, `len`) then `len` bytes of name, NUL-padded. A record cut
/// short (which the kernel never returns) ends the list.
pub fn parse(buf: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = buf.get(at..at + HEADER) {
        let word = |i: usize| u32::from_ne_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let (mask, len) = (word(4), word(12) as usize);
        let Some(raw) = buf.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        let name: Vec<u8> = raw.iter().copied().take_while(|&b| b != 0).collect();
        out.push(Event {
            mask,
            name: (!name.is_empty()).then_some(name),
        });
        at += HEADER + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mask: u32, name: &[u8], pad: usize) -> Vec<u8> {
        let len = if name.is_empty() { 0 } else { name.len() + pad };
        let mut v = Vec::new();
        v.extend(7i32.to_ne_bytes());
        v.extend(mask.to_ne_bytes());
        v.extend(0u32.to_ne_bytes());
        v.extend((len as u32).to_ne_bytes());
        v.extend(name);
        v.resize(v.len() + len.saturating_sub(name.len()), 0);
        v
    }

    #[test]
    fn records_parse_with_and_without_names() {
        let mut buf = record(MOVED_TO, b"state.json", 6);
        buf.extend(record(Q_OVERFLOW, b"", 0));
        buf.extend(record(CLOSE_WRITE, b"tree.pid", 8));
        let ev = parse(&buf);
        assert_eq!(ev.len(), 3);
        assert!(ev[0].is("state.json") && ev[0].mask == MOVED_TO);
        assert_eq!(
            ev[1],
            Event {
                mask: Q_OVERFLOW,
                name: None
            }
        );
        assert!(ev[2].is("tree.pid") && !ev[2].is("tree.pi"));
        // Cut short: what is whole is kept, the rest dropped.
        assert_eq!(parse(&buf[..buf.len() - 3]).len(), 2);
        assert_eq!(parse(&buf[..10]).len(), 0);
    }

    #[test]
    fn a_rename_into_the_dir_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ino = Inotify::new().expect("inotify");
        ino.watch_dir(dir.path(), MOVED_TO | CLOSE_WRITE)
            .expect("watch");
        assert!(ino.read().expect("read").is_empty());
        std::fs::write(dir.path().join(".tmp"), b"x").expect("write");
        std::fs::rename(dir.path().join(".tmp"), dir.path().join("state.json")).expect("rename");
        let ev = ino.read().expect("read");
        assert!(
            ev.iter().any(|e| e.is(".tmp") && e.mask & CLOSE_WRITE != 0),
            "{ev:?}"
        );
        assert!(
            ev.iter()
                .any(|e| e.is("state.json") && e.mask & MOVED_TO != 0),
            "{ev:?}"
        );
        // A file is not a directory, and a symlink is not followed.
        let file = dir.path().join("state.json");
        assert!(ino.watch_dir(&file, MOVED_TO).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).expect("symlink");
        assert!(ino.watch_dir(&link, MOVED_TO).is_err());
    }
}
