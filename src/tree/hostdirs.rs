//! cairn's dirs on the host, as the tree, `cairn cmd`, `check` and
//! `upgrade` see them: unsafe configured dirs are refused before anything
//! starts, and the records of an instance dir (`knot`, `error`,
//! `exit-status`) are believed only when root alone could have written
//! them. The rules themselves are in `sys::hostfs`.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::config::master::Master;
use crate::protocol::{ERROR_FILE, EXIT_FILE, ExitRecord};
use crate::sys::fs as sfs;
use crate::sys::hostfs::{self, HostDir};
use crate::sys::process;

/// Why cairn's dirs on the host cannot be used; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum HostDirsError {
    /// Configured dirs that are not root's alone: one line each
    /// (`Problem::line`).
    #[error("{}", .0.join("\n"))]
    Unsafe(Vec<String>),
    /// A dir failed the rules, or could not be made (the error names it).
    #[error("{0}")]
    Dir(#[from] hostfs::Error),
    #[error("{}: {key}: could not be created", .master.display())]
    NotCreated { master: PathBuf, key: &'static str },
    #[error("{}: {source}", .path.display())]
    Lock {
        path: PathBuf,
        source: crate::sys::Error,
    },
    #[error("another cairn tree ({holder}) already runs with runtime dir {}", .dir.display())]
    Running { holder: String, dir: PathBuf },
    #[error("{}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Which configured dirs a command writes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The tree (and `check`, `upgrade`): all of them.
    Tree,
    /// `cairn cmd`: the runtime, state and mount dirs (its workload's
    /// output goes to the caller).
    Command,
}

/// One configured dir that is not root's alone.
pub struct Problem {
    /// The master.yaml key that sets it.
    pub key: &'static str,
    /// The path and what is wrong with it (or with a dir above it).
    pub message: String,
    /// The check itself was not allowed (`cairn check` as a user).
    pub permission: bool,
}

impl Problem {
    /// `MASTER: KEY: MESSAGE`, as config errors are written.
    pub fn line(&self, master: &Master) -> String {
        format!("{}: {}: {}", master.path.display(), self.key, self.message)
    }
}

/// Every configured dir of `scope` that fails the rules.
pub fn problems(master: &Master, scope: Scope) -> Vec<Problem> {
    problems_creating(master, scope, &[]).0
}

/// `problems`, creating the dirs of the keys in `create` (root:root 0755)
/// on the same walk (one walk per dir on the path of every `cairn cmd`).
/// Also returns the dirs that passed, by key.
fn problems_creating(
    master: &Master,
    scope: Scope,
    create: &[&str],
) -> (Vec<Problem>, Vec<(&'static str, HostDir)>) {
    let mut seen: Vec<&Path> = Vec::new();
    let mut out = Vec::new();
    let mut passed = Vec::new();
    for (key, dir) in master.own_dirs() {
        let wanted = match scope {
            Scope::Tree => true,
            Scope::Command => matches!(key, "runtime-dir" | "state-dir" | "mount-dir"),
        };
        if !wanted || seen.contains(&dir) {
            continue;
        }
        seen.push(dir);
        let opened = HostDir::open(dir, create.contains(&key));
        if let Ok(Some(d)) = opened {
            passed.push((key, d));
            continue;
        }
        if let Err(e) = opened {
            let what = match &e {
                hostfs::Error::Unsafe { path, .. } | hostfs::Error::Sys { path, .. }
                    if path == dir =>
                {
                    e.to_string()
                }
                _ => format!("{}: above it, {e}", dir.display()),
            };
            out.push(Problem {
                key,
                message: format!(
                    "{what}; cairn writes there as root, so it and every dir above it must be \
                     owned by root and writable by nobody else (above it, a sticky dir such as \
                     /tmp is fine)"
                ),
                permission: e.is_permission(),
            });
        }
    }
    (out, passed)
}

/// `problems` as one error, for commands that refuse to start on any.
pub fn refuse_unsafe(master: &Master, scope: Scope) -> Result<(), HostDirsError> {
    refuse(master, problems(master, scope))
}

/// `refuse_unsafe` for `cairn cmd`, which then creates the state and mount
/// dirs its knot needs.
/// Returns the runtime and state dirs, checked.
pub fn prepare_command(master: &Master) -> Result<(HostDir, HostDir), HostDirsError> {
    let (p, mut passed) = problems_creating(
        master,
        Scope::Command,
        &["runtime-dir", "state-dir", "mount-dir"],
    );
    refuse(master, p)?;
    let mut take = |key: &str| {
        passed
            .iter()
            .position(|(k, _)| *k == key)
            .map(|i| passed.swap_remove(i).1)
    };
    let runtime = take("runtime-dir");
    let state = take("state-dir");
    // A key whose dir is another key's too was checked (and made) once.
    let again = |d: Option<HostDir>, path: &Path, key: &'static str| match d {
        Some(d) => Ok(d),
        None => HostDir::open(path, true)?.ok_or_else(|| HostDirsError::NotCreated {
            master: master.path.clone(),
            key,
        }),
    };
    Ok((
        again(runtime, &master.runtime_dir, "runtime-dir")?,
        again(state, &master.state_dir, "state-dir")?,
    ))
}

fn refuse(master: &Master, p: Vec<Problem>) -> Result<(), HostDirsError> {
    if p.is_empty() {
        return Ok(());
    }
    Err(HostDirsError::Unsafe(
        p.iter().map(|p| p.line(master)).collect(),
    ))
}

/// Take the pid file lock in the runtime dir, or say which tree holds it.
pub fn lock_pid_file(runtime: &HostDir) -> Result<std::fs::File, HostDirsError> {
    let f = runtime.open_file("tree.pid", hostfs::FILE_MODE, false)?;
    let path = runtime.path().join("tree.pid");
    let locked = sfs::lock_posix(f.as_fd()).map_err(|source| HostDirsError::Lock {
        path: path.clone(),
        source,
    })?;
    if !locked {
        let holder = match sfs::lock_holder(f.as_fd()) {
            Ok(Some(pid)) if pid > 0 => format!("pid {pid}"),
            _ => "in another pid namespace".to_string(),
        };
        return Err(HostDirsError::Running {
            holder,
            dir: runtime.path().to_path_buf(),
        });
    }
    // Through the locked fd: opening the file again and closing it would
    // drop a POSIX lock (fcntl(2), "Advisory record locking").
    let write = |source| HostDirsError::Write {
        path: path.clone(),
        source,
    };
    f.set_len(0).map_err(write)?;
    (&f).write_all(format!("{}\n", process::getpid()).as_bytes())
        .map_err(write)?;
    Ok(f)
}

/// The instance dir `SANDBOX/LEAF` of the state dir `state`, if it exists
/// and is root's alone (a real dir, no symlink); anything else is logged
/// and ignored.
pub fn instance_in(state: &HostDir, sandbox: &str, leaf: &str) -> Option<HostDir> {
    match state.sub(&Path::new(sandbox).join(leaf), None) {
        Ok(d) => d,
        Err(e) => {
            log::warn!("{e}; ignored (not written by cairn alone)");
            None
        }
    }
}

/// The instance dir at `path` (`STATE-DIR/SANDBOX/LEAF`), as `instance_in`.
pub fn instance_at(path: &Path) -> Option<HostDir> {
    match HostDir::open_below(path, 2, None) {
        Ok(d) => d,
        Err(e) => {
            log::warn!("{e}; ignored (not written by cairn alone)");
            None
        }
    }
}

/// The largest record we read back (a `knot` file lists a few sockets).
const RECORD_CAP: usize = 64 << 10;

/// A record of an instance dir (`knot`, `error`, `exit-status`), if there
/// is one that only root could have written; anything else is logged and
/// ignored.
pub fn record(dir: &HostDir, name: &str) -> Option<Vec<u8>> {
    match dir.read_trusted(name, RECORD_CAP) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("{e}; ignored (not written by cairn alone)");
            None
        }
    }
}

/// The exit record a knot left in `dir`: `exit-status` and `error`.
pub fn exit_record(dir: &HostDir) -> (Option<ExitRecord>, Option<String>) {
    let rec = record(dir, EXIT_FILE).and_then(|b| serde_json::from_slice(&b).ok());
    let error = record(dir, ERROR_FILE).map(|b| String::from_utf8_lossy(&b).into_owned());
    (rec, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_dir_or_file() {
        let e = HostDirsError::Running {
            holder: "pid 42".into(),
            dir: "/run/cairn".into(),
        };
        assert_eq!(
            e.to_string(),
            "another cairn tree (pid 42) already runs with runtime dir /run/cairn"
        );
        let e = HostDirsError::Write {
            path: "/run/cairn/tree.pid".into(),
            source: std::io::Error::from_raw_os_error(libc::EROFS),
        };
        assert_eq!(
            e.to_string(),
            "/run/cairn/tree.pid: Read-only file system (os error 30)"
        );
        let e = HostDirsError::NotCreated {
            master: "/etc/cairn/master.yaml".into(),
            key: "state-dir",
        };
        assert_eq!(
            e.to_string(),
            "/etc/cairn/master.yaml: state-dir: could not be created"
        );
        let e = HostDirsError::Unsafe(vec!["a: x: bad".into(), "a: y: bad".into()]);
        assert_eq!(e.to_string(), "a: x: bad\na: y: bad");
    }
}
