//! Path resolution that an image or a workload cannot redirect: every open
//! goes through `openat2(2)` from a directory fd, with `RESOLVE_*` flags that
//! keep symlinks (and `..`) from leading outside a root.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{Error, Result, check, cstr};

/// How to resolve a path under a directory fd (openat2(2) `resolve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Symlinks are followed but resolved as if the dir were `/`
    /// (`RESOLVE_IN_ROOT`); magic links (`/proc/*/fd`) are refused.
    InRoot,
    /// No symlink at all, and never above the dir
    /// (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`).
    BeneathNoSymlinks,
    /// As `BeneathNoSymlinks`, and never onto another mount, bind mounts
    /// of the same file system included (`RESOLVE_NO_XDEV`): `EXDEV`.
    BeneathSameMount,
}

impl Resolve {
    fn bits(self) -> u64 {
        match self {
            Resolve::InRoot => libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
            Resolve::BeneathNoSymlinks => {
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS
            }
            Resolve::BeneathSameMount => {
                libc::RESOLVE_BENEATH
                    | libc::RESOLVE_NO_SYMLINKS
                    | libc::RESOLVE_NO_MAGICLINKS
                    | libc::RESOLVE_NO_XDEV
            }
        }
    }
}

/// Open the file behind an `O_PATH` fd for real, through its
/// /proc/self/fd magic link (the documented way to upgrade an O_PATH fd).
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> Result<OwnedFd> {
    let link = super::cstr(&format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    // SAFETY: valid C string.
    let new = unsafe { libc::open(link.as_ptr(), flags | libc::O_CLOEXEC) };
    let new = check(new, "reopen", fd.as_raw_fd())?;
    // SAFETY: new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// openat2(2): open `path` relative to `dir` with `flags` (O_CLOEXEC is
/// always added) and the given resolution rules.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: i32,
    mode: u32,
    resolve: Resolve,
) -> Result<OwnedFd> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(flags | libc::O_CLOEXEC))
        .mode(nix::sys::stat::Mode::from_bits_retain(mode))
        .resolve(ResolveFlag::from_bits_retain(resolve.bits()));
    // With RESOLVE_IN_ROOT/BENEATH the kernel answers EAGAIN when a rename
    // or mount anywhere raced a ".." step; openat2(2) says to retry.
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dir, path, how) {
            Err(nix::errno::Errno::EAGAIN) if tries < 128 => tries += 1,
            r => return r.map_err(|e| super::process::nix_err("openat2", path, e)),
        }
    }
}

/// open(2) of a host path that we trust (operator-written config), as an
/// `O_PATH` directory fd to resolve other paths from.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    let s = path.to_string_lossy();
    let c = cstr(&s)?;
    // SAFETY: valid C string; flags are plain constants.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    let fd = check(fd, "open", &s)?;
    // SAFETY: new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Like `open_dir`, but the last component must not be a symlink.
pub fn open_dir_nofollow(path: &Path) -> Result<OwnedFd> {
    let s = path.to_string_lossy();
    let c = cstr(&s)?;
    // SAFETY: valid C string; flags are plain constants.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    let fd = check(fd, "open", &s)?;
    // SAFETY: new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `fd` and the fd numbered `other` (one we were handed) are the
/// same file (device and inode); false if either cannot be looked at.
pub fn same_inode(fd: BorrowedFd<'_>, other: std::os::fd::RawFd) -> bool {
    // SAFETY: fstat only looks the number up; a closed one fails (EBADF).
    let other = unsafe { BorrowedFd::borrow_raw(other) };
    match (fstat(fd), fstat(other)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// fstat(2).
pub fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a live descriptor; st is a valid pointer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, "fstat", "")?;
    Ok(st)
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn is_reg(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

/// Why reading a file out of an image failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Sys(#[from] Error),
    #[error("is not a regular file")]
    NotRegular,
    #[error("is leased by another process (fcntl F_SETLEASE): not waiting for it")]
    Leased,
    #[error("is larger than {0} bytes")]
    TooLarge(usize),
    #[error("read failed: {0}")]
    Io(std::io::Error),
}

/// Open `path` inside the root `root` (symlinks resolved within it, never
/// outside), check it is a regular file, and read at most `cap` bytes.
/// Nothing here waits on the file: a FIFO or a device (`/dev/zero`) is
/// refused before it is opened for reading, and so, at once, is a regular
/// file under a write lease (fcntl(2) `F_SETLEASE`, which the file's owner
/// may take; a blocking open would wait for it up to
/// `/proc/sys/fs/lease-break-time`, 45 s by default).
pub fn read_in_root(
    root: BorrowedFd<'_>,
    path: &str,
    cap: usize,
) -> std::result::Result<Vec<u8>, ReadError> {
    // O_PATH first: it opens nothing (opening a FIFO would wait for or
    // wake its writer, opening a device would run its driver). Only a
    // regular file is then opened for reading, through our own fd (never
    // by name again, so it stays that inode), with O_NONBLOCK against a
    // lease; reads of a regular file ignore O_NONBLOCK.
    let path_fd = openat2(root, path, libc::O_PATH, 0, Resolve::InRoot)?;
    let st = fstat(path_fd.as_fd())?;
    if !is_reg(&st) {
        return Err(ReadError::NotRegular);
    }
    let fd = reopen(
        path_fd.as_fd(),
        libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
    )
    .map_err(|e| match e.errno() {
        Some(libc::EWOULDBLOCK) => ReadError::Leased,
        _ => ReadError::Sys(e),
    })?;
    if st.st_size as u64 > cap as u64 {
        return Err(ReadError::TooLarge(cap));
    }
    let mut buf = Vec::with_capacity(st.st_size.max(0) as usize);
    std::fs::File::from(fd)
        .take(cap as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(buf)
}

/// Open the directory `path` (relative, plain components) under `dir`,
/// refusing symlinks anywhere on the way; `O_PATH` unless `flags` say
/// otherwise.
pub fn open_dir_beneath(dir: BorrowedFd<'_>, path: &str) -> Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    openat2(
        dir,
        rel,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        Resolve::BeneathNoSymlinks,
    )
}

/// Like `open_dir_beneath`, creating missing components with `mode` as we
/// go (mkdirat(2) then open, never following a symlink). Returns the fd and
/// whether the last component was created.
pub fn mkdir_beneath(dir: BorrowedFd<'_>, path: &str, mode: u32) -> Result<(OwnedFd, bool)> {
    let mut cur = open_dir_beneath(dir, ".")?;
    let mut created = false;
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            return Err(Error::new(
                "mkdir",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "'..' is not allowed"),
            ));
        }
        created = false;
        let next = match open_dir_beneath(cur.as_fd(), comp) {
            Ok(fd) => fd,
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                let c = super::cstr(comp)?;
                // SAFETY: valid fd and C string.
                let ret = unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), mode) };
                if ret == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                {
                    return Err(Error::last("mkdir", path));
                }
                created = ret == 0;
                open_dir_beneath(cur.as_fd(), comp)?
            }
            Err(e) => return Err(e),
        };
        cur = next;
    }
    Ok((cur, created))
}

/// fchownat(2) + fchmodat(2) of an O_PATH fd (via AT_EMPTY_PATH and
/// /proc/self/fd for chmod, which has no AT_EMPTY_PATH form).
pub fn chown_chmod(fd: BorrowedFd<'_>, what: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
    let empty = super::cstr("")?;
    // SAFETY: valid fd and empty C string with AT_EMPTY_PATH.
    let ret = unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH,
        )
    };
    check(ret, "chown", what)?;
    let proc_path = super::cstr(&format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    // SAFETY: valid C string; chmod through the magic link of our own fd.
    check(
        unsafe { libc::chmod(proc_path.as_ptr(), mode) },
        "chmod",
        what,
    )?;
    Ok(())
}

/// Replace the file `name` in `dir` with `content`: unlink whatever is
/// there (a symlink or hard link a workload may have planted), then create
/// it exclusively, never following a symlink.
pub fn replace_file(dir: BorrowedFd<'_>, name: &str, content: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let c = super::cstr(name)?;
    // SAFETY: valid fd and C string.
    let ret = unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
    if ret == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT) {
        return Err(Error::last("unlink", name));
    }
    let fd = openat2(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        mode,
        Resolve::BeneathNoSymlinks,
    )?;
    let mut f = std::fs::File::from(fd);
    f.write_all(content)
        .map_err(|e| Error::new("write", name, e))?;
    Ok(())
}

fn whole_file_lock(kind: libc::c_short) -> libc::flock {
    // SAFETY: zeroed flock is valid; we set the fields we use.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// fcntl(2) F_SETLK write lock on the whole file (a POSIX record lock: the
/// kernel reports its holder's pid in the asker's pid namespace, so `cairn
/// reload` never signals a pid that means something else where it runs).
/// `Ok(false)` when another process holds it.
pub fn lock_posix(fd: BorrowedFd<'_>) -> Result<bool> {
    let fl = whole_file_lock(libc::F_WRLCK as libc::c_short);
    // SAFETY: valid fd and flock struct.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
        return Ok(false);
    }
    Err(Error::new("fcntl F_SETLK", "", e))
}

/// fcntl(2) F_GETLK: who holds the write lock on the file. `None`: nobody;
/// `Some(0)`: a process in another pid namespace (not visible here).
pub fn lock_holder(fd: BorrowedFd<'_>) -> Result<Option<i32>> {
    let mut fl = whole_file_lock(libc::F_WRLCK as libc::c_short);
    // SAFETY: valid fd and flock struct (in/out).
    check(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLK, &mut fl) },
        "fcntl F_GETLK",
        "",
    )?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some(fl.l_pid))
}

/// flock(2) LOCK_EX|LOCK_NB: `Ok(false)` when another process holds it.
pub fn try_lock(fd: BorrowedFd<'_>) -> Result<bool> {
    // SAFETY: plain syscall on a live fd.
    let ret = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if ret == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(Error::new("flock", "", e))
}

/// Write `content` to `path` atomically (see `write_atomic_at`), mode
/// 0644. The dir is the operator's (e.g. the processes dir of `cairn
/// switch`), opened by its path.
pub fn write_atomic(path: &std::path::Path, content: &[u8], sync: bool) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let fd = open_dir(dir).map_err(|e| e.source)?;
    write_atomic_at(fd.as_fd(), name, 0o644, sync, |w| w.write_all(content))
}

/// Replace `name` in `dir` atomically: a temp file created exclusively
/// next to it (`O_EXCL | O_NOFOLLOW`: nothing planted at the temp name is
/// followed or reused) with exactly `mode` (whatever the umask), filled by
/// `fill` through a buffered writer, fsync'd with `sync`, then renamed
/// over `name` (rename(2) replaces a symlink there, never follows it).
pub fn write_atomic_at(
    dir: BorrowedFd<'_>,
    name: &str,
    mode: u32,
    sync: bool,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = format!(".{name}.tmp.{}", std::process::id());
    let (c_tmp, c_name) = (
        cstr(&tmp).map_err(|e| e.source)?,
        cstr(name).map_err(|e| e.source)?,
    );
    // A temp file of ours left by a crash (same pid after a reboot): gone.
    // SAFETY: valid fd and C string.
    unsafe { libc::unlinkat(dir.as_raw_fd(), c_tmp.as_ptr(), 0) };
    let fd = openat2(
        dir,
        &tmp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        mode,
        Resolve::BeneathNoSymlinks,
    )
    .map_err(|e| e.source)?;
    let result = (|| {
        // SAFETY: plain fchmod(2) on the fd we just created.
        if unsafe { libc::fchmod(fd.as_raw_fd(), mode) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::from(fd));
        fill(&mut w)?;
        w.flush()?;
        if sync {
            w.get_ref().sync_data()?;
        }
        // SAFETY: valid fd and C strings; both names are in `dir`.
        let ret = unsafe {
            libc::renameat(
                dir.as_raw_fd(),
                c_tmp.as_ptr(),
                dir.as_raw_fd(),
                c_name.as_ptr(),
            )
        };
        if ret == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })();
    if result.is_err() {
        // SAFETY: as above; the temp file is ours.
        unsafe { libc::unlinkat(dir.as_raw_fd(), c_tmp.as_ptr(), 0) };
    }
    result
}

/// Own an fd number handed to us across exec (the upgrade hand-off), after
/// checking that it is open.
pub fn adopt_fd(fd: i32) -> Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the fd table.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(Error::last("fcntl F_GETFD", fd));
    }
    // Close-on-exec again: it was cleared only to cross one exec
    // (invariant 4: no fd leaks into anything we exec later).
    // SAFETY: plain fcntl on an open fd.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(Error::last("fcntl F_SETFD", fd));
    }
    // SAFETY: the fd is open and was handed to us to own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
