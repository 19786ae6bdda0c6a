//! Removing a directory tree that someone else may change while it goes
//! (`cairn clean` removing an image, whose owner need not be root).
//!
//! Every step is relative to a directory fd we hold, never a path resolved
//! again from `/`: a name is unlinked with `unlinkat(2)` in the fd of its
//! dir (which removes a symlink itself, never what it names), and a
//! subdirectory is entered with `openat2(2)` and `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV` plus `O_NOFOLLOW`: a name swapped
//! for a symlink between two steps cannot lead the walk out of the tree,
//! and a mount point (bind mounts included) is never entered. Once a dir
//! is open, renaming it or its ancestors elsewhere changes nothing: what
//! is removed is what that fd holds.
//!
//! Paths in messages (`shown`) are for people only; nothing resolves them.

use std::collections::HashSet;
use std::ffi::{CStr, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::fs as sfs;
use super::{Error, Result};

/// Directories held open at once at most; deeper ones are moved up into
/// the top dir (a rename between two fds we hold) and emptied from there,
/// so an image of any depth costs a bounded number of fds.
const MAX_DEPTH: usize = 48;
/// Listings of one dir at most: a dir whose owner keeps filling it while
/// we empty it is given up on (and named) rather than chased forever.
const MAX_PASSES: u32 = 10_000;

fn c_name(name: &OsStr, op: &'static str, shown: &Path) -> Result<std::ffi::CString> {
    std::ffi::CString::new(name.as_bytes()).map_err(|_| {
        Error::new(
            op,
            shown.display(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in the name"),
        )
    })
}

/// Open the directory `name` (one component, any bytes) of `dir` to read
/// and remove its entries: never through a symlink (`ELOOP`), never onto
/// another mount, bind mounts of the same file system included (`EXDEV`).
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<OwnedFd> {
    let c = c_name(name, "open", shown)?;
    // SAFETY: open_how is plain integers; zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags =
        (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC)
            as u64;
    how.resolve = libc::RESOLVE_BENEATH
        | libc::RESOLVE_NO_SYMLINKS
        | libc::RESOLVE_NO_MAGICLINKS
        | libc::RESOLVE_NO_XDEV;
    // A scoped lookup answers EAGAIN when a rename or mount raced it;
    // openat2(2) says to try again.
    for _ in 0..128 {
        // SAFETY: openat2(2) with a valid dir fd, C string and an open_how
        // of the size we pass; it returns a new fd or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a new fd that nobody else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(Error::new("open", shown.display(), e));
        }
    }
    Err(Error::new(
        "open",
        shown.display(),
        std::io::Error::from_raw_os_error(libc::EAGAIN),
    ))
}

/// The names in `dir` (not `.` and `..`), read from its start with
/// getdents64(2). `dir` must be open for reading (`open_subdir`).
pub fn entries(dir: BorrowedFd<'_>, shown: &Path) -> Result<Vec<OsString>> {
    // SAFETY: lseek(2) on a live fd: a dir rewinds to its first entry.
    if unsafe { libc::lseek(dir.as_raw_fd(), 0, libc::SEEK_SET) } == -1 {
        return Err(Error::last("lseek", shown.display()));
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 << 10];
    loop {
        // SAFETY: getdents64(2) fills at most `buf.len()` bytes of `buf`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(Error::last("getdents", shown.display()));
        }
        if n == 0 {
            return Ok(out);
        }
        let mut off = 0usize;
        let n = n as usize;
        // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8,
        // then the NUL-terminated name (getdents64(2)).
        while off + 19 < n {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n {
                return Err(Error::new(
                    "getdents",
                    shown.display(),
                    std::io::Error::other("malformed directory record"),
                ));
            }
            let name = CStr::from_bytes_until_nul(&buf[off + 19..off + reclen]).map_err(|_| {
                Error::new(
                    "getdents",
                    shown.display(),
                    std::io::Error::other("directory record without a NUL"),
                )
            })?;
            let b = name.to_bytes();
            if b != b"." && b != b".." {
                out.push(OsString::from_vec(b.to_vec()));
            }
            off += reclen;
        }
    }
}

/// fstatat(2) of `name` in `dir`, not following a symlink.
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<libc::stat> {
    let c = c_name(name, "stat", shown)?;
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and pointer.
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if ret == -1 {
        return Err(Error::last("stat", shown.display()));
    }
    Ok(st)
}

/// fstat(2) of an fd we hold.
pub fn stat(fd: BorrowedFd<'_>, shown: &Path) -> Result<libc::stat> {
    sfs::fstat(fd).map_err(|e| Error::new("stat", shown.display(), e.source))
}

/// unlinkat(2) of `name` in `dir`: a directory (which must be empty) with
/// `dir_too`, anything else without. A symlink goes itself.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr, dir_too: bool, shown: &Path) -> Result<()> {
    let c = c_name(name, "unlink", shown)?;
    let flags = if dir_too { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and C string.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } == -1 {
        return Err(Error::last(
            if dir_too { "rmdir" } else { "unlink" },
            shown.display(),
        ));
    }
    Ok(())
}

/// renameat2(2) of `from` in `from_dir` to `to` in `to_dir`, failing
/// (`EEXIST`) rather than replacing anything at `to`.
pub fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
    shown: &Path,
) -> Result<()> {
    let (f, t) = (c_name(from, "rename", shown)?, c_name(to, "rename", shown)?);
    // The system call, not libc's wrapper: musl (the static build) has
    // none. SAFETY: valid fds and C strings.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            from_dir.as_raw_fd(),
            f.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if ret == -1 {
        return Err(Error::last("rename", shown.display()));
    }
    Ok(())
}

/// The path the kernel has for an fd we hold (readlink of
/// `/proc/self/fd/N`), as mountinfo spells paths.
pub fn fd_path(fd: BorrowedFd<'_>) -> Result<PathBuf> {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    std::fs::read_link(&link).map_err(|e| Error::new("readlink", link, e))
}

/// What emptying a tree did.
#[derive(Debug, Default)]
pub struct Emptied {
    /// Names unlinked (files, symlinks, devices, sockets, FIFOs).
    pub files: u64,
    /// Directories removed below the top.
    pub dirs: u64,
    /// What could not be removed, each naming its path; the tree is then
    /// not empty.
    pub errors: Vec<Error>,
}

/// One open directory of the walk.
struct Level {
    fd: OwnedFd,
    /// Its name in the level above (unused for the top).
    name: OsString,
    shown: PathBuf,
    /// Names here that could not be removed: not tried again.
    skip: HashSet<OsString>,
    passes: u32,
}

/// What one pass over a directory's names decided.
enum Next {
    /// Enter this subdirectory.
    Down(Level),
    /// Too deep: move this subdirectory (name, shown) up into the top.
    MoveUp(OsString, PathBuf),
    /// Names were removed (or went away): list the dir again.
    Again,
    /// Nothing left but what could not go.
    Empty,
}

/// Remove everything inside the directory `top` (open for reading, see
/// `open_subdir`), leaving `top` itself, empty unless `errors` says why
/// not. `shown` is its path, for messages.
pub fn empty_tree(top: OwnedFd, shown: &Path) -> Emptied {
    let mut done = Emptied::default();
    let mut stack = vec![Level {
        fd: top,
        name: OsString::new(),
        shown: shown.to_path_buf(),
        skip: HashSet::new(),
        passes: 0,
    }];
    let mut moved = 0u64;
    loop {
        let depth = stack.len();
        let Some(cur) = stack.last_mut() else { break };
        cur.passes += 1;
        if cur.passes > MAX_PASSES {
            done.errors.push(Error::new(
                "empty",
                cur.shown.display(),
                std::io::Error::other("it keeps changing; given up"),
            ));
            give_up(&mut stack);
            continue;
        }
        let next = match entries(cur.fd.as_fd(), &cur.shown) {
            Ok(names) => one_pass(cur, names, depth, &mut done),
            Err(e) => {
                done.errors.push(e);
                give_up(&mut stack);
                continue;
            }
        };
        match next {
            Next::Down(l) => stack.push(l),
            Next::MoveUp(name, shown) => {
                // Only below the limit's depth, so never the top itself.
                let (first, rest) = stack.split_at_mut(1);
                let (Some(top), Some(cur)) = (first.first_mut(), rest.last_mut()) else {
                    break;
                };
                let mut result = Ok(());
                // A free name in the top (one may be taken by the image).
                for _ in 0..1000 {
                    moved += 1;
                    let to = OsString::from(format!(".cairn-deep.{moved}"));
                    result = rename_noreplace(cur.fd.as_fd(), &name, top.fd.as_fd(), &to, &shown);
                    if !matches!(&result, Err(e) if e.errno() == Some(libc::EEXIST)) {
                        break;
                    }
                }
                match result {
                    // The top has work again: it may be listed anew.
                    Ok(()) => top.passes = 0,
                    Err(e) if e.errno() == Some(libc::ENOENT) => {}
                    Err(e) => {
                        done.errors.push(e);
                        cur.skip.insert(name);
                    }
                }
            }
            Next::Again => {}
            Next::Empty => {
                if stack.len() == 1 {
                    break;
                }
                let Some(lvl) = stack.pop() else { break };
                let Some(parent) = stack.last_mut() else {
                    break;
                };
                if !lvl.skip.is_empty() {
                    parent.skip.insert(lvl.name);
                    continue;
                }
                drop(lvl.fd);
                match unlink_at(parent.fd.as_fd(), &lvl.name, true, &lvl.shown) {
                    Ok(()) => done.dirs += 1,
                    Err(e) if e.errno() == Some(libc::ENOENT) => {}
                    Err(e) => {
                        done.errors.push(e);
                        parent.skip.insert(lvl.name);
                    }
                }
            }
        }
    }
    done
}

/// Unlink every name of `cur` that is not a directory; stop at the first
/// directory (to enter it, or to move it up when `depth` is at the limit).
fn one_pass(cur: &mut Level, names: Vec<OsString>, depth: usize, done: &mut Emptied) -> Next {
    let mut left = false;
    for name in names {
        if cur.skip.contains(&name) {
            continue;
        }
        left = true;
        let shown = cur.shown.join(&name);
        // Try the name as a file first: unlinkat without AT_REMOVEDIR
        // removes whatever is there now unless it is a directory (EISDIR),
        // so no decision rests on a type read earlier.
        let err = match unlink_at(cur.fd.as_fd(), &name, false, &shown) {
            Ok(()) => {
                done.files += 1;
                continue;
            }
            Err(e) => e,
        };
        match err.errno() {
            Some(libc::ENOENT) => continue,
            Some(libc::EISDIR) => {}
            _ => {
                done.errors.push(err);
                cur.skip.insert(name);
                continue;
            }
        }
        if depth >= MAX_DEPTH {
            return Next::MoveUp(name, shown);
        }
        match open_subdir(cur.fd.as_fd(), &name, &shown) {
            Ok(fd) => {
                return Next::Down(Level {
                    fd,
                    name,
                    shown,
                    skip: HashSet::new(),
                    passes: 0,
                });
            }
            // Gone, or swapped for a symlink or a file since the unlink:
            // the next pass unlinks whatever is there then.
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)) => {}
            // EXDEV: a mount point, never entered; anything else: named.
            Err(e) => {
                done.errors.push(e);
                cur.skip.insert(name);
            }
        }
    }
    if left { Next::Again } else { Next::Empty }
}

/// Stop emptying the last level: it stays, and its parent leaves it be.
fn give_up(stack: &mut Vec<Level>) {
    // The top given up empties the stack, which ends the walk.
    if let Some(lvl) = stack.pop()
        && let Some(parent) = stack.last_mut()
    {
        parent.skip.insert(lvl.name);
    }
}

#[cfg(test)]
#[path = "remove_tests.rs"]
mod tests;
