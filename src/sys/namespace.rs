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

/// The namespaces a command joined into a running container takes from
/// the container's pid 1 (`join_from_pidfd`): mount, UTS, IPC, network
/// and cgroup. The pid namespace is entered by `fork_in_pidns`, the user
/// namespace from the workload (`enter_userns`).
pub const JOINED: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

/// setns(2) with a pidfd (Linux 5.8): enter the `flags` namespaces of the
/// process behind `pidfd`, all at once (the kernel changes none of them if
/// one fails). Entering a mount namespace sets our root and working
/// directory to that namespace's root. The caller must be
/// single-threaded.
pub fn join_from_pidfd(pidfd: BorrowedFd<'_>, flags: libc::c_int) -> Result<()> {
    // SAFETY: setns on an integer fd with constant flags.
    check(
        unsafe { libc::setns(pidfd.as_raw_fd(), flags) },
        "setns",
        "the namespaces of the container's pid 1",
    )?;
    Ok(())
}

/// Fork a child that is in the pid namespace of the process behind
/// `target` (a pidfd), while we stay where we are: setns(2) of
/// `CLONE_NEWPID` only changes the namespace our next children are born
/// in, so we enter it, fork, and go back to `home` (an fd of our own
/// /proc/self/ns/pid). Returns the child's pid as we see it, `None` in the
/// child. Not going back would put every later child of ours (a knot, a
/// parser) in that container: that aborts the process, never goes on.
/// The caller must be single-threaded.
pub fn fork_in_pidns(target: BorrowedFd<'_>, home: BorrowedFd<'_>) -> Result<Option<i32>> {
    // SAFETY: setns on an integer fd with a constant flag.
    check(
        unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWPID) },
        "setns",
        "the pid namespace of the container's pid 1",
    )?;
    let forked = super::process::fork();
    if let Ok(None) = forked {
        return forked;
    }
    // SAFETY: as above; `home` is our own active pid namespace, which
    // setns(2) always lets us return to.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWPID) } == -1 {
        std::process::abort();
    }
    forked
}

/// setns(2) into the user namespace `fd` refers to (an nsfs file). We get
/// every capability in it, and none in the namespace we left. The caller
/// must be single-threaded.
pub fn enter_userns(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: setns on an integer fd with a constant flag; the kernel
    // checks that it is a user namespace.
    check(
        unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWUSER) },
        "setns",
        "the workload's user namespace",
    )?;
    Ok(())
}

/// ioctl_ns(2) requests (`linux/nsfs.h`): `_IO(0xb7, N)`.
const NS_GET_PARENT: libc::c_ulong = 0xb702;
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// The parent of the user namespace `fd` refers to (ioctl_ns(2)
/// `NS_GET_PARENT`), as a new fd.
pub fn userns_parent(fd: BorrowedFd<'_>) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: an ioctl without argument on a live fd; it returns a new fd.
    let p = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_PARENT as _) };
    let p = check(p, "ioctl NS_GET_PARENT", "user namespace")?;
    // SAFETY: a new fd nobody else owns (the kernel sets O_CLOEXEC).
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(p) })
}

/// The uid (in our user namespace) of whoever created the user namespace
/// `fd` refers to (ioctl_ns(2) `NS_GET_OWNER_UID`).
pub fn userns_owner(fd: BorrowedFd<'_>) -> Result<u32> {
    let mut uid: libc::uid_t = libc::uid_t::MAX;
    // SAFETY: the ioctl writes one uid_t to the pointer we pass.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_OWNER_UID as _, &mut uid) };
    check(r, "ioctl NS_GET_OWNER_UID", "user namespace")?;
    Ok(uid)
}

/// An fd of one of our own namespaces (`/proc/self/ns/KIND`).
pub fn own(kind: &str) -> Result<std::os::fd::OwnedFd> {
    let path = format!("/proc/self/ns/{kind}");
    std::fs::File::open(&path)
        .map(std::os::fd::OwnedFd::from)
        .map_err(|e| super::Error::new("open", path, e))
}
