//! The file side of the stdio log pump (`log_pump::LogFile`) for the knot,
//! when it stays the container's pid 1 and pumps the log itself (a
//! `restart-process-only` instance, or where cairn-init cannot run).
//! cairn-init has its own, with raw system calls.
//!
//! Everything is relative to the log dir's fd (opened on the host before
//! the pivot; cairn's own dir, root's alone), never through a symlink: a
//! rotated name is renamed within the dir, a new log is opened as every
//! log of cairn's is (`hostfs::HostDir::open_file`: created root:root
//! 0640, an existing one must be root's alone).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::log_pump::LogFile;

/// A sandbox's stdio log, as one instance writes it.
pub struct HostLog {
    file: OwnedFd,
    /// The log dir, opened for reading (flock needs a real fd).
    dir: super::hostfs::HostDir,
    name: String,
}

impl HostLog {
    pub fn new(file: OwnedFd, dir: super::hostfs::HostDir, name: &str) -> HostLog {
        HostLog {
            file,
            dir,
            name: name.to_string(),
        }
    }

    /// The three parts, to hand over to cairn-init.
    pub fn parts(&self) -> (&OwnedFd, std::os::fd::BorrowedFd<'_>, &str) {
        (&self.file, self.dir.fd(), &self.name)
    }

    fn indexed(&self, i: u32) -> Option<CString> {
        let s = if i == 0 {
            self.name.clone()
        } else {
            format!("{}.{i}", self.name)
        };
        CString::new(s).ok()
    }

    fn stat_at(&self, name: &CString) -> Option<libc::stat> {
        // SAFETY: zeroed stat is a valid out buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, C string and out pointer.
        let r = unsafe {
            libc::fstatat(
                self.dir.fd().as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        (r == 0).then_some(st)
    }
}

/// The log dir `O_PATH` fd `dir`, opened for reading (for flock(2)).
pub fn readable_dir(dir: std::os::fd::BorrowedFd<'_>) -> super::Result<OwnedFd> {
    let dot = c".";
    // SAFETY: valid fd and C string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            dot.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    let fd = super::check(fd, "open", "stdio log dir")?;
    // SAFETY: a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The realtime clock in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl LogFile for HostLog {
    fn write_parts(&mut self, parts: &[&[u8]]) -> bool {
        let mut iov: Vec<libc::iovec> = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        let mut at = 0;
        while at < iov.len() {
            let n = (iov.len() - at).min(1024);
            // SAFETY: the iovecs point into `parts`, alive for the call.
            let r = unsafe { libc::writev(self.file.as_raw_fd(), iov[at..].as_ptr(), n as i32) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return false;
            }
            // Skip what was written; a part written in half goes on from
            // where it stopped.
            let mut done = r as usize;
            while at < iov.len() && done >= iov[at].iov_len {
                done -= iov[at].iov_len;
                at += 1;
            }
            if at < iov.len() && done > 0 {
                // SAFETY: `done` is within this part.
                iov[at].iov_base = unsafe { (iov[at].iov_base as *mut u8).add(done) }.cast();
                iov[at].iov_len -= done;
            }
        }
        true
    }

    fn size(&mut self) -> Option<u64> {
        super::fs::fstat(std::os::fd::AsFd::as_fd(&self.file))
            .ok()
            .map(|st| st.st_size as u64)
    }

    fn lock(&mut self) -> bool {
        loop {
            // SAFETY: plain flock(2) on our fd.
            if unsafe { libc::flock(self.dir.fd().as_raw_fd(), libc::LOCK_EX) } == 0 {
                return true;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return false;
            }
        }
    }

    fn unlock(&mut self) {
        // SAFETY: plain flock(2) on our fd.
        unsafe { libc::flock(self.dir.fd().as_raw_fd(), libc::LOCK_UN) };
    }

    fn is_current(&mut self) -> bool {
        let (Some(name), Ok(ours)) = (
            self.indexed(0),
            super::fs::fstat(std::os::fd::AsFd::as_fd(&self.file)),
        ) else {
            return false;
        };
        self.stat_at(&name)
            .is_some_and(|st| st.st_dev == ours.st_dev && st.st_ino == ours.st_ino)
    }

    fn rename(&mut self, from: u32, to: u32) {
        if let (Some(a), Some(b)) = (self.indexed(from), self.indexed(to)) {
            let d = self.dir.fd().as_raw_fd();
            // SAFETY: valid fds and C strings.
            unsafe { libc::renameat(d, a.as_ptr(), d, b.as_ptr()) };
        }
    }

    fn reopen(&mut self) -> bool {
        match self
            .dir
            .open_file(&self.name, super::hostfs::LOG_MODE, true)
        {
            Ok(f) => {
                self.file = OwnedFd::from(f);
                true
            }
            Err(_) => false,
        }
    }
}
