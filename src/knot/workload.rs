//! The workload's side of its start: the child the knot forks, its steps
//! up to execve (user namespace, ids and capabilities, no_new_privs, fds,
//! environment, the system call filter, the workdir), and how it reports
//! a failure to the knot (`ChildError`, sent as a `report::SpawnError` on
//! the error pipe).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, RawFd};

use crate::protocol::{Context, Stage};
use crate::spec::{InstanceSpec, Stdio};
use crate::sys::fs::{self as sfs, Resolve};
use crate::sys::seccomp::{self, Program};
use crate::sys::{embedded, keyring, process, signal};

use super::report::SpawnError;
use super::secrets::Plain;

/// What `go` sends: `g`, then the device and inode of our root (zeros if
/// it cannot be looked at; the child then refuses to go on).
pub(super) fn go_message() -> [u8; 17] {
    let mut m = [0u8; 17];
    m[0] = b'g';
    if let Some((dev, ino)) = root_identity() {
        m[1..9].copy_from_slice(&dev.to_le_bytes());
        m[9..17].copy_from_slice(&ino.to_le_bytes());
    }
    m
}

/// The root identity a `go_message` carries, if it is one.
fn root_in_go_message(m: &[u8; 17]) -> Option<(u64, u64)> {
    let dev = u64::from_le_bytes(m[1..9].try_into().ok()?);
    let ino = u64::from_le_bytes(m[9..17].try_into().ok()?);
    (m[0] == b'g' && (dev, ino) != (0, 0)).then_some((dev, ino))
}

/// The device and inode of this process's root directory.
pub(super) fn root_identity() -> Option<(u64, u64)> {
    let root = sfs::open_dir(std::path::Path::new("/")).ok()?;
    let st = sfs::fstat(root.as_fd()).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// The highest fd number the workload is given (at least 2).
pub(super) fn max_target(ctx: &Context) -> RawFd {
    ctx.workload_fds()
        .map(|(t, _)| t as RawFd)
        .max()
        .unwrap_or(2)
        .max(2)
}

/// The fds the child starts with (besides stdio and the sockets).
pub(super) struct ChildFds {
    /// The error pipe, above every fd number the workload gets.
    pub(super) err: RawFd,
    /// The user namespace handshake with the knot.
    pub(super) up_w: RawFd,
    pub(super) go_r: RawFd,
    /// The sandbox stdio log (a host file, opened before the pivot).
    pub(super) stdio: Option<RawFd>,
}

/// The child side; returns why it failed, if anything fails.
pub(super) fn child(
    spec: &InstanceSpec,
    ctx: &Context,
    userns: bool,
    filter: Option<&Program>,
    fds: &ChildFds,
    secrets: &Plain,
) -> SpawnError {
    match child_steps(spec, ctx, userns, filter, fds, secrets) {
        Ok(never) => match never {},
        Err(e) => e.report(),
    }
}

enum Never {}

/// A failure in the child, before or at execve: the step, its source
/// (and so its errno), and the config path it concerns.
#[derive(Debug, thiserror::Error)]
pub(super) enum ChildError {
    /// A step of the setup, named.
    #[error("{step}: {source}")]
    Step {
        step: &'static str,
        source: crate::sys::Error,
    },
    /// Ids, capabilities, no_new_privs, signals: the call names itself.
    #[error("{0}")]
    Call(#[from] crate::sys::Error),
    #[error("sync: {0}")]
    Sync(std::io::Error),
    #[error("the workload's root is not the container's root")]
    ForeignRoot,
    #[error("stdout-stderr-file {path}: {}", .source.source)]
    StdioFile {
        path: String,
        source: crate::sys::Error,
    },
    /// Not found, or not a directory, in the container.
    #[error("workdir {path}: {}", path_error(.source))]
    Workdir {
        path: String,
        source: crate::sys::Error,
    },
    /// Found, but not to be entered (fchdir, getcwd).
    #[error("workdir: {source}")]
    EnterWorkdir {
        path: String,
        source: crate::sys::Error,
    },
    #[error("workdir {path}: ended up outside the container ({cwd})")]
    OutsideWorkdir { path: String, cwd: String },
    #[error("/dev/null: {0}")]
    DevNull(std::io::Error),
    /// Not found in the container (looked up before execve).
    #[error("cannot execute {path}: {}", path_error(.source))]
    Lookup {
        path: String,
        source: crate::sys::Error,
    },
    #[error("cannot execute {path}: {}", .source.source)]
    Exec {
        path: String,
        source: crate::sys::Error,
    },
    /// The execveat of cairn-init.
    #[error("{0}")]
    Trampoline(crate::sys::Error),
}

impl ChildError {
    /// The stage, errno and path of the failure, for the knot.
    fn report(self) -> SpawnError {
        use ChildError::*;
        let (stage, path) = match &self {
            Workdir { path, .. } | EnterWorkdir { path, .. } => (Stage::Workdir, Some(path)),
            Lookup { path, .. } | Exec { path, .. } => (Stage::Executable, Some(path)),
            StdioFile { path, .. } | OutsideWorkdir { path, .. } => (Stage::Setup, Some(path)),
            _ => (Stage::Setup, None),
        };
        let errno = match &self {
            Step { source, .. }
            | Call(source)
            | StdioFile { source, .. }
            | Workdir { source, .. }
            | EnterWorkdir { source, .. }
            | Lookup { source, .. }
            | Exec { source, .. }
            | Trampoline(source) => source.errno(),
            Sync(e) | DevNull(e) => e.raw_os_error(),
            ForeignRoot | OutsideWorkdir { .. } => None,
        };
        let path = path.cloned();
        SpawnError::new(stage, self.to_string(), errno, path)
    }
}

/// A setup step that failed, named.
fn step<T>(step: &'static str, r: crate::sys::Result<T>) -> Result<T, ChildError> {
    r.map_err(|source| ChildError::Step { step, source })
}

fn child_steps(
    spec: &InstanceSpec,
    ctx: &Context,
    userns: bool,
    filter: Option<&Program>,
    fds: &ChildFds,
    secrets: &Plain,
) -> Result<Never, ChildError> {
    // Before `go` (for `cairn cmd`, while the knot builds the root: see
    // `Pending`). First of all: close what the workload must not have (the knot's
    // instance and cgroup dirs, its signalfd, its ready pipe, ...), so no
    // path resolved below can lead through a host fd of ours.
    let mut keep: Vec<RawFd> = vec![fds.err, fds.up_w, fds.go_r];
    keep.extend(fds.stdio);
    keep.extend(ctx.workload_fds().map(|(_, fd)| fd));
    keep.extend(ctx.init_fd);
    step("close inherited fds", crate::sys::fd::close_all_but(&keep))?;
    // The knot's cwd may be a host dir the pivot does not move.
    step("chdir", process::chdir("/"))?;

    // A session of its own, without a controlling terminal: the workload
    // can neither read nor write (nor inject into) the caller's terminal,
    // nor signal the caller's process group. Only an interactive command
    // stays in the caller's session, on purpose.
    if !spec.interactive {
        step("setsid", process::setsid())?;
    }
    // While we still hold every capability: the knot is exempt from the
    // OOM killer and its workload is not (the kernel also raises the floor
    // the workload could lower its score to); limits above the caller's
    // hard limit need CAP_SYS_RESOURCE; a session keyring of its own
    // (charged to root's key quota, so a thousand instances of one uid do
    // not run out) instead of the one of whoever started cairn.
    if super::KNOT_OOM_SCORE_ADJ.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        step("oom_score_adj", crate::sys::proc::set_oom_score_adj(0))?;
    }
    step(
        "fileno-limit",
        crate::sys::rlimit::set_rlimit(
            crate::sys::rlimit::RLIMIT_NOFILE,
            spec.limits.fileno,
            "RLIMIT_NOFILE",
        ),
    )?;
    step("session keyring", keyring::join_new_session_keyring())?;
    // Our own pipe ends, by number; each used here and closed.
    let mut up = std::fs::File::from(step("sync pipe", crate::sys::fs::adopt_fd(fds.up_w))?);
    let mut go = std::fs::File::from(step("sync pipe", crate::sys::fs::adopt_fd(fds.go_r))?);
    if userns {
        // The knot writes our maps when it lets us go.
        step("user namespace", crate::sys::namespace::unshare_user())?;
        up.write_all(b"u").map_err(ChildError::Sync)?;
    } else {
        drop_privileges(spec)?;
        // Last of what we do as root, and long (the kernel prepares the
        // filter): the filter, under which only path lookups, fd moves and
        // our exec follow, all of which every profile allows.
        if let Some(f) = filter {
            step("system call filter", seccomp::install(f))?;
        }
    }
    drop(up);
    let mut b = [0u8; 17];
    if go.read_exact(&mut b).is_err() || b[0] != b'g' {
        // The knot gave up building the container (or died): nobody waits
        // for us.
        process::exit_now(super::SETUP_FAILED);
    }
    drop(go);
    // Forked before the pivot, we rely on pivot_root having moved our root
    // with the knot's: fail closed unless ours is the one the knot sent.
    let theirs = root_in_go_message(&b);
    if theirs.is_none() || theirs != root_identity() {
        return Err(ChildError::ForeignRoot);
    }
    if userns {
        drop_privileges(spec)?;
    }
    // Paths of the container config, as the workload's user, resolved
    // inside the container's root and never through a magic link.
    let root = step("/", sfs::open_dir(std::path::Path::new("/")))?;
    let out = match &spec.stdio {
        Stdio::Inherit => None,
        Stdio::HostFile(_) => fds.stdio,
        Stdio::ContainerFile(path) => {
            // Opened as the workload's user, inside the container; a
            // symlink at the name itself is not followed.
            let f = sfs::openat2(
                root.as_fd(),
                path,
                libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NOCTTY,
                0o640,
                Resolve::InRoot,
            )
            .map_err(|source| ChildError::StdioFile {
                path: path.clone(),
                source,
            })?;
            Some(f.into_raw_fd())
        }
    };
    let wd = sfs::openat2(
        root.as_fd(),
        &spec.workdir,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        Resolve::InRoot,
    )
    .map_err(|source| ChildError::Workdir {
        path: spec.workdir.clone(),
        source,
    })?;
    let enter = |source| ChildError::EnterWorkdir {
        path: spec.workdir.clone(),
        source,
    };
    process::fchdir(wd.as_fd()).map_err(enter)?;
    drop(wd);
    let cwd = process::getcwd().map_err(enter)?;
    if !cwd.starts_with(b"/") {
        return Err(ChildError::OutsideWorkdir {
            path: spec.workdir.clone(),
            cwd: String::from_utf8_lossy(&cwd).into_owned(),
        });
    }
    // The executable: found inside the root without magic links (execve
    // below looks it up again by name, but by then nothing of the host is
    // open here, so no link can lead out).
    if let Err(source) = sfs::openat2(
        root.as_fd(),
        &spec.executable,
        libc::O_PATH,
        0,
        Resolve::InRoot,
    ) {
        return Err(ChildError::Lookup {
            path: spec.executable.clone(),
            source,
        });
    }
    drop(root);

    // File descriptors: 0-2, then the declared sockets and the readiness
    // pipe (`ready: !Fd N`); nothing else.
    let max_target = max_target(ctx);
    let above = |fd: RawFd| -> Result<RawFd, ChildError> {
        Ok(step("dup", crate::sys::fd::dup_above(fd, max_target + 1))?.into_raw_fd())
    };
    let mut high: Vec<(RawFd, RawFd)> = Vec::new();
    for (target, src) in ctx.workload_fds() {
        high.push((target as RawFd, above(src)?));
    }
    let out = out.map(above).transpose()?;
    let stdin = if spec.interactive {
        None
    } else {
        let f = std::fs::File::open("/dev/null").map_err(ChildError::DevNull)?;
        Some(above(f.as_raw_fd())?)
    };
    if let Some(fd) = stdin {
        step("dup2", crate::sys::fd::dup2(fd, 0))?;
    }
    if let Some(fd) = out {
        step("dup2", crate::sys::fd::dup2(fd, 1))?;
        step("dup2", crate::sys::fd::dup2(fd, 2))?;
    }
    for (target, fd) in &high {
        step("dup2", crate::sys::fd::dup2(*fd, *target))?;
    }
    // Everything above the targets goes but the error pipe and cairn-init.
    let mut keep: Vec<RawFd> = (0..=max_target).collect();
    keep.push(fds.err);
    keep.extend(ctx.init_fd);
    step("close fds", crate::sys::fd::close_all_but(&keep))?;
    for fd in 0..=max_target {
        match crate::sys::fd::clear_cloexec(fd) {
            // Not open: a gap in the socket numbers, or stdio the caller
            // of an interactive command closed. It stays closed.
            Err(e) if e.errno() == Some(libc::EBADF) => {}
            r => step("fds", r)?,
        }
    }
    process::set_umask(super::WORKLOAD_UMASK.load(std::sync::atomic::Ordering::Relaxed));
    signal::reset_signals()?;

    let pid = process::getpid().to_string();
    let mut env: Vec<String> = Vec::with_capacity(spec.environ.len() + secrets.environ.len() + 2);
    if !spec.environ.contains_key("TERM") && secrets.env_value("TERM").is_none() {
        env.push(format!("TERM={}", ctx.term));
    }
    const OURS: [&str; 4] = ["CAIRN_NAME", "LITHOS_NAME", "CAIRN_CONFIG", "LITHOS_CONFIG"];
    for (k, v) in &spec.environ {
        // A secret of the same name wins, as in lithos.
        if !OURS.contains(&k.as_str()) && secrets.env_value(k).is_none() {
            env.push(format!("{k}={v}"));
        }
    }
    // Decrypted by the knot (`secrets`); this child's memory goes with
    // its exec.
    for (k, v) in &secrets.environ {
        if !OURS.contains(&k.as_str()) {
            env.push(format!("{k}={}", v.as_str()));
        }
    }
    for k in &OURS[..2] {
        env.push(format!("{k}={}", spec.name));
    }
    for k in &OURS[2..] {
        env.push(format!("{k}={}", spec.config_path));
    }
    for k in &spec.pid_vars {
        env.push(format!("{k}={pid}"));
    }
    let mut argv = Vec::with_capacity(1 + spec.arguments.len() + ctx.extra_args.len());
    argv.push(spec.executable.clone());
    argv.extend(spec.arguments.iter().cloned());
    argv.extend(ctx.extra_args.iter().cloned());
    if ctx.init_fd.is_some() {
        // cairn-init calls the workload's execve (see
        // `embedded::exec_trampoline`); it reports through the error pipe,
        // which must stay open across its own exec.
        step("error pipe", crate::sys::fd::clear_cloexec(fds.err))?;
    }
    // Last, after no_new_privs and the capability drop: the filter. What
    // runs under it before the workload is only our exec (execveat of
    // cairn-init, which calls fcntl, execve, and write and exit_group if
    // that fails), all of which every profile allows.
    if userns && let Some(f) = filter {
        step("system call filter", seccomp::install(f))?;
    }
    let e = match ctx.init_fd {
        Some(init) => {
            // The memfd stays open in this process (keep list).
            let e = embedded::exec_trampoline(init, fds.err, &spec.executable, &argv, &env);
            return Err(ChildError::Trampoline(e));
        }
        None => process::exec(&spec.executable, &argv, &env),
    };
    Err(ChildError::Exec {
        path: spec.executable.clone(),
        source: e,
    })
}

/// The configured ids and capabilities (all dropped unless the sandbox
/// allows some and the container asks), then no_new_privs.
fn drop_privileges(spec: &InstanceSpec) -> Result<(), ChildError> {
    super::privileges::drop_privileges(&super::seam::Real, spec)?;
    Ok(())
}

/// An openat2 failure of a config path, in words: a magic link is named
/// as such.
fn path_error(e: &crate::sys::Error) -> String {
    match e.errno() {
        Some(libc::ELOOP) | Some(libc::EXDEV) => format!(
            "{} (it leads through a link such as /proc/self/fd/N, or too many symlinks)",
            e.source
        ),
        _ => e.source.to_string(),
    }
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
