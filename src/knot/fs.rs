//! Build the container's root file system, inside the knot's own mount
//! namespace, then pivot into it. Every mount target is an fd found by
//! `openat2` under the new root without following symlinks; every mount
//! source is an fd too. Mount flags are stated at each call. Every system
//! call goes through the `seam::Kernel` (the kernel itself, `Real`, or a
//! recording fake in the unit tests).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::spec::{EtcFile, InstanceSpec, MountKind};
use crate::sys::fs::{self as sfs, Resolve};
use crate::sys::hostfs;
use crate::sys::mount::{Attrs, Recursive};

use super::etc;
use super::seam::{Kernel, Real};
pub use super::steps::{Result, SetupError};
use super::steps::{bound, ctx, image_dir};

/// Build everything and pivot_root into it. `inst` is the instance dir
/// (host), `state` its `state/` subdir (what `!Statedir` binds),
/// `notify` the tree's notify socket file (`protocol::Context`).
pub fn build(
    spec: &InstanceSpec,
    inst: &OwnedFd,
    state: &OwnedFd,
    notify: Option<std::os::fd::RawFd>,
    secret_files: &[(String, zeroize::Zeroizing<Vec<u8>>)],
) -> Result<()> {
    let _ = inst;
    let notify = notify.map(notify_here).transpose()?;
    build_with_secrets(&Real, spec, state, notify.as_ref(), secret_files)
}

/// The tree's notify socket file, opened again in our own mount
/// namespace: `open_tree` clones only mounts of the caller's namespace,
/// and the fd we were given is of the tree's. Opened by the path the fd
/// shows (root's dirs alone lead there), and believed only when it is the
/// same file.
fn notify_here(fd: std::os::fd::RawFd) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = crate::spec::NOTIFY_SOCKET_PATH;
    let err = |m: String, errno: Option<i32>| SetupError {
        message: format!("notify socket: {m}"),
        errno,
        path: Some(shown.to_string()),
    };
    let io = |e: std::io::Error| err(e.to_string(), e.raw_os_error());
    let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(io)?;
    let here = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| err(format!("{}: {e}", path.display()), e.raw_os_error()))?;
    if !sfs::same_inode(here.as_fd(), fd) {
        return Err(err(
            format!("{} is not the socket the tree made", path.display()),
            None,
        ));
    }
    crate::sys::fd::close_fd(fd);
    Ok(OwnedFd::from(here))
}

/// `build` through the kernel `k`, without secret files.
#[cfg(test)]
pub(super) fn build_with<K: Kernel>(
    k: &K,
    spec: &InstanceSpec,
    state: &K::Fd,
    notify: Option<&K::Fd>,
) -> Result<()> {
    build_with_secrets(k, spec, state, notify, &[])
}

/// `build` through the kernel `k`.
pub(super) fn build_with_secrets<K: Kernel>(
    k: &K,
    spec: &InstanceSpec,
    state: &K::Fd,
    notify: Option<&K::Fd>,
    secret_files: &[(String, zeroize::Zeroizing<Vec<u8>>)],
) -> Result<()> {
    k.make_all_private()?;

    // The image, read-only, nosuid, nodev (recursively), on the mount dir.
    let img = k.open_image(&spec.image_dir, &spec.image)?;
    let tree = bound(
        k,
        &img,
        &spec.image,
        Attrs::RDONLY.or(Attrs::NOSUID).or(Attrs::NODEV),
        Recursive::Yes,
        || "image".into(),
    )?;
    let mnt_dir = ctx(k.open_dir(&spec.host.mount_dir), || "mount-dir".into())?;
    ctx(k.attach(&tree, &mnt_dir, "image"), || "mount image".into())?;
    drop(mnt_dir);
    // Re-open: the path now leads to the image mount.
    let root = ctx(k.open_dir(&spec.host.mount_dir), || "new root".into())?;

    dev(k, spec, &root, notify.is_some())?;
    if let Some(sock) = notify {
        notify_socket(k, &root, sock)?;
    }
    super::kernfs::proc(k, &root)?;
    if spec.isolation.sysfs {
        super::kernfs::sys(k, &root)?;
    }
    for m in &spec.mounts {
        volume(k, &root, state, m)?;
    }
    // After the volumes: its dir may be in one.
    super::secret_files::mount(k, &root, spec, secret_files)?;
    etc_file(k, &root, state, "resolv.conf", &spec.resolv_conf)?;
    etc_file(k, &root, state, "hosts", &spec.hosts_file)?;

    ctx(k.pivot_into(&root), || "pivot_root".into())?;
    Ok(())
}

/// The sandbox stdio log the workload writes to, opened on the host
/// (before the pivot, and before the workload's child is forked): below
/// the dir the tree checked when the dir at its path is still that one
/// (only root could have changed what the tree checked), else checked
/// from `/` down.
pub fn stdio_log(spec: &InstanceSpec, kctx: &super::Context) -> Result<Option<StdioLog>> {
    let crate::spec::Stdio::HostFile(p) = &spec.stdio else {
        return Ok(None);
    };
    let (Some(parent), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else {
        return Ok(Some(StdioLog::Plain(open_log(p)?)));
    };
    let dir = match kctx.stdio_dir_fd {
        Some(checked)
            if let Ok(here) = sfs::open_dir_nofollow(parent)
                && sfs::same_inode(here.as_fd(), checked) =>
        {
            hostfs::HostDir::inherited(here, parent.to_path_buf())
        }
        _ => hostfs::HostDir::open(parent, true)
            .map_err(|e| log_error(p, e))?
            .ok_or_else(|| SetupError {
                message: format!("stdio log: {}: no such dir", parent.display()),
                errno: Some(libc::ENOENT),
                path: Some(p.display().to_string()),
            })?,
    };
    let file = dir
        .open_file(name, hostfs::LOG_MODE, true)
        .map(OwnedFd::from)
        .map_err(|e| log_error(p, e))?;
    if !spec.stdio_log.pumped() {
        return Ok(Some(StdioLog::Plain(file)));
    }
    // For rotations: the dir, readable (flock), and a pipe the workload
    // writes into (its init reads it).
    let readable = crate::sys::log_file::readable_dir(dir.fd()).map_err(|e| SetupError {
        message: format!("stdio log: {e}"),
        errno: e.errno(),
        path: Some(parent.display().to_string()),
    })?;
    let (read, write) = ctx(crate::sys::fd::pipe_nonblocking_read(), || {
        "stdio log pipe".into()
    })?;
    Ok(Some(StdioLog::Pumped {
        write,
        read,
        log: crate::sys::log_file::HostLog::new(
            file,
            hostfs::HostDir::inherited(readable, parent.to_path_buf()),
            name,
        ),
    }))
}

/// Where the workload's stdout and stderr go on the host.
pub enum StdioLog {
    /// The log file itself (`stdio-log-max-size: null`, no prefixes).
    Plain(OwnedFd),
    /// A pipe (`write`) that pid 1 of the container pumps (`read`) into
    /// the log (`log_pump`).
    Pumped {
        write: OwnedFd,
        read: OwnedFd,
        log: crate::sys::log_file::HostLog,
    },
}

/// A stdio log that could not be opened: its path and errno kept.
fn log_error(p: &Path, e: hostfs::Error) -> SetupError {
    SetupError {
        message: format!("stdio log: {e}"),
        errno: e.errno(),
        path: Some(p.display().to_string()),
    }
}

/// The sandbox's stdio log on the host, opened for appending by root:
/// its dir checked and created as cairn's own, the file never reached
/// through a symlink, created root:root 0640 (sys::hostfs).
fn open_log(p: &Path) -> Result<OwnedFd> {
    hostfs::open_log(p)
        .map(OwnedFd::from)
        .map_err(|e| log_error(p, e))
}

/// The most pseudo-terminals one container may hold open (devpts `max=`).
/// The kernel has `kernel.pty.max` (4096 by default) for all of them, of
/// which `kernel.pty.reserve` (1024) only the host's own /dev/pts may use:
/// without a limit, one container could take every other container's
/// share. A service rarely needs more than a handful (a shell, an ssh
/// session, a tmux with a few windows).
const DEVPTS_MAX: &str = "64";

/// A minimal `/dev` on a fresh tmpfs (or the master's devfs-dir, bound
/// read-only), made read-only once populated; devpts and shm below it.
/// With `notify`, an empty file `cairn-notify` in it (before it is made
/// read-only), onto which `notify_socket` binds the tree's socket.
fn dev<K: Kernel>(k: &K, spec: &InstanceSpec, root: &K::Fd, notify: bool) -> Result<()> {
    let target = image_dir(k, root, "dev", "cairn mounts /dev there")?;
    if let Some(devfs) = &spec.host.devfs_dir {
        let src = ctx(k.open_dir(devfs), || {
            format!("devfs-dir {}", devfs.display())
        })?;
        let b = bound(
            k,
            &src,
            "devfs-dir",
            Attrs::RDONLY.or(Attrs::NOSUID).or(Attrs::NOEXEC),
            Recursive::No,
            || "devfs-dir as /dev".into(),
        )?;
        return ctx(k.attach(&b, &target, "/dev"), || "mount /dev".into());
    }
    let fs = ctx(
        k.new_fs(
            "tmpfs",
            &[("mode", "0755"), ("size", "65536"), ("nr_inodes", "64")],
            Attrs::NOSUID.or(Attrs::NOEXEC),
        ),
        || "/dev tmpfs".into(),
    )?;
    let d = &fs;
    let e = |r| ctx(r, || "/dev".into());
    e(k.make_nodes(
        d,
        &[
            ("null", 0o666, 1, 3),
            ("zero", 0o666, 1, 5),
            ("full", 0o666, 1, 7),
            ("random", 0o666, 1, 8),
            ("urandom", 0o666, 1, 9),
            ("tty", 0o666, 5, 0),
        ],
        &[("pts", 0o755), ("shm", 0o1777)],
    ))?;
    e(k.symlink_at("pts/ptmx", d, "ptmx"))?;
    e(k.symlink_at("/proc/self/fd", d, "fd"))?;
    e(k.symlink_at("/proc/self/fd/0", d, "stdin"))?;
    e(k.symlink_at("/proc/self/fd/1", d, "stdout"))?;
    e(k.symlink_at("/proc/self/fd/2", d, "stderr"))?;
    if notify {
        e(k.replace_file(d, NOTIFY_FILE, b"", 0o444))?;
    }
    ctx(k.attach(d, &target, "/dev"), || "mount /dev".into())?;
    let devroot = image_dir(k, root, "dev", "just mounted")?;
    let pts = ctx(k.open_dir_beneath(&devroot, "pts"), || "/dev/pts".into())?;
    // Every devpts mount is a new instance (devpts(4) since Linux 4.7).
    let ptsfs = ctx(
        k.new_fs(
            "devpts",
            &[
                ("ptmxmode", "0666"),
                ("mode", "0620"),
                ("gid", "5"),
                ("max", DEVPTS_MAX),
            ],
            Attrs::NOSUID.or(Attrs::NOEXEC),
        ),
        || "devpts".into(),
    )?;
    ctx(k.attach(&ptsfs, &pts, "/dev/pts"), || {
        "mount /dev/pts".into()
    })?;
    let shm = ctx(k.open_dir_beneath(&devroot, "shm"), || "/dev/shm".into())?;
    let shmfs = ctx(
        k.new_fs(
            "tmpfs",
            &[("mode", "1777"), ("size", "67108864")],
            Attrs::SAFE,
        ),
        || "/dev/shm tmpfs".into(),
    )?;
    ctx(k.attach(&shmfs, &shm, "/dev/shm"), || {
        "mount /dev/shm".into()
    })?;
    // Finally /dev itself read-only (not its submounts).
    ctx(
        k.set_attrs(
            &devroot,
            "/dev",
            Attrs::RDONLY.or(Attrs::NOSUID).or(Attrs::NOEXEC),
            Attrs::NONE,
            Recursive::No,
        ),
        || "/dev read-only".into(),
    )
}

/// The name of the notify socket's file in the container's `/dev`
/// (`spec::NOTIFY_SOCKET_PATH`).
const NOTIFY_FILE: &str = "cairn-notify";

/// The regular file at `path` under `root`, looked up without following
/// any symlink (`O_PATH`): `None` when something else is there (or its
/// kind cannot be told), the lookup's error when nothing could be found.
fn regular_file<K: Kernel>(k: &K, root: &K::Fd, path: &str) -> crate::sys::Result<Option<K::Fd>> {
    let t = k.openat2(
        root,
        path,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        Resolve::BeneathNoSymlinks,
    )?;
    Ok(k.is_regular(&t).unwrap_or(false).then_some(t))
}

/// `ready: !Notify`: the tree's socket file `sock` (an `O_PATH` fd),
/// bound read-only onto `/dev/cairn-notify`. A socket on a read-only mount
/// still takes datagrams (connect and sendto check the file's mode, not
/// the mount's); the workload can neither remove nor replace it. With a
/// `devfs-dir`, that dir must hold a regular file of that name.
fn notify_socket<K: Kernel>(k: &K, root: &K::Fd, sock: &K::Fd) -> Result<()> {
    let path = format!("dev/{NOTIFY_FILE}");
    let shown = crate::spec::NOTIFY_SOCKET_PATH;
    let target = match regular_file(k, root, &path) {
        Ok(Some(t)) => t,
        Err(e) => {
            return Err(SetupError {
                message: format!(
                    "{shown}: {e} (ready: !Notify binds its socket there; with devfs-dir, that dir must hold an empty file {NOTIFY_FILE})"
                ),
                errno: e.errno(),
                path: Some(shown.to_string()),
            });
        }
        Ok(None) => {
            return Err(SetupError::from(format!(
                "{shown} is not a regular file, so the notify socket cannot be bound there"
            ))
            .at(shown));
        }
    };
    let b = bound(
        k,
        sock,
        "notify socket",
        Attrs::RDONLY.or(Attrs::SAFE),
        Recursive::No,
        || format!("notify socket as {shown}"),
    )?;
    ctx(k.attach(&b, &target, shown), || format!("mount {shown}"))
}

/// One volume.
fn volume<K: Kernel>(k: &K, root: &K::Fd, state: &K::Fd, m: &crate::spec::MountSpec) -> Result<()> {
    let t = &m.target;
    let target = image_dir(k, root, t, "volume mount points must exist in the image")?;
    let what = || format!("volume {t}");
    let mnt = match &m.kind {
        MountKind::Bind {
            base,
            sub,
            writable,
            mkdir,
        } => {
            let base_fd = ctx(k.open_dir(base), || {
                format!("volume {t}: host dir {}", base.display())
            })?;
            let src = match mkdir {
                Some((mode, uid, gid)) => {
                    let (fd, created) = ctx(k.mkdir_beneath(&base_fd, sub, *mode), || {
                        format!("volume {t}: create {}/{sub}", base.display())
                    })?;
                    if created {
                        ctx(k.chown_chmod(&fd, sub, *uid, *gid, *mode), what)?;
                    }
                    fd
                }
                None => ctx(k.open_dir_beneath(&base_fd, sub), || {
                    format!("volume {t}: {}/{sub} (no symlinks allowed)", base.display())
                })?,
            };
            let attrs = if *writable {
                Attrs::SAFE
            } else {
                Attrs::SAFE.or(Attrs::RDONLY)
            };
            bound(k, &src, t, attrs, Recursive::Yes, what)?
        }
        MountKind::Tmpfs { size, mode } => ctx(
            k.new_fs(
                "tmpfs",
                &[("size", &size.to_string()), ("mode", &format!("{mode:o}"))],
                Attrs::SAFE,
            ),
            what,
        )?,
        MountKind::Statedir {
            sub,
            mode,
            uid,
            gid,
        } => {
            let (fd, _) = ctx(k.mkdir_beneath(state, sub, *mode), what)?;
            ctx(k.chown_chmod(&fd, sub, *uid, *gid, *mode), what)?;
            bound(k, &fd, t, Attrs::SAFE, Recursive::No, what)?
        }
    };
    ctx(k.attach(&mnt, &target, t), || format!("mount volume {t}"))
}

/// Write `state/<name>` and, per the config, bind it read-only over the
/// image's `/etc/<name>` when that is a regular file (never a symlink).
fn etc_file<K: Kernel>(k: &K, root: &K::Fd, state: &K::Fd, name: &str, f: &EtcFile) -> Result<()> {
    if !etc::wanted(f) {
        return Ok(());
    }
    let copied = match &f.copy_from {
        // Non-blocking, regular files only: a FIFO here would hold the
        // start forever.
        Some(p) => Some(ctx(k.read_host_file(p, 1 << 20), || {
            let key = if name == "hosts" {
                "hosts-file"
            } else {
                "resolv-conf"
            };
            format!("sandbox {key} {}", p.display())
        })?),
        None => None,
    };
    let host = if f.public_hostname {
        k.public_host()
    } else {
        None
    };
    let content = etc::render(
        f,
        copied.as_deref(),
        host.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
    );
    ctx(k.replace_file(state, name, &content, 0o644), || {
        format!("write state/{name}")
    })?;
    if f.mount == Some(false) {
        return Ok(());
    }
    let path = format!("etc/{name}");
    let target = match regular_file(k, root, &path) {
        Ok(Some(t)) => t,
        _ if f.mount == Some(true) => {
            return Err(format!(
                "/etc/{name} in the image is not a regular file (missing, a symlink or special), so it cannot be replaced"
            )
            .into());
        }
        _ => return Ok(()),
    };
    let src = ctx(
        k.openat2(
            state,
            name,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            Resolve::BeneathNoSymlinks,
        ),
        || format!("state/{name}"),
    )?;
    let b = bound(
        k,
        &src,
        name,
        Attrs::RDONLY.or(Attrs::SAFE),
        Recursive::No,
        || format!("/etc/{name}"),
    )?;
    ctx(k.attach(&b, &target, name), || format!("mount /etc/{name}"))
}

#[cfg(test)]
#[path = "fs_tests.rs"]
mod tests;
