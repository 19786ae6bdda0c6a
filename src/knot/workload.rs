//! The workload's side of its start: the child the knot forks, its steps
//! up to execve (user namespace, ids and capabilities, no_new_privs, fds,
//! environment, the system call filter, the workdir), and how it reports
//! a failure to the knot (`SpawnError` on the error pipe).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::protocol::{Context, Failure, Stage};
use crate::spec::{InstanceSpec, Stdio};
use crate::sys::fs::{self as sfs, Resolve};
use crate::sys::seccomp::{self, Program};
use crate::sys::{embedded, keyring, process, signal};

/// Exit codes of a workload that never ran: exec failed, or the
/// executable was not found (shell conventions).
pub const EXEC_FAILED: i32 = 126;
pub const NOT_FOUND: i32 = 127;

/// Why the workload did not start, and the status that reports it: 125
/// (`SETUP_FAILED`) for everything before execve, 126/127 for execve.
#[derive(Debug)]
pub struct SpawnError {
    pub code: i32,
    pub message: String,
    /// The step that failed and its errno, for the tree (`exit-status`).
    pub failure: Option<Failure>,
}

impl SpawnError {
    pub(super) fn setup(message: String) -> SpawnError {
        SpawnError {
            code: super::SETUP_FAILED,
            message,
            failure: None,
        }
    }

    /// An execve (or the lookup of the executable before it) that failed
    /// with `errno`: 127 when the file is not there, 126 otherwise.
    fn exec(message: String, errno: Option<i32>) -> SpawnError {
        SpawnError {
            code: if errno == Some(libc::ENOENT) {
                NOT_FOUND
            } else {
                EXEC_FAILED
            },
            message,
            failure: Some(Failure {
                stage: Stage::Executable,
                errno,
            }),
        }
    }

    /// How the workload child reports it on the error pipe: `CODE STAGE
    /// ERRNO MESSAGE`, `-` for a stage or errno it does not have.
    pub(super) fn to_wire(&self) -> String {
        let (stage, errno) = match self.failure {
            Some(f) => (
                f.stage.as_str(),
                f.errno.map_or("-".to_string(), |e| e.to_string()),
            ),
            None => ("-", "-".to_string()),
        };
        format!("{} {stage} {errno} {}", self.code, self.message)
    }

    fn from_wire(msg: &str) -> SpawnError {
        let mut it = msg.splitn(4, ' ');
        let (Some(code), Some(stage), Some(errno), Some(message)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return SpawnError::setup(msg.to_string());
        };
        let failure = Stage::parse(stage).map(|stage| Failure {
            stage,
            errno: errno.parse().ok(),
        });
        SpawnError {
            code: code.parse().unwrap_or(super::SETUP_FAILED),
            message: message.to_string(),
            failure,
        }
    }
}

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

/// What the error pipe said: `CODE MESSAGE` from our own child, or
/// `E<errno>` from cairn-init when the execve of the workload failed.
pub(super) fn parse_failure(spec: &InstanceSpec, msg: &str) -> SpawnError {
    if let Some(errno) = msg.strip_prefix('E').and_then(|n| n.parse::<i32>().ok()) {
        let e = std::io::Error::from_raw_os_error(errno);
        return SpawnError::exec(
            format!("cannot execute {}: {e}", spec.executable),
            Some(errno),
        );
    }
    SpawnError::from_wire(msg)
}

/// The highest fd number the workload is given (at least 2).
pub(super) fn max_target(ctx: &Context) -> RawFd {
    ctx.sockets
        .iter()
        .map(|(t, _)| *t as RawFd)
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
) -> SpawnError {
    match child_steps(spec, ctx, userns, filter, fds) {
        Ok(never) => match never {},
        Err(Fail::Setup(m)) => SpawnError::setup(m),
        Err(Fail::Workdir(m, errno)) => SpawnError {
            failure: Some(Failure {
                stage: Stage::Workdir,
                errno,
            }),
            ..SpawnError::setup(m)
        },
        Err(Fail::Exec(m, errno)) => SpawnError::exec(m, errno),
    }
}

enum Never {}

/// A failure in the child: before execve, of its workdir, or of execve
/// (with their errno).
enum Fail {
    Setup(String),
    Workdir(String, Option<i32>),
    Exec(String, Option<i32>),
}

impl From<String> for Fail {
    fn from(m: String) -> Fail {
        Fail::Setup(m)
    }
}

/// A setup step that failed, named.
fn step<T>(what: &str, r: crate::sys::Result<T>) -> Result<T, Fail> {
    r.map_err(|e| Fail::Setup(format!("{what}: {e}")))
}

fn child_steps(
    spec: &InstanceSpec,
    ctx: &Context,
    userns: bool,
    filter: Option<&Program>,
    fds: &ChildFds,
) -> Result<Never, Fail> {
    // Before `go` (for `cairn cmd`, while the knot builds the root: see
    // `Pending`). First of all: close what the workload must not have (the knot's
    // instance and cgroup dirs, its signalfd, its ready pipe, ...), so no
    // path resolved below can lead through a host fd of ours.
    let mut keep: Vec<RawFd> = vec![fds.err, fds.up_w, fds.go_r];
    keep.extend(fds.stdio);
    keep.extend(ctx.sockets.iter().map(|(_, fd)| *fd));
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
    // SAFETY: our own pipe ends, by number; each used here and closed.
    let (mut up, mut go) = unsafe {
        (
            std::fs::File::from(OwnedFd::from_raw_fd(fds.up_w)),
            std::fs::File::from(OwnedFd::from_raw_fd(fds.go_r)),
        )
    };
    if userns {
        // The knot writes our maps when it lets us go.
        step("user namespace", crate::sys::namespace::unshare_user())?;
        up.write_all(b"u").map_err(|e| format!("sync: {e}"))?;
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
        return Err(Fail::Setup(
            "the workload's root is not the container's root".into(),
        ));
    }
    if userns {
        drop_privileges(spec)?;
    }
    let s = |e: crate::sys::Error| e.to_string();

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
            .map_err(|e| format!("stdout-stderr-file {path}: {}", e.source))?;
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
    .map_err(|e| {
        Fail::Workdir(
            format!("workdir {}: {}", spec.workdir, path_error(&e)),
            e.errno(),
        )
    })?;
    step("workdir", process::fchdir(wd.as_fd()))?;
    drop(wd);
    let cwd = step("workdir", process::getcwd())?;
    if !cwd.starts_with(b"/") {
        return Err(Fail::Setup(format!(
            "workdir {}: ended up outside the container ({})",
            spec.workdir,
            String::from_utf8_lossy(&cwd)
        )));
    }
    // The executable: found inside the root without magic links (execve
    // below looks it up again by name, but by then nothing of the host is
    // open here, so no link can lead out).
    if let Err(e) = sfs::openat2(
        root.as_fd(),
        &spec.executable,
        libc::O_PATH,
        0,
        Resolve::InRoot,
    ) {
        return Err(Fail::Exec(
            format!("cannot execute {}: {}", spec.executable, path_error(&e)),
            e.errno(),
        ));
    }
    drop(root);

    // File descriptors: 0-2, then the declared sockets; nothing else.
    let max_target = max_target(ctx);
    let above = |fd: RawFd| -> Result<RawFd, Fail> {
        Ok(step("dup", crate::sys::fd::dup_above(fd, max_target + 1))?.into_raw_fd())
    };
    let mut high: Vec<(RawFd, RawFd)> = Vec::new();
    for (target, src) in &ctx.sockets {
        high.push((*target as RawFd, above(*src)?));
    }
    let out = out.map(above).transpose()?;
    let stdin = if spec.interactive {
        None
    } else {
        let f = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
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
    signal::reset_signals().map_err(s)?;

    let pid = process::getpid().to_string();
    let mut env: Vec<String> = Vec::with_capacity(spec.environ.len() + 2);
    if !spec.environ.contains_key("TERM") {
        env.push(format!("TERM={}", ctx.term));
    }
    const OURS: [&str; 4] = ["CAIRN_NAME", "LITHOS_NAME", "CAIRN_CONFIG", "LITHOS_CONFIG"];
    for (k, v) in &spec.environ {
        if !OURS.contains(&k.as_str()) {
            env.push(format!("{k}={v}"));
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
            // SAFETY: the memfd stays open in this process (keep list).
            let init = unsafe { BorrowedFd::borrow_raw(init) };
            let e = embedded::exec_trampoline(init, fds.err, &spec.executable, &argv, &env);
            return Err(Fail::Setup(e.to_string()));
        }
        None => process::exec(&spec.executable, &argv, &env),
    };
    Err(Fail::Exec(
        format!("cannot execute {}: {}", spec.executable, e.source),
        e.errno(),
    ))
}

/// The configured ids and capabilities (all dropped unless the sandbox
/// allows some and the container asks), then no_new_privs.
fn drop_privileges(spec: &InstanceSpec) -> Result<(), Fail> {
    super::privileges::drop_privileges(&super::seam::Real, spec)
        .map_err(|e| Fail::Setup(e.to_string()))
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
mod tests {
    use super::*;

    #[test]
    fn go_message_carries_our_root() {
        let m = go_message();
        assert_eq!(root_in_go_message(&m), root_identity());
        assert!(root_identity().is_some());
        let mut none = [0u8; 17];
        none[0] = b'g';
        assert_eq!(root_in_go_message(&none), None);
        let mut other = m;
        other[0] = b'x';
        assert_eq!(root_in_go_message(&other), None);
    }
}
