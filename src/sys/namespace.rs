//! Namespaces: cloning a child into new ones, unsharing the user and
//! cgroup namespaces, entering a network namespace.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use super::{Result, check};

/// Namespaces to create with `clone_into`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub net: bool,
}

/// clone(2) with `CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC`
/// (and `CLONE_NEWNET` if asked) and no new stack: fork semantics, the child
/// continues here as pid 1 of the new pid namespace. Returns the child's pid
/// in the parent, `None` in the child. The caller must be single-threaded.
pub fn clone_into(ns: Namespaces) -> Result<Option<i32>> {
    let mut flags =
        libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if ns.net {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: clone without CLONE_VM and with a null stack behaves like
    // fork(2): the child gets a copy of our memory and continues on its copy
    // of this stack. Every argument but the flags is 0, so their order,
    // which differs between architectures, does not matter.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    let pid = check(ret, "clone", "new namespaces")?;
    Ok(if pid == 0 { None } else { Some(pid as i32) })
}

/// unshare(2) of a user namespace (the workload enters it right before
/// dropping privileges; its maps are written by the parent).
pub fn unshare_user() -> Result<()> {
    // SAFETY: plain syscall with a constant flag.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWUSER) },
        "unshare",
        "user namespace",
    )?;
    Ok(())
}

/// unshare(2) of a cgroup namespace: its root, in every hierarchy (v1
/// and v2 alike), is the cgroup the caller is in now, and that is all a
/// process in it sees of the cgroup tree (cgroup_namespaces(7)).
pub fn unshare_cgroup() -> Result<()> {
    // SAFETY: plain syscall with a constant flag.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
        "unshare",
        "cgroup namespace",
    )?;
    Ok(())
}

/// setns(2) into the network namespace `fd` refers to (an nsfs file such
/// as `/proc/self/ns/net`). The caller must be single-threaded.
pub fn enter_netns(fd: RawFd) -> Result<()> {
    // SAFETY: setns on an integer fd; the kernel checks that it is a
    // network namespace (nstype CLONE_NEWNET).
    check(
        unsafe { libc::setns(fd, libc::CLONE_NEWNET) },
        "setns (network namespace)",
        fd,
    )?;
    Ok(())
}

/// Run `f` in the network namespace `target`, then go back to `home` (our
/// own, opened before). Sockets `f` makes stay in `target`. Not going
/// back would leave the caller in a container's network: that aborts the
/// process (the tree's crash handler re-executes it), never goes on.
/// The caller must be single-threaded.
pub fn in_netns<T>(
    target: BorrowedFd<'_>,
    home: BorrowedFd<'_>,
    f: impl FnOnce() -> T,
) -> Result<T> {
    enter_netns(target.as_raw_fd())?;
    let out = f();
    if enter_netns(home.as_raw_fd()).is_err() {
        std::process::abort();
    }
    Ok(out)
}
