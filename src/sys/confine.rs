//! Confining the calling process before it touches hostile input. The
//! child that parses a container config (for the tree, `cairn cmd` and
//! `cairn check`) calls `confine` right after fork(2); from then on it runs
//! as nobody, holds no capability and no fd but the ones it was given, and
//! cannot open, fork or grow past its limits. A parser bug that a hostile
//! file turns into code execution gets nothing worth having.
//!
//! This is the one place that decides what "confined" means, the system
//! call filter (installed last) included.

use std::os::fd::RawFd;

use super::{Error, Result, caps, crash, process, signal};

/// The uid and gid a confined process runs as (nobody and nogroup on
/// Debian, Fedora, Alpine and most other distributions).
pub const NOBODY: u32 = 65534;
pub const NOGROUP: u32 = 65534;

/// What a confined process keeps.
#[derive(Debug, Clone)]
pub struct Confinement<'a> {
    /// The uid and gid to become when we are privileged.
    pub uid: u32,
    pub gid: u32,
    /// The only fds left open (every other one is closed).
    pub keep_fds: &'a [RawFd],
    /// How much the address space may grow over what is mapped now.
    pub extra_address_space: u64,
    /// CPU seconds (soft and hard: SIGXCPU, then SIGKILL).
    pub cpu_seconds: u64,
    /// The pid of the process that forked us, read before the fork.
    pub parent: i32,
    /// The system call filter to install last (compiled before the fork:
    /// `seccomp::parser`); `None` only where cairn has no filter for the
    /// architecture.
    pub filter: Option<&'a super::seccomp::Program>,
}

/// Confine the calling process, which must be single-threaded (a fresh
/// fork). Every step must succeed, or the error says which one failed and
/// the caller must not go on to parse anything.
///
/// When the caller is root or holds any capability, the process becomes
/// `uid`/`gid` without supplementary groups and with an empty bounding
/// set. A caller that is already an ordinary user with no capability (such
/// as `cairn check` run by a developer) keeps its uid: it has nothing to
/// drop, and it could not change it anyway. Everything else applies to
/// both.
pub fn confine(c: &Confinement) -> Result<()> {
    // A crash handler inherited from the tree would exec a new tree. No
    // other handler is installed where we fork (the tree and `cairn cmd`
    // read signals from a signalfd), and nothing may stay blocked.
    crash::reset_fatal();
    signal::unblock_all_ignore_sigpipe()?;
    // The cwd could be a directory nobody could reach by its path.
    // SAFETY: chdir(2) with a constant C string.
    super::check(unsafe { libc::chdir(c"/".as_ptr()) }, "chdir", "/")?;
    let vsize = mapped_bytes()?;
    close_all_but(c.keep_fds)?;
    // Lowering limits needs no privilege. NOFILE 0 means no new fd of any
    // kind (no file, socket, pipe or dup); NPROC 0 means no fork, since
    // uid `uid` can hardly have zero processes; FSIZE 0 means no file grows.
    lower_limit(
        super::rlimit::RLIMIT_AS,
        vsize.saturating_add(c.extra_address_space),
        "RLIMIT_AS",
    )?;
    lower_limit(super::rlimit::RLIMIT_CPU, c.cpu_seconds, "RLIMIT_CPU")?;
    for (res, what) in [
        (super::rlimit::RLIMIT_CORE, "RLIMIT_CORE"),
        (super::rlimit::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        (super::rlimit::RLIMIT_NPROC, "RLIMIT_NPROC"),
        (super::rlimit::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        (super::rlimit::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
    ] {
        super::rlimit::set_rlimit(res, 0, what)?;
    }
    let privileged = privileged()?;
    if privileged {
        // While we still have CAP_SETPCAP; then the ids, while we still
        // have CAP_SETUID and CAP_SETGID.
        caps::drop_whole_bounding_set()?;
        process::set_ids(c.uid, c.gid, &[])?;
    }
    // setresuid(2) away from 0 clears the permitted, effective and ambient
    // sets but keeps the inheritable one (and securebits could keep more).
    caps::clear_all_sets()?;
    if privileged {
        expect_ids(c.uid, c.gid)?;
    }
    process::set_no_new_privs()?;
    // The uid change reset both of these (prctl(2)), so they come after it.
    process::set_dumpable(false)?;
    process::set_pdeathsig(libc::SIGKILL)?;
    // Our parent may have died before the line above: then no signal comes.
    if getppid() != c.parent {
        return Err(Error::new(
            "confine",
            "parent",
            std::io::Error::other("the parent process is gone"),
        ));
    }
    // Last, the system call filter: no exec, no fork, no socket, no file
    // changes, on top of the default profile (`seccomp::parser`).
    if let Some(f) = c.filter {
        super::seccomp::install(f)?;
    }
    Ok(())
}

/// Whether the process has anything to drop: a root id or a capability.
fn privileged() -> Result<bool> {
    let (r, e, s) = resuid()?;
    Ok(r == 0 || e == 0 || s == 0 || !caps::held()?.is_empty())
}

/// getresuid(2).
fn resuid() -> Result<(u32, u32, u32)> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid out-pointers.
    super::check(
        unsafe { libc::getresuid(&mut r, &mut e, &mut s) },
        "getresuid",
        "",
    )?;
    Ok((r, e, s))
}

/// getresgid(2).
fn resgid() -> Result<(u32, u32, u32)> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid out-pointers.
    super::check(
        unsafe { libc::getresgid(&mut r, &mut e, &mut s) },
        "getresgid",
        "",
    )?;
    Ok((r, e, s))
}

/// Check that every uid and gid is the wanted one and there are no
/// supplementary groups (read back, not assumed).
fn expect_ids(uid: u32, gid: u32) -> Result<()> {
    // SAFETY: size 0 asks only for the count; the pointer is not used.
    let groups = super::check(
        unsafe { libc::getgroups(0, std::ptr::null_mut()) },
        "getgroups",
        "",
    )?;
    if resuid()? != (uid, uid, uid) || resgid()? != (gid, gid, gid) || groups != 0 {
        return Err(Error::new(
            "confine",
            format!("uid {uid} gid {gid}"),
            std::io::Error::other("the ids did not change as asked"),
        ));
    }
    Ok(())
}

fn getppid() -> i32 {
    // SAFETY: always succeeds.
    unsafe { libc::getppid() }
}

/// Bytes of address space mapped now (`/proc/self/statm`, first field),
/// read into a stack buffer: right after fork(2) every heap page we touch
/// costs a copy-on-write fault.
fn mapped_bytes() -> Result<u64> {
    const PATH: &std::ffi::CStr = c"/proc/self/statm";
    let bad = || {
        Error::new(
            "read",
            "/proc/self/statm",
            std::io::ErrorKind::InvalidData.into(),
        )
    };
    // SAFETY: open(2) of a constant C string.
    let fd = super::check(
        unsafe { libc::open(PATH.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) },
        "open",
        "/proc/self/statm",
    )?;
    let mut buf = [0u8; 128];
    // SAFETY: read(2) into a live stack buffer of the given length, then
    // close(2) of the fd opened above, which nothing else owns.
    let n = unsafe {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let n = usize::try_from(n).map_err(|_| Error::last("read", "/proc/self/statm"))?;
    let pages = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(bad)?;
    // SAFETY: sysconf with a constant name.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages.saturating_mul(u64::try_from(page).unwrap_or(4096)))
}

/// Close every fd that is not in `keep`.
fn close_all_but(keep: &[RawFd]) -> Result<()> {
    let mut keep: Vec<u32> = keep.iter().filter_map(|&f| u32::try_from(f).ok()).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = 0u32;
    for k in keep {
        if k > from {
            super::fd::close_range(from, k - 1)?;
        }
        from = k + 1;
    }
    super::fd::close_range(from, u32::MAX)
}

/// Set soft and hard `res` to `value`, or leave them lower if they are
/// already lower (raising would need privilege and is never what we want).
fn lower_limit(res: super::rlimit::Resource, value: u64, what: &'static str) -> Result<()> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if !super::rlimit::get_rlimit(res, &mut cur) {
        return Err(Error::last("getrlimit", what));
    }
    super::rlimit::set_rlimit(res, value.min(cur.rlim_max), what)
}

#[cfg(test)]
#[path = "confine_tests.rs"]
mod tests;
