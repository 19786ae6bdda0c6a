//! Files in cairn's dirs: opened or created relative to the dir's fd,
//! never through a symlink, with a stated mode and owner; read back only
//! when root alone could have written them.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use super::{Error, FILE_MODE, HostDir, LOG_MODE, Result, Unsafe, check_file, open_at, stat_of};
use crate::sys::fs as sfs;

/// fchown(2) to root:root and fchmod(2) to `mode` of a file we created.
fn own_file(fd: BorrowedFd<'_>, mode: u32, shown: &Path) -> Result<()> {
    // SAFETY: plain syscalls on a live fd.
    if unsafe { libc::fchown(fd.as_raw_fd(), 0, 0) } == -1 {
        return Err(Error::last(shown, "chown"));
    }
    // SAFETY: as above.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode) } == -1 {
        return Err(Error::last(shown, "chmod"));
    }
    Ok(())
}

impl HostDir {
    /// Open (or create, root:root, `mode`) the file `name` here for
    /// writing (`O_APPEND` with `append`), never through a symlink; an
    /// existing one must be root's alone (`check_file`).
    pub fn open_file(&self, name: &str, mode: u32, append: bool) -> Result<File> {
        let shown = self.path.join(name);
        let how = libc::O_NOCTTY
            | if append {
                libc::O_WRONLY | libc::O_APPEND
            } else {
                libc::O_RDWR
            };
        // A log rotated away between the two opens: try again.
        for _ in 0..8 {
            match open_at(
                self.fd(),
                Path::new(name),
                how | libc::O_CREAT | libc::O_EXCL,
                mode,
                &shown,
            ) {
                Ok(fd) => {
                    own_file(fd.as_fd(), mode, &shown)?;
                    return Ok(File::from(fd));
                }
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) if e.errno() == Some(libc::ELOOP) => {
                    return Err(Error::Unsafe {
                        path: shown,
                        why: Unsafe::Symlink,
                    });
                }
                Err(e) => return Err(e),
            }
            // O_NONBLOCK: a FIFO planted here must not hang the open (it is
            // refused below as not a regular file).
            match open_at(
                self.fd(),
                Path::new(name),
                how | libc::O_NONBLOCK,
                0,
                &shown,
            ) {
                Ok(fd) => {
                    check_file(&stat_of(fd.as_fd(), &shown)?, &shown)?;
                    clear_nonblock(fd.as_fd(), &shown)?;
                    return Ok(File::from(fd));
                }
                Err(e) if e.errno() == Some(libc::ENOENT) => continue,
                Err(e) if e.errno() == Some(libc::ELOOP) => {
                    return Err(Error::Unsafe {
                        path: shown,
                        why: Unsafe::Symlink,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::sys(
            &shown,
            "open",
            std::io::Error::other("it keeps disappearing"),
        ))
    }

    /// Open the file `name` here for reading if it is a regular file owned
    /// by root that nobody else can write, reached without a symlink.
    /// `Ok(None)`: there is none.
    pub fn open_trusted(&self, name: &str) -> Result<Option<File>> {
        let shown = self.path.join(name);
        let fd = match open_at(
            self.fd(),
            Path::new(name),
            libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
            0,
            &shown,
        ) {
            Ok(fd) => fd,
            Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(None),
            Err(e) if e.errno() == Some(libc::ELOOP) => {
                return Err(Error::Unsafe {
                    path: shown,
                    why: Unsafe::Symlink,
                });
            }
            Err(e) => return Err(e),
        };
        check_file(&stat_of(fd.as_fd(), &shown)?, &shown)?;
        Ok(Some(File::from(fd)))
    }

    /// Read the file `name` here, at most `cap` bytes, if it is a regular
    /// file owned by root that nobody else can write, reached without a
    /// symlink. `Ok(None)`: there is none.
    pub fn read_trusted(&self, name: &str, cap: usize) -> Result<Option<Vec<u8>>> {
        let shown = self.path.join(name);
        let Some(f) = self.open_trusted(name)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        f.take(cap as u64)
            .read_to_end(&mut buf)
            .map_err(|e| Error::sys(&shown, "read", e))?;
        Ok(Some(buf))
    }

    /// The names of the entries here (through this dir's fd, so the path
    /// it was reached by is not looked up again).
    pub fn names(&self) -> Result<Vec<String>> {
        let shown = self.path.clone();
        let fd = sfs::reopen(self.fd(), libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| Error::sys(&shown, "open", e.source))?;
        // Reading the reopened dir by its /proc/self/fd name keeps to the
        // inode we checked: std has no readdir on an fd.
        let rd = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| Error::sys(&shown, "readdir", e))?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error::sys(&shown, "readdir", e))?;
            if let Some(n) = e.file_name().to_str() {
                out.push(n.to_string());
            }
        }
        Ok(out)
    }

    /// Remove the file `name` here (unlinkat(2): a symlink there is
    /// removed, never followed). A file that is not there is no error.
    pub fn remove(&self, name: &str) -> Result<()> {
        let shown = self.path.join(name);
        let c = std::ffi::CString::new(name).map_err(|_| {
            Error::sys(
                &shown,
                "unlink",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in the name"),
            )
        })?;
        // SAFETY: valid fd and C string.
        if unsafe { libc::unlinkat(self.fd().as_raw_fd(), c.as_ptr(), 0) } == -1 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(Error::sys(&shown, "unlink", e));
            }
        }
        Ok(())
    }

    /// Replace `name` here atomically (see `sfs::write_atomic_at`), mode
    /// `FILE_MODE`.
    pub fn write_atomic(
        &self,
        name: &str,
        sync: bool,
        fill: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
    ) -> Result<()> {
        sfs::write_atomic_at(self.fd(), name, FILE_MODE, sync, fill)
            .map_err(|e| Error::sys(&self.path.join(name), "write", e))
    }
}

fn clear_nonblock(fd: BorrowedFd<'_>, shown: &Path) -> Result<()> {
    // SAFETY: fcntl(2) on a live fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags == -1
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } == -1
    {
        return Err(Error::last(shown, "fcntl"));
    }
    Ok(())
}

/// Open the log file `path` for appending (created root:root `LOG_MODE`),
/// its dir checked as a configured dir (created `DIR_MODE` if missing).
pub fn open_log(path: &Path) -> Result<File> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(Error::sys(
            path,
            "open",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        ));
    };
    let dir = HostDir::open(dir, true)?
        .ok_or_else(|| Error::sys(dir, "open", std::io::ErrorKind::NotFound.into()))?;
    dir.open_file(name, LOG_MODE, true)
}
