//! Start the workload, the knot's side: fork the child (`prepare`), check
//! the system call filter it must install, write its user namespace maps,
//! send it `go` and read back whether it exec'd. The child's own steps (ids
//! and capabilities, no_new_privs, fds, environment, the filter, the
//! workdir, exec) are in `workload`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use crate::spec::InstanceSpec;
use crate::sys::seccomp::Program;
use crate::sys::{idmap, process};

use crate::protocol::{Context, Stage};

use super::report::REPORT_CAP;
pub use super::report::{EXEC_FAILED, NOT_FOUND, SpawnError};
use super::secrets::Plain;
use super::workload::{ChildFds, child, go_message, max_target};

/// What stops a start on the knot's side of it.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The sandbox's filter profile does not build.
    #[error("{0}")]
    Profile(String),
    #[error(
        "system call filter: none was prepared for this instance's profile (a bug in cairn); \
         not starting it unfiltered"
    )]
    NoFilter,
    /// A pipe or the fork of the workload's child.
    #[error("{0}")]
    Sys(#[from] crate::sys::Error),
    #[error("user namespace maps: {0}")]
    Maps(crate::sys::Error),
    /// The child's report could not be read: it may have exec'd or not.
    #[error("error pipe of the workload's child: {0}")]
    ErrorPipe(std::io::Error),
}

impl From<ExecError> for SpawnError {
    /// A setup failure, with the errno of the call that failed.
    fn from(e: ExecError) -> SpawnError {
        let errno = match &e {
            ExecError::Sys(s) | ExecError::Maps(s) => s.errno(),
            ExecError::ErrorPipe(io) => io.raw_os_error(),
            ExecError::Profile(_) | ExecError::NoFilter => None,
        };
        SpawnError::new(Stage::Setup, e.to_string(), errno, None)
    }
}

/// The filter the context carries, if it is the one `spec` asks for. A
/// missing or different one stops the start: a workload never runs with
/// less than its profile.
fn checked_filter<'a>(
    spec: &InstanceSpec,
    ctx: &'a Context,
) -> Result<Option<&'a Program>, ExecError> {
    match (
        crate::protocol::filter_profile(spec).map_err(ExecError::Profile)?,
        ctx.seccomp.as_deref(),
    ) {
        (None, _) => Ok(None),
        (Some(want), Some(p)) if *p.profile() == want => Ok(Some(p)),
        (Some(_), _) => Err(ExecError::NoFilter),
    }
}

/// Fork and exec the workload; returns its pid (in the knot's pid
/// namespace) once it has exec'd, or the reason it could not.
pub fn spawn(
    spec: &InstanceSpec,
    ctx: &Context,
    stdio: Option<&OwnedFd>,
    secrets: &Plain,
) -> Result<i32, SpawnError> {
    prepare(spec, ctx, stdio, secrets)?.go(spec)
}

/// A workload child forked ahead of `go`: it does what does not depend on
/// the container's root (closing fds, a session, limits, a keyring, and,
/// without a user namespace, its ids, capabilities and system call filter),
/// then waits for `go`. For `cairn cmd` it is forked before the root is
/// built and does this on the other CPU meanwhile (see the knot's `setup`).
/// Dropping it before `go` ends the child (it sees its pipe close).
pub struct Pending {
    pid: i32,
    go_w: OwnedFd,
    up_r: OwnedFd,
    err_r: OwnedFd,
    userns: bool,
}

/// Fork the workload child (see `Pending`).
pub fn prepare(
    spec: &InstanceSpec,
    ctx: &Context,
    stdio: Option<&OwnedFd>,
    secrets: &Plain,
) -> Result<Pending, SpawnError> {
    let filter = checked_filter(spec, ctx)?;
    let setup = |e: crate::sys::Error| SpawnError::from(ExecError::Sys(e));
    let userns = !spec.uid_map.is_empty() || !spec.gid_map.is_empty();
    let (err_r, err_w) = crate::sys::fd::pipe().map_err(setup)?;
    let (up_r, up_w) = crate::sys::fd::pipe().map_err(setup)?;
    let (go_r, go_w) = crate::sys::fd::pipe().map_err(setup)?;
    match process::fork().map_err(setup)? {
        None => {
            drop(err_r);
            drop(up_r);
            drop(go_w);
            // Keep the error pipe above every fd number the workload gets.
            let high = match crate::sys::fd::dup_above(err_w.as_raw_fd(), max_target(ctx) + 1) {
                Ok(high) => high,
                Err(_) => process::exit_now(EXEC_FAILED),
            };
            drop(err_w);
            // From here on the child manages its fds by number: it closes
            // most of them wholesale, and ends in exec or _exit.
            let fds = ChildFds {
                err: high.into_raw_fd(),
                up_w: up_w.into_raw_fd(),
                go_r: go_r.into_raw_fd(),
                stdio: stdio.map(|f| f.as_raw_fd()),
            };
            let err = child(spec, ctx, userns, filter, &fds, secrets);
            // Only reached when something failed before or at exec. The
            // report is best effort: should it not get through whole, the
            // knot takes what it reads for a failure all the same; only a
            // child that dies before it writes a byte (killed by a signal)
            // looks like an exec, and is then seen as a workload that died.
            // Our own error pipe, still open (it is in every keep list),
            // used once more and then we exit.
            let _ = crate::sys::fd::write_all_raw(fds.err, &err.to_wire());
            process::exit_now(err.code);
        }
        Some(pid) => Ok(Pending {
            pid,
            go_w,
            up_r,
            err_r,
            userns,
        }),
    }
}

impl Pending {
    /// The root is ready (pivoted): let the child go on and exec. Returns
    /// the workload's pid once it has exec'd, or why it did not.
    pub fn go(self, spec: &InstanceSpec) -> Result<i32, SpawnError> {
        let Pending {
            pid,
            go_w,
            up_r,
            err_r,
            userns,
        } = self;
        let mut go = std::fs::File::from(go_w);
        if userns {
            // The child entered its user namespace ahead of time and said
            // so; its maps are ours to write.
            let mut b = [0u8; 1];
            let mut r = std::fs::File::from(up_r);
            if r.read(&mut b).unwrap_or(0) == 1 {
                if let Err(e) = idmap::write_maps(
                    pid,
                    &map_lines(&spec.uid_map, spec.uid),
                    &map_lines(&spec.gid_map, spec.gid),
                ) {
                    let _ = process::kill(pid, libc::SIGKILL);
                    let _ = process::wait_for(pid);
                    return Err(ExecError::Maps(e).into());
                }
            }
        } else {
            drop(up_r);
        }
        // A child that already failed has closed its end: the error pipe
        // says why (SIGPIPE is ignored in cairn's processes). With the go
        // comes the identity of the root we pivoted into: the child checks
        // that the pivot moved its root too before it resolves any path.
        let _ = go.write_all(&go_message());
        drop(go);
        // The pipe is close-on-exec: empty at its end means the child
        // exec'd. Anything else fails the start, closed: a report we
        // cannot read whole (see `report`), or a read that fails, after
        // which the child may have exec'd or not. The child is killed
        // (it is exiting anyway after a report, and one that exec'd
        // must not run unsupervised) and reaped.
        let mut report = Vec::new();
        let read = std::fs::File::from(err_r)
            .take(REPORT_CAP as u64 + 1)
            .read_to_end(&mut report);
        let failed = match read {
            Ok(_) => SpawnError::from_report(&spec.executable, &report),
            Err(e) => Some(ExecError::ErrorPipe(e).into()),
        };
        let Some(e) = failed else {
            return Ok(pid);
        };
        let _ = process::kill(pid, libc::SIGKILL);
        let _ = process::wait_for(pid);
        Err(e)
    }
}

/// The lines of a uid or gid map: the configured ones, or `id` to itself.
fn map_lines(m: &[crate::config::range::IdMap], id: u32) -> Vec<idmap::Line> {
    if m.is_empty() {
        vec![idmap::Line {
            inside: id,
            outside: id,
            count: 1,
        }]
    } else {
        m.iter()
            .map(|l| idmap::Line {
                inside: l.inside,
                outside: l.outside,
                count: l.count,
            })
            .collect()
    }
}
