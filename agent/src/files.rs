//! The files the agent keeps in the tree's runtime dir, each with an
//! explicit owner and mode, created without following a symlink:
//!
//! - `cairn-agent.pid`: the agent's pid, locked (`flock`) while it runs;
//!   a second agent on the same runtime dir finds it locked and refuses.
//! - `cairn-agent.json`: the revision applied and the sandboxes the agent
//!   manages, so a restarted agent resumes its watch where it stopped.
//! - `cairn-agent.prom`: the agent's metrics (Prometheus textfile).
//! - `cairn-agent/`: root's only (0700), the values handed to `cairn
//!   switch`, one `SANDBOX.yaml` each while it runs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file of the agent could not be used; names the path.
#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub what: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

fn err(path: &Path, what: impl std::fmt::Display) -> FileError {
    FileError {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// Refuse what root alone could not have made: not owned by root, or
/// writable by group or others, or (for a file) more than one link.
fn check_owned(path: &Path, meta: &fs::Metadata, dir: bool) -> Result<(), FileError> {
    if meta.uid() != 0 {
        return Err(err(path, format!("owned by uid {}, not root", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(err(
            path,
            format!(
                "writable by group or others (mode {:04o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    if !dir && meta.nlink() != 1 {
        return Err(err(path, format!("{} links, expected 1", meta.nlink())));
    }
    Ok(())
}

/// Make `dir` (one level) root:root with `mode` if it is missing; refuse a
/// symlink, a non-directory or one that is not root's alone.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), FileError> {
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))
                .map_err(|e| err(dir, format!("chmod: {e}")))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(dir, format!("mkdir: {e}"))),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| err(dir, e))?;
    if !meta.is_dir() {
        return Err(err(dir, "not a directory (a symlink is not followed)"));
    }
    check_owned(dir, &meta, true)
}

/// Open (create) `path` for writing without following a symlink, check it
/// is a regular file of root's with one link, and set `mode` exactly.
fn open_checked(path: &Path, mode: u32, create_new: bool) -> Result<File, FileError> {
    let mut o = OpenOptions::new();
    o.write(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    let f = o.open(path).map_err(|e| err(path, format!("open: {e}")))?;
    let meta = f.metadata().map_err(|e| err(path, e))?;
    if !meta.is_file() {
        return Err(err(path, "not a regular file"));
    }
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| err(path, format!("chmod: {e}")))?;
    let meta = f.metadata().map_err(|e| err(path, e))?;
    check_owned(path, &meta, false)?;
    Ok(f)
}

/// The pid file, locked for the agent's whole life.
pub struct PidLock {
    _file: File,
}

/// Take `RUNTIME/cairn-agent.pid`; a running agent holds it: refuse.
pub fn lock_pid_file(runtime_dir: &Path) -> Result<PidLock, FileError> {
    let path = runtime_dir.join("cairn-agent.pid");
    let mut f = open_checked(&path, 0o644, false)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let other = fs::read_to_string(&path).unwrap_or_default();
            return Err(err(
                &path,
                format!(
                    "locked: another cairn-agent (pid {}) serves this tree",
                    other.trim()
                ),
            ));
        }
        Err(fs::TryLockError::Error(e)) => return Err(err(&path, format!("flock: {e}"))),
    }
    f.set_len(0).map_err(|e| err(&path, e))?;
    writeln!(f, "{}", std::process::id()).map_err(|e| err(&path, e))?;
    Ok(PidLock { _file: f })
}

/// Replace `path` whole: a temp file next to it (created exclusively,
/// `mode`), synced, renamed over it. A reader never sees half of it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    // A leftover of an agent killed mid-write (unlink does not follow a
    // symlink).
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(&tmp, format!("unlink: {e}"))),
    }
    let mut f = open_checked(&tmp, mode, true)?;
    f.write_all(bytes).map_err(|e| err(&tmp, e))?;
    f.sync_all().map_err(|e| err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| err(path, format!("rename: {e}")))
}

/// Read a file of ours back (the saved revision), believing it only when
/// root alone could have written it; `None` when it is missing.
pub fn read_checked(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(path, format!("open: {e}"))),
    };
    let meta = f.metadata().map_err(|e| err(path, e))?;
    if !meta.is_file() {
        return Err(err(path, "not a regular file"));
    }
    check_owned(path, &meta, false)?;
    let mut buf = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(f, 4 << 20), &mut buf).map_err(|e| err(path, e))?;
    Ok(Some(buf))
}

/// Where the agent puts a value for `cairn switch`: `RUNTIME/cairn-agent/`.
pub fn values_dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("cairn-agent")
}
