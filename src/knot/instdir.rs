//! The instance dir on the host: made (or reused) below the checked state
//! dir, cleared of what an earlier run left, and, for a knot of the tree,
//! the `knot` file that makes the knot findable by a new tree.

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::spec::InstanceSpec;
use crate::sys::fs as sfs;
use crate::sys::{hostfs, process};

use crate::protocol::{
    Context, ERROR_FILE, EXIT_FILE, KNOT_FILE, KnotRecord, Policy, WORKLOAD_PID_FILE,
};

use super::hands_over;

/// Why the instance dir could not be made ready. Each names its path.
#[derive(Debug, thiserror::Error)]
pub enum InstanceDirError {
    #[error("instance dir: {0}")]
    Check(#[from] hostfs::Error),
    #[error("instance dir {}: not created", .0.display())]
    NotCreated(PathBuf),
    #[error("instance dir {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: crate::sys::Error,
    },
    #[error("{}/state: {source}", .path.display())]
    State {
        path: PathBuf,
        source: crate::sys::Error,
    },
    #[error("/proc/self/stat: {0}")]
    Stat(std::io::Error),
    #[error("{}/{KNOT_FILE}: {source}", .path.display())]
    KnotFile {
        path: PathBuf,
        source: crate::sys::Error,
    },
    /// Tying the knot's life to the tree's no longer.
    #[error("{0}")]
    Untie(crate::sys::Error),
}

/// The `knot` record (`protocol::KnotRecord`) of this knot: a restarted
/// tree adopts us, and takes back our listening sockets, from it.
pub(super) fn knot_file(spec: &InstanceSpec, ctx: &Context, pid: i32, ticks: u64) -> String {
    let handing_over = hands_over(spec, ctx);
    let sockets = spec.tcp_ports.iter().zip(&ctx.sockets).enumerate();
    let sockets = sockets.map(|(i, (port, (_, fd)))| {
        // cairn-init keeps the sockets at 6, 7, ... (see `hand_over`).
        let fd = if handing_over { 6 + i as RawFd } else { *fd };
        let owner = port.settings.reuse_port.then(|| spec.name.clone());
        (fd, port.settings.host, port.port, owner)
    });
    KnotRecord {
        pid,
        ticks,
        hash: ctx.hash.clone(),
        policy: Some(Policy::of(spec)),
        sockets: sockets.collect(),
    }
    .to_text()
}

/// Set the parent-death signal, then check that the parent is still
/// `tree` (it may have died before): our host pid and start time (from
/// /proc/self/stat, which is still the tree's /proc here), or `None` when
/// the tree is gone.
pub(super) fn tied_to_tree(tree: i32) -> Option<(i32, u64)> {
    process::set_pdeathsig(libc::SIGKILL).ok()?;
    let stat = crate::sys::proc::read_text("/proc/self/stat").ok()?;
    let (pid, ppid) = crate::sys::proc::parse_stat_pids(&stat)?;
    let ticks = crate::sys::proc::parse_stat_start_time(&stat)?;
    (ppid == tree).then_some((pid, ticks))
}

/// The instance dir, its `state/`, and our host pid and start time.
pub(super) type InstanceDir = (OwnedFd, OwnedFd, i32, u64);

/// The state dir that `ctx.state_dir_fd` names, opened again in our own
/// mount namespace (a bind mount needs its source there), and the part of
/// the instance's path below it. The tree or `cairn cmd` checked every dir
/// on its path (root's alone), so only root could have changed it since:
/// it is opened by path once, and must be the very dir that was checked
/// (device and inode). `None`: walk it step by step instead.
fn state_dir_here<'a>(
    spec: &'a InstanceSpec,
    ctx: &Context,
) -> Option<(hostfs::HostDir, &'a Path)> {
    let checked = ctx.state_dir_fd?;
    let base = spec.host.state_dir.parent()?.parent()?;
    let rel = spec.host.state_dir.strip_prefix(base).ok()?;
    let here = sfs::open_dir_nofollow(base).ok()?;
    sfs::same_inode(here.as_fd(), checked)
        .then(|| (hostfs::HostDir::inherited(here, base.to_path_buf()), rel))
}

/// Create (or reuse) the instance dir and its `state/`, clear the files a
/// previous run left, and (supervised) write our `knot` file. `host`: our
/// host pid and start time, for a knot of the tree.
pub(super) fn instance_dir(
    spec: &InstanceSpec,
    ctx: &Context,
    host: Option<(i32, u64)>,
) -> Result<InstanceDir, InstanceDirError> {
    // STATE-DIR/SANDBOX/INSTANCE: the state dir is checked from `/` down;
    // the sandbox and instance steps are ours, never symlinks, root's
    // alone, created 0755 and 0700 (sys::hostfs).
    let dir = match state_dir_here(spec, ctx) {
        // The state dir was checked by whoever started us; only the
        // sandbox and instance steps are ours to check (and make).
        Some((base, rel)) => base.sub(rel, Some(hostfs::PRIVATE_DIR_MODE)),
        None => {
            hostfs::HostDir::open_below(&spec.host.state_dir, 2, Some(hostfs::PRIVATE_DIR_MODE))
        }
    }?
    .ok_or_else(|| InstanceDirError::NotCreated(spec.host.state_dir.clone()))?;
    let path = || dir.path().to_path_buf();
    let inst = sfs::openat2(
        dir.fd(),
        ".",
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        sfs::Resolve::BeneathNoSymlinks,
    )
    .map_err(|source| InstanceDirError::Open {
        path: path(),
        source,
    })?;
    if ctx.supervised {
        for f in [ERROR_FILE, EXIT_FILE, WORKLOAD_PID_FILE] {
            let _ = nix::unistd::unlinkat(&inst, f, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
    }
    // `state/` is the workload's `!Statedir` (owner and mode from the
    // container config): a real dir, no symlink; the 0700 instance dir
    // keeps host users out of it.
    let (state, _) =
        sfs::mkdir_beneath(inst.as_fd(), "state", hostfs::DIR_MODE).map_err(|source| {
            InstanceDirError::State {
                path: path(),
                source,
            }
        })?;
    // Who we are on the host (see `tied_to_tree`): a restarted tree
    // adopts us by this file.
    let (mut host_pid, mut ticks) = (0, 0);
    if ctx.supervised {
        (host_pid, ticks) = match host {
            Some(h) => h,
            None => {
                let stat = crate::sys::proc::read_text("/proc/self/stat")
                    .map_err(InstanceDirError::Stat)?;
                let pid = crate::sys::proc::parse_stat_pids(&stat).map_or(0, |(p, _)| p);
                (
                    pid,
                    crate::sys::proc::parse_stat_start_time(&stat).unwrap_or(0),
                )
            }
        };
        sfs::replace_file(
            inst.as_fd(),
            KNOT_FILE,
            knot_file(spec, ctx, host_pid, ticks).as_bytes(),
            0o644,
        )
        .map_err(|source| InstanceDirError::KnotFile {
            path: path(),
            source,
        })?;
        // Findable now: a new tree adopts us, so the tree's death is no
        // longer ours.
        if ctx.tree_pid.is_some() {
            process::set_pdeathsig(0).map_err(InstanceDirError::Untie)?;
        }
    }
    Ok((inst, state, host_pid, ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_instance_dir() {
        let sys =
            |op, errno| crate::sys::Error::new(op, "", std::io::Error::from_raw_os_error(errno));
        let path = PathBuf::from("/var/lib/cairn/box/web.0");
        let e = InstanceDirError::State {
            path: path.clone(),
            source: sys("mkdirat", libc::ENOSPC),
        };
        assert_eq!(
            e.to_string(),
            "/var/lib/cairn/box/web.0/state: mkdirat: No space left on device (os error 28)"
        );
        let e = InstanceDirError::KnotFile {
            path: path.clone(),
            source: sys("write", libc::EIO),
        };
        assert_eq!(
            e.to_string(),
            "/var/lib/cairn/box/web.0/knot: write: Input/output error (os error 5)"
        );
        let e = InstanceDirError::Open {
            path: path.clone(),
            source: sys("openat2", libc::EACCES),
        };
        assert!(
            e.to_string()
                .starts_with("instance dir /var/lib/cairn/box/web.0: ")
        );
        assert_eq!(
            InstanceDirError::NotCreated(path).to_string(),
            "instance dir /var/lib/cairn/box/web.0: not created"
        );
    }
}
