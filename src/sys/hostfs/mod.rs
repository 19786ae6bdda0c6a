//! cairn's own files on the host: the runtime, state, mount and log dirs
//! of master.yaml and everything cairn makes in them. Root writes there,
//! so nobody else may be able to redirect or forge any of it:
//!
//! - A configured dir must be a directory owned by root that only root can
//!   write (no group or other write bit). Each of its ancestors must be
//!   owned by root and not writable by others unless it is sticky (`/tmp`):
//!   there nobody can rename or remove what root put in it. An ancestor
//!   may be group-writable (Ubuntu's `/var/log` is `root:syslog 0775`):
//!   that group could remove or rename our dir, but not plant one we would
//!   accept, since every step below must be root's. On the way down, a
//!   symlink is followed only if root owns it (`/var/run` → `/run`).
//! - Below a configured dir (sandbox and instance dirs, log files, state
//!   files) nothing is a symlink: every step is `openat(2)` with
//!   `O_NOFOLLOW` from the fd of the step above, so renaming an ancestor
//!   after it was checked cannot redirect a later step.
//! - What cairn creates gets its mode and owner (root:root) stated, whatever
//!   the umask: dirs `DIR_MODE`, instance dirs `PRIVATE_DIR_MODE`, state
//!   files `FILE_MODE`, logs `LOG_MODE`. An existing dir or file that is not
//!   root's alone is refused, never repaired: it may hold what someone else
//!   planted.
//! - What cairn reads back (`read_trusted`) counts only if it is a regular
//!   file owned by root that nobody else can write.

mod files;
#[cfg(test)]
mod tests;

pub use files::open_log;

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use super::fs as sfs;

/// Dirs cairn creates (runtime, state, log dirs, sandbox state dirs):
/// anyone may look, only root may write (`cairn ps` and metrics readers
/// are often not root).
pub const DIR_MODE: u32 = 0o755;
/// An instance dir: only root. Its `state/` holds the workload's
/// `!Statedir` volume, whose mode the container config picks.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// State files (`state.json`, `metrics.prom`, `tree.pid`, the knot's
/// records): readable by monitoring, written by root.
pub const FILE_MODE: u32 = 0o644;
/// Log files: workload output and config dumps are not for every user.
pub const LOG_MODE: u32 = 0o640;

/// Symlinks followed in one configured path at most (as the kernel's
/// MAXSYMLINKS).
const MAX_LINKS: u32 = 40;

/// What makes a dir or file unfit to be cairn's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsafe {
    /// Owned by this uid, not root.
    Owner(u32),
    /// Writable by group and/or others (the mode).
    Writable(u32),
    /// A symlink where cairn follows none.
    Symlink,
    /// A symlink another user owns.
    SymlinkOwner(u32),
    /// Not a directory.
    NotDir,
    /// Not a regular file.
    NotRegular,
    /// A file with more than one hard link.
    Links(libc::nlink_t),
}

impl std::fmt::Display for Unsafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsafe::Owner(uid) => write!(f, "owned by uid {uid}, not root"),
            Unsafe::Writable(mode) => {
                let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                    (true, true) => "group and others",
                    (true, false) => "group",
                    _ => "others",
                };
                write!(f, "writable by {who} (mode {:04o})", mode & 0o7777)
            }
            Unsafe::Symlink => write!(f, "is a symlink (cairn follows none here)"),
            Unsafe::SymlinkOwner(uid) => write!(f, "is a symlink owned by uid {uid}, not root"),
            Unsafe::NotDir => write!(f, "is not a directory"),
            Unsafe::NotRegular => write!(f, "is not a regular file"),
            Unsafe::Links(n) => write!(f, "has {n} hard links"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {why}", path.display())]
    Unsafe { path: PathBuf, why: Unsafe },
    #[error("{}: {op}: {source}", path.display())]
    Sys {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

impl Error {
    pub(super) fn sys(path: &Path, op: &'static str, source: std::io::Error) -> Error {
        Error::Sys {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
    pub(super) fn last(path: &Path, op: &'static str) -> Error {
        Error::sys(path, op, std::io::Error::last_os_error())
    }
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys { source, .. } => source.raw_os_error(),
            Error::Unsafe { .. } => None,
        }
    }
    /// Whether the check itself could not be made (no search permission,
    /// as for a `cairn check` that does not run as root).
    pub fn is_permission(&self) -> bool {
        matches!(self.errno(), Some(libc::EACCES) | Some(libc::EPERM))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A directory of cairn's, checked: an `O_PATH` fd and the path it was
/// reached by (for messages).
#[derive(Debug)]
pub struct HostDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// How strict a check on a directory is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Above a configured dir: group write is allowed, other write only
    /// with the sticky bit.
    Ancestor,
    /// A configured dir or below: only root writes, sticky or not.
    Own,
}

pub(super) fn stat_of(fd: BorrowedFd<'_>, path: &Path) -> Result<libc::stat> {
    sfs::fstat(fd).map_err(|e| Error::sys(path, "fstat", e.source))
}

fn check_dir(st: &libc::stat, path: &Path, role: Role) -> Result<()> {
    let fail = |why| {
        Err(Error::Unsafe {
            path: path.to_path_buf(),
            why,
        })
    };
    if !sfs::is_dir(st) {
        return fail(Unsafe::NotDir);
    }
    if st.st_uid != 0 {
        return fail(Unsafe::Owner(st.st_uid));
    }
    let sticky = st.st_mode & libc::S_ISVTX != 0;
    let unsafe_bits = match role {
        // A group may write above (Ubuntu's /var/log is root:syslog 0775):
        // it could delete or rename our dir, never plant one we accept,
        // since every step below must be root's. Others only with the
        // sticky bit (/tmp).
        Role::Ancestor if sticky => 0,
        Role::Ancestor => 0o002,
        Role::Own => 0o022,
    };
    if st.st_mode & unsafe_bits != 0 {
        return fail(Unsafe::Writable(st.st_mode));
    }
    Ok(())
}

pub(super) fn check_file(st: &libc::stat, path: &Path) -> Result<()> {
    let why = if !sfs::is_reg(st) {
        Unsafe::NotRegular
    } else if st.st_uid != 0 {
        Unsafe::Owner(st.st_uid)
    } else if st.st_mode & 0o022 != 0 {
        Unsafe::Writable(st.st_mode)
    } else if st.st_nlink > 1 {
        // A hard link to a file elsewhere: writing would write there.
        Unsafe::Links(st.st_nlink)
    } else {
        return Ok(());
    };
    Err(Error::Unsafe {
        path: path.to_path_buf(),
        why,
    })
}

/// openat(2) of one name under `dir`, never following a symlink there.
pub(super) fn open_at(
    dir: BorrowedFd<'_>,
    name: &Path,
    flags: i32,
    mode: u32,
    shown: &Path,
) -> Result<OwnedFd> {
    let c = std::ffi::CString::new(name.as_os_str().as_bytes()).map_err(|_| {
        Error::sys(
            shown,
            "open",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in the name"),
        )
    })?;
    // SAFETY: valid fd and C string; the kernel returns a new fd or -1.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(Error::last(shown, "open"));
    }
    // SAFETY: a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// mkdirat(2) of `name` under `dir`, then root:root and exactly `mode`
/// (whatever the umask and a setgid parent would make of it). `Ok(false)`
/// when something was there already.
fn mkdir_at(dir: BorrowedFd<'_>, name: &Path, mode: u32, shown: &Path) -> Result<bool> {
    let c = std::ffi::CString::new(name.as_os_str().as_bytes())
        .map_err(|_| Error::sys(shown, "mkdir", std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: valid fd and C string.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) } == -1 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Ok(false);
        }
        return Err(Error::sys(shown, "mkdir", e));
    }
    let fd = open_at(dir, name, libc::O_PATH | libc::O_DIRECTORY, 0, shown)?;
    sfs::chown_chmod(fd.as_fd(), &shown.display().to_string(), 0, 0, mode)
        .map_err(|e| Error::sys(shown, e.op, e.source))?;
    Ok(true)
}

/// readlinkat(2) of an `O_PATH | O_NOFOLLOW` fd of a symlink.
fn read_link(fd: BorrowedFd<'_>, shown: &Path) -> Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let empty = c"";
    // SAFETY: valid fd, empty C string (the link itself, see readlinkat(2)),
    // and a buffer of the length we pass.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(Error::last(shown, "readlink"));
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// The parts of `path` to walk, `..` kept (it pops a step).
fn parts(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

impl HostDir {
    /// The configured dir `path` (absolute), every step from `/` checked
    /// (see the module doc). Missing dirs are created (`DIR_MODE`,
    /// root:root) when `create`; otherwise a missing one gives `Ok(None)`
    /// once everything that exists on the way has passed.
    pub fn open(path: &Path, create: bool) -> Result<Option<HostDir>> {
        if !path.is_absolute() {
            return Err(Error::sys(
                path,
                "open",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an absolute path"),
            ));
        }
        let root = Path::new("/");
        let fd = sfs::open_dir(root).map_err(|e| Error::sys(root, "open", e.source))?;
        let mut todo: std::collections::VecDeque<OsString> = parts(path).into();
        let role = |todo: &std::collections::VecDeque<OsString>| {
            if todo.is_empty() {
                Role::Own
            } else {
                Role::Ancestor
            }
        };
        check_dir(&stat_of(fd.as_fd(), root)?, root, role(&todo))?;
        let mut stack = vec![HostDir {
            fd,
            path: root.to_path_buf(),
        }];
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let cur = stack.last().expect("never empty");
            let shown = cur.path.join(&name);
            let fd = match open_at(cur.fd.as_fd(), Path::new(&name), libc::O_PATH, 0, &shown) {
                Ok(fd) => fd,
                Err(e) if e.errno() == Some(libc::ENOENT) => {
                    if !create {
                        return Ok(None);
                    }
                    mkdir_at(cur.fd.as_fd(), Path::new(&name), DIR_MODE, &shown)?;
                    open_at(cur.fd.as_fd(), Path::new(&name), libc::O_PATH, 0, &shown)?
                }
                Err(e) => return Err(e),
            };
            let st = stat_of(fd.as_fd(), &shown)?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                if st.st_uid != 0 {
                    return Err(Error::Unsafe {
                        path: shown,
                        why: Unsafe::SymlinkOwner(st.st_uid),
                    });
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::sys(
                        &shown,
                        "open",
                        std::io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                let target = read_link(fd.as_fd(), &shown)?;
                if target.is_absolute() {
                    stack.truncate(1);
                }
                for p in parts(&target).into_iter().rev() {
                    todo.push_front(p);
                }
                continue;
            }
            check_dir(&st, &shown, role(&todo))?;
            stack.push(HostDir { fd, path: shown });
        }
        Ok(stack.pop())
    }

    /// Check the configured dir `path` and its ancestors without creating
    /// anything (a missing dir is fine: cairn will make it).
    pub fn check(path: &Path) -> Result<()> {
        HostDir::open(path, false).map(|_| ())
    }

    /// `path` whose last `own` components are cairn's own (e.g. an
    /// instance dir `STATE-DIR/SANDBOX/PROCESS.N`, `own` = 2): the rest is
    /// the configured dir (`open`), those steps never symlinks (`sub`).
    /// With `create`, missing steps are made and the last gets `mode`.
    pub fn open_below(path: &Path, own: usize, create: Option<u32>) -> Result<Option<HostDir>> {
        let all: Vec<Component> = path.components().collect();
        let split = all.len().saturating_sub(own);
        let base: PathBuf = all[..split].iter().collect();
        let rest: PathBuf = all[split..].iter().collect();
        match HostDir::open(&base, create.is_some())? {
            Some(dir) => dir.sub(&rest, create),
            None => Ok(None),
        }
    }

    /// The dir `rel` (plain names, no `..`) below this one, each step a
    /// real dir (no symlink) that is root's alone. With `create`, missing
    /// steps are made (`DIR_MODE`, the last one `mode`); without it, a
    /// missing one gives `Ok(None)`.
    pub fn sub(&self, rel: &Path, create: Option<u32>) -> Result<Option<HostDir>> {
        let names = parts(rel);
        let mut cur: Option<HostDir> = None;
        for (i, name) in names.iter().enumerate() {
            let parent = cur.as_ref().unwrap_or(self);
            let shown = parent.path.join(name);
            if name == ".." {
                return Err(Error::sys(
                    &shown,
                    "open",
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "'..' is not allowed"),
                ));
            }
            let last = i + 1 == names.len();
            let open = || open_at(parent.fd.as_fd(), Path::new(name), libc::O_PATH, 0, &shown);
            let fd = match (open(), create) {
                (Ok(fd), _) => fd,
                (Err(e), Some(mode)) if e.errno() == Some(libc::ENOENT) => {
                    let mode = if last { mode } else { DIR_MODE };
                    mkdir_at(parent.fd.as_fd(), Path::new(name), mode, &shown)?;
                    open()?
                }
                (Err(e), None) if e.errno() == Some(libc::ENOENT) => return Ok(None),
                (Err(e), _) => return Err(e),
            };
            let st = stat_of(fd.as_fd(), &shown)?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return Err(Error::Unsafe {
                    path: shown,
                    why: Unsafe::Symlink,
                });
            }
            check_dir(&st, &shown, Role::Own)?;
            cur = Some(HostDir { fd, path: shown });
        }
        Ok(Some(
            cur.unwrap_or(HostDir {
                fd: self
                    .fd
                    .try_clone()
                    .map_err(|e| Error::sys(&self.path, "dup", e))?,
                path: self.path.clone(),
            }),
        ))
    }

    /// A dir checked by another process of ours (the tree, `cairn cmd`)
    /// and handed down by fd (a knot's state dir): `fd` must be an open
    /// dir that was reached by `HostDir::open` as `path`.
    pub fn inherited(fd: OwnedFd, path: PathBuf) -> HostDir {
        HostDir { fd, path }
    }

    /// A copy of the fd (close-on-exec), for a child to inherit.
    pub fn dup(&self) -> Result<OwnedFd> {
        self.fd
            .try_clone()
            .map_err(|e| Error::sys(&self.path, "dup", e))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}
