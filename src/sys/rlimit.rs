//! Resource limits (getrlimit(2), setrlimit(2)).

use super::{Error, Result, check};

/// The resource argument of getrlimit(2)/setrlimit(2): an enum type in
/// glibc, a plain int in musl.
#[cfg(target_env = "gnu")]
pub type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type Resource = libc::c_int;

/// setrlimit(2) with soft = hard.
pub fn set_rlimit(resource: Resource, value: u64, what: &'static str) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: valid rlimit struct.
    check(
        unsafe { libc::setrlimit(resource, &lim) },
        "setrlimit",
        what,
    )?;
    Ok(())
}

/// getrlimit(2); false if it failed.
pub fn get_rlimit(resource: Resource, out: &mut libc::rlimit) -> bool {
    // SAFETY: valid out pointer.
    unsafe { libc::getrlimit(resource, out) == 0 }
}

/// setrlimit(2) with distinct soft and hard limits.
pub fn set_rlimit_soft(resource: Resource, soft: u64, hard: u64) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: valid rlimit struct.
    check(
        unsafe { libc::setrlimit(resource, &lim) },
        "setrlimit",
        "soft limit",
    )?;
    Ok(())
}

/// Raise the soft limit of `resource` to its hard limit; returns the new
/// soft limit.
pub fn raise_soft_to_hard(resource: Resource, what: &'static str) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if !get_rlimit(resource, &mut lim) {
        return Err(Error::last("getrlimit", what));
    }
    if lim.rlim_cur < lim.rlim_max {
        set_rlimit_soft(resource, lim.rlim_max, lim.rlim_max)?;
    }
    Ok(lim.rlim_max)
}

pub const RLIMIT_NOFILE: Resource = libc::RLIMIT_NOFILE;
pub const RLIMIT_AS: Resource = libc::RLIMIT_AS;
pub const RLIMIT_CPU: Resource = libc::RLIMIT_CPU;
pub const RLIMIT_CORE: Resource = libc::RLIMIT_CORE;
pub const RLIMIT_FSIZE: Resource = libc::RLIMIT_FSIZE;
pub const RLIMIT_NPROC: Resource = libc::RLIMIT_NPROC;
pub const RLIMIT_MEMLOCK: Resource = libc::RLIMIT_MEMLOCK;

/// prlimit(2) read of `pid`'s limit of `resource`: (soft, hard).
pub fn limit_of(pid: i32, resource: Resource) -> Result<(u64, u64)> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit (read only) and a valid out pointer.
    check(
        unsafe { libc::prlimit(pid, resource, std::ptr::null(), &mut old) },
        "prlimit",
        pid,
    )?;
    Ok((old.rlim_cur, old.rlim_max))
}

/// Every resource limit a process has (getrlimit(2)'s list), in order.
pub const ALL: [(Resource, &str); 16] = [
    (libc::RLIMIT_CPU, "RLIMIT_CPU"),
    (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
    (libc::RLIMIT_DATA, "RLIMIT_DATA"),
    (libc::RLIMIT_STACK, "RLIMIT_STACK"),
    (libc::RLIMIT_CORE, "RLIMIT_CORE"),
    (libc::RLIMIT_RSS, "RLIMIT_RSS"),
    (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
    (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
    (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
    (libc::RLIMIT_AS, "RLIMIT_AS"),
    (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
    (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
    (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
    (libc::RLIMIT_NICE, "RLIMIT_NICE"),
    (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
    (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
];

/// setrlimit(2) of one resource, soft and hard as given (`what` names it).
pub fn set_limit(resource: Resource, (soft, hard): (u64, u64), what: &'static str) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: valid rlimit struct.
    check(
        unsafe { libc::setrlimit(resource, &lim) },
        "setrlimit",
        what,
    )?;
    Ok(())
}
