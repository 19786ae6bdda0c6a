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
