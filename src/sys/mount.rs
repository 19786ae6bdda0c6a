//! Mounts, made from file descriptors with the new mount API
//! (open_tree(2), move_mount(2), fsopen(2), fsconfig(2), fsmount(2),
//! mount_setattr(2)), so no mount ever lands on a string path that an image
//! or a workload could turn into a symlink. Mount flags are always stated:
//! each call names ro/rw, nosuid, nodev, noexec, and whether it recurses.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Result, check, cstr};

// Every <linux/mount.h> flag, `fsconfig` command, `MOUNT_ATTR_*` bit and
// `struct mount_attr` used here comes from the `libc` crate; it has no
// functions for these system calls, so they go through `libc::syscall`.

/// Mount attributes (`MOUNT_ATTR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs(u64);

impl Attrs {
    pub const RDONLY: Attrs = Attrs(libc::MOUNT_ATTR_RDONLY);
    pub const NOSUID: Attrs = Attrs(libc::MOUNT_ATTR_NOSUID);
    pub const NODEV: Attrs = Attrs(libc::MOUNT_ATTR_NODEV);
    pub const NOEXEC: Attrs = Attrs(libc::MOUNT_ATTR_NOEXEC);
    pub const NONE: Attrs = Attrs(0);
    /// `nosuid,nodev,noexec`: every volume and tmpfs.
    pub const SAFE: Attrs = Attrs::NOSUID.or(Attrs::NODEV).or(Attrs::NOEXEC);

    pub const fn or(self, o: Attrs) -> Attrs {
        Attrs(self.0 | o.0)
    }
    pub fn bits(self) -> u64 {
        self.0
    }
}

/// Whether an attribute change applies to submounts too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recursive {
    Yes,
    No,
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: callers pass a fresh fd just returned by the kernel.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// open_tree(2) with `OPEN_TREE_CLONE`: a detached copy of the mount at
/// `dir` (an O_PATH fd), recursive or not. Nothing is attached yet.
pub fn clone_tree(dir: BorrowedFd<'_>, what: &str, recursive: Recursive) -> Result<OwnedFd> {
    let empty = cstr("")?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32;
    if recursive == Recursive::Yes {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: valid fd and C string; flags are constants.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), empty.as_ptr(), flags) };
    Ok(owned(check(fd, "open_tree", what)?))
}

/// mount_setattr(2) on the mount `mnt` (a mount fd or an O_PATH fd of a
/// mount root): set `set`, clear `clear`, make it private.
pub fn set_attrs(
    mnt: BorrowedFd<'_>,
    what: &str,
    set: Attrs,
    clear: Attrs,
    recursive: Recursive,
) -> Result<()> {
    let empty = cstr("")?;
    let attr = libc::mount_attr {
        attr_set: set.bits(),
        attr_clr: clear.bits(),
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive == Recursive::Yes {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: valid fd, C string and a mount_attr of the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    check(ret, "mount_setattr", what)?;
    Ok(())
}

/// move_mount(2): attach the detached mount `mnt` on the directory (or
/// file) `target`, both given as fds.
pub fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>, what: &str) -> Result<()> {
    let empty = cstr("")?;
    // SAFETY: valid fds and C strings; flags are constants.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret, "move_mount", what)?;
    Ok(())
}

/// A new filesystem instance (fsopen(2) + fsconfig(2) + fsmount(2)),
/// returned detached, with `attrs` on its mount.
pub fn new_fs(fstype: &str, options: &[(&str, &str)], attrs: Attrs) -> Result<OwnedFd> {
    let t = cstr(fstype)?;
    // SAFETY: valid C string; flags constant.
    let fsfd = unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), libc::FSOPEN_CLOEXEC) };
    let fsfd = owned(check(fsfd, "fsopen", fstype)?);
    for (k, v) in options {
        let (kc, vc) = (cstr(k)?, cstr(v)?);
        // An empty value is a flag (`noswap`), set as one: the kernel
        // refuses a flag given as a string.
        let (cmd, value) = if v.is_empty() {
            (libc::FSCONFIG_SET_FLAG, std::ptr::null())
        } else {
            (libc::FSCONFIG_SET_STRING, vc.as_ptr())
        };
        // SAFETY: valid fd and C strings (or null for a flag's value).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                cmd,
                kc.as_ptr(),
                value,
                0,
            )
        };
        check(ret, "fsconfig", format!("{fstype} {k}={v}"))?;
    }
    // SAFETY: valid fd; null key/value as the CMD_CREATE form requires.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    check(ret, "fsconfig create", fstype)?;
    // SAFETY: valid fd; attrs are MOUNT_ATTR_* bits.
    let mfd = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fsfd.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs.bits(),
        )
    };
    Ok(owned(check(mfd, "fsmount", fstype)?))
}

/// mount(2) used only for propagation: make every mount in this (private)
/// mount namespace `MS_PRIVATE`, so nothing we do propagates to the host.
pub fn make_all_private() -> Result<()> {
    let root = cstr("/")?;
    // SAFETY: valid C string; null source/fstype/data are allowed for a
    // propagation change.
    let ret = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    check(ret, "mount --make-rprivate", "/")?;
    Ok(())
}

/// Switch the root to the directory `new_root` (a mount): fchdir into it,
/// pivot_root(".", ".") stacks the old root on top, and a lazy unmount
/// detaches it (pivot_root(2), "pivot_root(".", ".")" in NOTES).
pub fn pivot_into(new_root: BorrowedFd<'_>) -> Result<()> {
    let dot = cstr(".")?;
    // SAFETY: valid fd.
    check(
        unsafe { libc::fchdir(new_root.as_raw_fd()) },
        "fchdir",
        "new root",
    )?;
    // SAFETY: valid C strings.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    check(ret, "pivot_root", "new root")?;
    // SAFETY: valid C string.
    check(
        unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) },
        "umount2",
        "old root",
    )?;
    let slash = cstr("/")?;
    // SAFETY: valid C string.
    check(unsafe { libc::chdir(slash.as_ptr()) }, "chdir", "/")?;
    Ok(())
}

/// Character devices (name, mode, major, minor) and then directories
/// (name, mode) in `dir` (a tmpfs we just made), each with exactly the
/// mode given (the sticky bit of /dev/shm too): made under a umask of 0,
/// which is put back before returning.
pub fn make_nodes(
    dir: BorrowedFd<'_>,
    devices: &[(&str, u32, u32, u32)],
    dirs: &[(&str, u32)],
) -> Result<()> {
    let old = crate::sys::process::set_umask(0);
    let made = (|| {
        for (name, mode, major, minor) in devices {
            let c = cstr(name)?;
            let dev = libc::makedev(*major, *minor);
            // SAFETY: valid fd and C string.
            let ret =
                unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), libc::S_IFCHR | mode, dev) };
            check(ret, "mknod", name)?;
        }
        for (name, mode) in dirs {
            let c = cstr(name)?;
            // SAFETY: valid fd and C string.
            check(
                unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), *mode) },
                "mkdir",
                name,
            )?;
        }
        Ok(())
    })();
    crate::sys::process::set_umask(old);
    made
}

/// symlinkat(2).
pub fn symlink_at(target: &str, dir: BorrowedFd<'_>, name: &str) -> Result<()> {
    let (t, n) = (cstr(target)?, cstr(name)?);
    // SAFETY: valid C strings and fd.
    check(
        unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) },
        "symlink",
        name,
    )?;
    Ok(())
}
