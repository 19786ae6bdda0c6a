//! What joining a running instance needs that the tree and `cairn exec`
//! both look up: the instance's user namespace.

use std::os::fd::{AsFd, OwnedFd};

use crate::protocol::WORKLOAD_PID_FILE;
use crate::sys::hostfs::HostDir;
use crate::sys::{namespace, pidfd, proc};

use super::hostdirs;

/// The instance's user namespace: the one the knot had the workload make,
/// found from the workload (the child of pid 1 whose pid in the container
/// the knot recorded, in the container's pid namespace). That is the
/// workload's own user namespace, or, when the workload made one of its
/// own (`allow-user-namespaces`), the one that is nested in: walking up
/// from the workload's, the last before ours, made by root (owner uid 0).
/// Joining a namespace the workload made would give it every capability
/// over the joined command.
pub fn instance_userns(dir: &HostDir, pid1: i32) -> Result<OwnedFd, String> {
    let recorded = hostdirs::record(dir, WORKLOAD_PID_FILE)
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse::<i32>().ok())
        .ok_or("no workload.pid record: its workload does not run")?;
    let children = proc::read_text(format!("/proc/{pid1}/task/{pid1}/children"))
        .map_err(|e| format!("/proc/{pid1}: {e}"))?;
    let container_ns = proc::pid_ns(pid1).ok_or("its pid namespace cannot be read")?;
    let nspid = |c: i32| {
        proc::read_text(format!("/proc/{c}/status"))
            .ok()
            .and_then(|s| {
                proc::status_field(&s, "NSpid")?
                    .split_whitespace()
                    .last()?
                    .parse::<i32>()
                    .ok()
            })
    };
    let workload = children
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
        .find(|&c| nspid(c) == Some(recorded))
        .ok_or("its workload does not run")?;
    // Held by a pidfd while /proc/PID is read, then checked alive: every
    // answer below is about that one process.
    let held = pidfd::open(workload).map_err(|e| format!("its workload: {e}"))?;
    if nspid(workload) != Some(recorded)
        || proc::pid_ns(workload).as_deref() != Some(container_ns.as_str())
    {
        return Err("its workload is not in its pid namespace".into());
    }
    let ns: OwnedFd = std::fs::File::open(format!("/proc/{workload}/ns/user"))
        .map_err(|e| format!("/proc/{workload}/ns/user: {e}"))?
        .into();
    if !pidfd::alive(held.as_fd()) {
        return Err("its workload ended".into());
    }
    let ours = namespace::own("user").map_err(|e| e.to_string())?;
    let same = |a: &OwnedFd, b: &OwnedFd| {
        crate::sys::fd::dev_ino(a.as_fd()).ok() == crate::sys::fd::dev_ino(b.as_fd()).ok()
    };
    // User namespaces nest 32 deep at most (user_namespaces(7)).
    let mut ns = ns;
    for _ in 0..33 {
        let parent = namespace::userns_parent(ns.as_fd())
            .map_err(|e| format!("its workload's user namespace: {e}"))?;
        if same(&parent, &ours) {
            if namespace::userns_owner(ns.as_fd()).ok() != Some(0) {
                return Err(
                    "its user namespace was not made by cairn (its owner is not root)".into(),
                );
            }
            return Ok(ns);
        }
        ns = parent;
    }
    Err("its workload's user namespace is not below ours".into())
}
