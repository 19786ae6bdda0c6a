//! The kernel's file systems in the container: /proc with the host's
//! kernel internals masked or read-only, and (`sysfs: true`) a read-only
//! /sys with its firmware and power-capping directories masked. Masks use
//! inodes cairn creates (its own /dev/null, fresh tmpfs), never anything
//! from the image.

use crate::sys::fs::Resolve;
use crate::sys::mount::{Attrs, Recursive};

use super::seam::Kernel;
use super::steps::{Result, bound, ctx, image_dir};

/// Files of /proc that show host kernel internals: hidden behind /dev/null.
const MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "key-users",
    "timer_list",
    "timer_stats",
    "latency_stats",
    "sched_debug",
    "kallsyms",
    "config.gz",
    "kpageflags",
    "kpagecount",
    "kpagecgroup",
];
/// Directories of /proc hidden behind an empty read-only tmpfs.
const MASKED_DIRS: &[&str] = &["acpi", "scsi", "asound"];
/// Parts of /proc that stay visible but read-only.
const READONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];

/// `/proc` of the container's pid namespace, with host surfaces masked or
/// read-only. Masks use inodes we create (our /dev/null, a fresh tmpfs),
/// never anything from the image.
pub(super) fn proc<K: Kernel>(k: &K, root: &K::Fd) -> Result<()> {
    let target = image_dir(k, root, "proc", "cairn mounts /proc there")?;
    let fs = ctx(k.new_fs("proc", &[], Attrs::SAFE), || "proc".into())?;
    ctx(k.attach(&fs, &target, "/proc"), || "mount /proc".into())?;
    let proc_root = image_dir(k, root, "proc", "just mounted")?;
    // What this kernel does not have needs no mask; any other error stops
    // the start (fail closed: a mask we could not place is a hole).
    let open = |name: &str| -> Result<Option<K::Fd>> {
        let r = k.openat2(
            &proc_root,
            name,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            Resolve::BeneathNoSymlinks,
        );
        ctx(missing_is_none(r), || format!("/proc/{name}"))
    };
    for name in READONLY {
        let Some(t) = open(name)? else { continue };
        let b = bound(
            k,
            &t,
            name,
            Attrs::RDONLY.or(Attrs::SAFE),
            Recursive::Yes,
            || format!("/proc/{name} read-only"),
        )?;
        ctx(k.attach(&b, &t, name), || format!("mount /proc/{name}"))?;
    }
    let devnull = {
        let dev = image_dir(k, root, "dev", "/dev/null for masks")?;
        ctx(
            k.openat2(
                &dev,
                "null",
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                Resolve::BeneathNoSymlinks,
            ),
            || "/dev/null".into(),
        )?
    };
    // The first mask is our /dev/null bound read-only; every further one
    // is a copy of that mount once it is attached (its flags come along:
    // one system call fewer per mask), or, should copying it fail, bound
    // the same way.
    let mut first: Option<K::Fd> = None;
    for name in MASKED_FILES {
        let Some(t) = open(name)? else { continue };
        let what = || format!("mask /proc/{name}");
        let copied = first
            .as_ref()
            .and_then(|f| k.clone_tree(f, "/dev/null", Recursive::No).ok());
        let b = match copied {
            Some(b) => b,
            // Not nodev: a masked file reads as empty, like /dev/null.
            None => bound(
                k,
                &devnull,
                "/dev/null",
                Attrs::RDONLY.or(Attrs::NOSUID).or(Attrs::NOEXEC),
                Recursive::No,
                what,
            )?,
        };
        ctx(k.attach(&b, &t, name), what)?;
        first.get_or_insert(b);
    }
    for name in MASKED_DIRS {
        let Some(t) = open(name)? else { continue };
        hide_dir(k, &t, &format!("/proc/{name}"))?;
    }
    Ok(())
}

/// Mount an empty, read-only tmpfs over the directory `t`.
fn hide_dir<K: Kernel>(k: &K, t: &K::Fd, shown: &str) -> Result<()> {
    let empty = ctx(
        k.new_fs(
            "tmpfs",
            &[("size", "4096"), ("mode", "0555"), ("nr_inodes", "1")],
            Attrs::RDONLY.or(Attrs::SAFE),
        ),
        || format!("mask {shown}"),
    )?;
    ctx(k.attach(&empty, t, shown), || format!("mask {shown}"))
}

/// Directories of /sys hidden behind an empty read-only tmpfs (as Docker
/// does): firmware tables (ACPI, EFI variables, DMI serial numbers), and
/// the energy counters of powercap, a side channel on what other
/// processes compute (CVE-2020-8694).
const SYS_MASKED_DIRS: &[&str] = &["firmware", "devices/virtual/powercap"];

/// `sysfs: true`: a sysfs of the knot's network namespace (the
/// container's own with a bridged network, else the host's), read-only,
/// nosuid, nodev, noexec. Only its own mount: what the host mounts below
/// /sys (cgroups, debugfs, tracefs, securityfs, ...) is not in it.
pub(super) fn sys<K: Kernel>(k: &K, root: &K::Fd) -> Result<()> {
    let target = image_dir(k, root, "sys", "cairn mounts /sys there (sysfs: true)")?;
    // Read-only through the mount, never the superblock: sysfs shares one
    // superblock per network namespace, the host's /sys included.
    let fs = ctx(
        k.new_fs("sysfs", &[], Attrs::RDONLY.or(Attrs::SAFE)),
        || "sysfs".into(),
    )?;
    ctx(k.attach(&fs, &target, "/sys"), || "mount /sys".into())?;
    let sys_root = image_dir(k, root, "sys", "just mounted")?;
    for name in SYS_MASKED_DIRS {
        let r = k.openat2(
            &sys_root,
            name,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY,
            0,
            Resolve::BeneathNoSymlinks,
        );
        let t = ctx(missing_is_none(r), || format!("/sys/{name}"))?;
        if let Some(t) = t {
            hide_dir(k, &t, &format!("/sys/{name}"))?;
        }
    }
    Ok(())
}

/// `Ok(None)` for "does not exist" (ENOENT), the error for anything else.
fn missing_is_none<T>(r: crate::sys::Result<T>) -> crate::sys::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "kernfs_tests.rs"]
mod tests;
