//! A command started inside a running container (`cairn exec`, and the
//! tree's `!Exec` probes): the caller forks it straight into the
//! container's pid namespace (`start`), and the child joins the rest and
//! becomes a process of the instance like its workload (`steps`), then
//! execs the command through cairn-init's `cairn-exec` trampoline.
//!
//! Nothing of the caller may reach the command (runc's CVE-2016-9962:
//! the container traced the joining process, or opened its host fds
//! through /proc/PID/fd, before it had dropped its privileges). So the
//! child is never dumpable, closes every fd it was not given before it
//! joins anything, starts from the container's root, holds capabilities
//! the container lacks for as long as it may be dumpable (see
//! `privileges::drop_for_join`), gets a clean environment, and the
//! process that calls execve for the command is the sealed cairn-init
//! memfd, not a copy of the cairn binary.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use crate::protocol::{JoinRequest, JoinStdio, Joined, SETUP_FAILED, Stage};
use crate::sys::fs::{self as sfs, Resolve};
use crate::sys::{embedded, keyring, namespace, process, pty, signal};

use super::report::{REPORT_CAP, SpawnError};

/// Why a joined command could not even be forked (the caller names the
/// instance).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JoinError(crate::sys::Error);

/// `Join` for the tree and `cairn exec`: fork the command's process into
/// the container's pid namespace (it is our child; we stay where we
/// are), and let it join the rest (`steps`). The caller must be
/// single-threaded.
pub fn start(req: &JoinRequest<'_>) -> Result<Joined, JoinError> {
    let sys = JoinError;
    let (report, report_w) = crate::sys::fd::pipe().map_err(sys)?;
    let (alive_r, alive) = crate::sys::fd::pipe().map_err(sys)?;
    let home = namespace::own("pid").map_err(sys)?;
    // The child is in the container's pid namespace from its first
    // instruction on, visible to its processes: it must never be
    // dumpable there. The flag is per address space and the child
    // inherits ours: clear it around the fork (the tree may be dumpable).
    let was_dumpable = process::is_dumpable();
    process::set_dumpable(false).map_err(sys)?;
    let forked = namespace::fork_in_pidns(req.pid1, home.as_fd());
    if was_dumpable {
        // The child has its own copy of the flag.
        let _ = process::set_dumpable(true);
    }
    match forked.map_err(sys)? {
        Some(pid) => Ok(Joined { pid, report, alive }),
        None => {
            drop(report);
            drop(alive);
            drop(home);
            // A crash here must not re-exec a supervisor (the tree's
            // handler), and a panic must not unwind into the caller's code.
            crate::sys::crash::reset_fatal();
            // From here on the child manages its fds by number (it moves
            // and closes them wholesale) and ends in exec or _exit.
            let mut report = report_w.into_raw_fd();
            let alive_r = alive_r.into_raw_fd();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                steps(req, &mut report, alive_r)
            }));
            let e = match ran {
                Ok(Ok(never)) => match never {},
                Ok(Err(e)) => e.report(),
                Err(_) => process::exit_now(SETUP_FAILED),
            };
            // Best effort, as the workload's report (see `exec::prepare`):
            // the report pipe's write end at the number `steps` moved it to.
            let _ = crate::sys::fd::write_all_raw(report, &e.to_wire());
            process::exit_now(e.code)
        }
    }
}

/// Wait for the joined command to exec (its report pipe reaches end of
/// file with nothing on it) or to fail (it wrote why, and exits with the
/// status it names). Blocks; `command` names it in the messages.
pub fn outcome(command: &str, report: OwnedFd) -> Result<(), SpawnError> {
    let mut bytes = Vec::new();
    let read = std::fs::File::from(report)
        .take(REPORT_CAP as u64 + 1)
        .read_to_end(&mut bytes);
    match read {
        Ok(_) => match SpawnError::from_report(command, &bytes) {
            None => Ok(()),
            Some(e) => Err(e),
        },
        Err(e) => Err(SpawnError::new(
            Stage::Setup,
            format!("report pipe of the joined command: {e}"),
            e.raw_os_error(),
            None,
        )),
    }
}

/// The report a failed joined command left (its pipe read to the end by
/// the caller, without blocking): its status and why, `None` when there
/// is none (it exec'd).
pub fn failure(command: &str, bytes: &[u8]) -> Option<(i32, String)> {
    SpawnError::from_report(command, bytes).map(|e| (e.code, e.message))
}

/// `protocol::Joiner` for the tree.
pub const JOINER: crate::protocol::Joiner = crate::protocol::Joiner {
    start: |req| Ok(start(req)?),
    failure,
};

enum Never {}

/// A failure in the joined child, before or at execve.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("{step}: {source}")]
    Step {
        step: &'static str,
        source: crate::sys::Error,
    },
    #[error("the root found after joining is not the container's root")]
    ForeignRoot,
    #[error("workdir {path}: {source}")]
    Workdir {
        path: String,
        source: crate::sys::Error,
    },
    #[error("workdir {path}: ended up outside the container ({cwd})")]
    OutsideWorkdir { path: String, cwd: String },
    #[error("{command}: not found in the container (PATH={path})")]
    NotInPath { command: String, path: String },
    #[error("cannot execute {path}: {}", .source.source)]
    Lookup {
        path: String,
        source: crate::sys::Error,
    },
    #[error("cannot execute {path}: not a regular file with an execute bit")]
    NotExecutable { path: String },
    #[error("pty: the caller went away")]
    PtyGone,
    #[error("{0}")]
    Exec(crate::sys::Error),
}

impl StepError {
    fn report(self) -> SpawnError {
        use StepError::*;
        let (stage, errno, path) = match &self {
            Step { source, .. } => (Stage::Setup, source.errno(), None),
            Exec(source) => (Stage::Setup, source.errno(), None),
            ForeignRoot | PtyGone => (Stage::Setup, None, None),
            Workdir { path, source } => (Stage::Workdir, source.errno(), Some(path)),
            OutsideWorkdir { path, .. } => (Stage::Workdir, None, Some(path)),
            NotInPath { command, .. } => (Stage::Executable, Some(libc::ENOENT), Some(command)),
            Lookup { path, source } => (Stage::Executable, source.errno(), Some(path)),
            NotExecutable { path } => (Stage::Executable, Some(libc::EACCES), Some(path)),
        };
        let path = path.cloned();
        SpawnError::new(stage, self.to_string(), errno, path)
    }
}

fn step<T>(step: &'static str, r: crate::sys::Result<T>) -> Result<T, StepError> {
    r.map_err(|source| StepError::Step { step, source })
}

/// Where the fds a joined child keeps go before it closes the rest: far
/// above stdio, so no dup2 onto 0-2 clobbers one.
const KEEP_FROM: RawFd = 10;

/// The child's fds, moved above `KEEP_FROM`.
struct Kept {
    report: RawFd,
    alive: RawFd,
    pid1: RawFd,
    userns: Option<RawFd>,
    init: Option<RawFd>,
    stdio: Option<[RawFd; 3]>,
    pty: Option<RawFd>,
}

/// Copy `fd` above `KEEP_FROM` (close-on-exec); the copy is ours until
/// exec or exit.
fn lift(fd: RawFd) -> Result<RawFd, StepError> {
    Ok(step("dup", crate::sys::fd::dup_above(fd, KEEP_FROM))?.into_raw_fd())
}

/// The joined child: from the fork to execve. Returns only on failure.
/// `report`: the report pipe's write end, moved with the other fds the
/// child keeps (the caller writes the report there if this fails).
fn steps(req: &JoinRequest<'_>, report: &mut RawFd, alive: RawFd) -> Result<Never, StepError> {
    // Die with the caller, and not run at all if it is already gone.
    step("PR_SET_PDEATHSIG", process::set_pdeathsig(libc::SIGKILL))?;
    if crate::sys::fd::pipe_closed(alive) {
        process::exit_now(SETUP_FAILED);
    }
    // First of all, before anything of the container is joined: every fd
    // the caller had but what this child was given is closed (the tree's
    // sockets, cgroup and instance dirs, the caller's terminal...).
    *report = lift(*report)?;
    let kept = Kept {
        report: *report,
        alive: lift(alive)?,
        pid1: lift(req.pid1.as_raw_fd())?,
        userns: req.userns.map(|f| lift(f.as_raw_fd())).transpose()?,
        init: req.init.map(|f| lift(f.as_raw_fd())).transpose()?,
        stdio: match req.stdio {
            JoinStdio::Fds(fds) => Some([lift(fds[0])?, lift(fds[1])?, lift(fds[2])?]),
            _ => None,
        },
        pty: match req.stdio {
            JoinStdio::Pty(sock) => Some(lift(sock)?),
            _ => None,
        },
    };
    let mut keep = vec![kept.report, kept.alive, kept.pid1];
    keep.extend(kept.userns);
    keep.extend(kept.init);
    keep.extend(kept.stdio.iter().flatten());
    keep.extend(kept.pty);
    step("close inherited fds", crate::sys::fd::close_all_but(&keep))?;
    for fd in 0..=2 {
        crate::sys::fd::close_fd(fd);
    }
    // No host directory as the working directory while we join.
    step("chdir", process::chdir("/"))?;
    // What the workload's child does while it holds every capability
    // of the host (see `workload::child_steps`): its cgroup leaf (a host
    // path, before the mount namespace changes), limits above the
    // caller's hard limits, an oom_score_adj of 0 it cannot lower, a
    // session keyring of its own, a session without a terminal.
    if let Some((cg, leaf)) = req.cgroup {
        step("cgroup", cg.join_self(leaf))?;
    }
    // Raised to 0 from below (the tree runs at -1000), never lowered: a
    // caller above 0 keeps its score, which needs no privilege.
    if crate::sys::proc::oom_score_adj().is_none_or(|v| v < 0) {
        step("oom_score_adj", crate::sys::proc::set_oom_score_adj(0))?;
    }
    for &(res, soft, hard, what) in &req.rlimits {
        step(
            "rlimit",
            crate::sys::rlimit::set_limit(res, (soft, hard), what),
        )?;
    }
    step(
        "fileno-limit",
        crate::sys::rlimit::set_rlimit(
            crate::sys::rlimit::RLIMIT_NOFILE,
            req.fileno,
            "RLIMIT_NOFILE",
        ),
    )?;
    step("session keyring", keyring::join_new_session_keyring())?;
    step("setsid", process::setsid())?;
    // The image, looked at from the host: the root we find after joining
    // must be it.
    let image = crate::image::open_image(req.image.0, req.image.1).map_err(|e| {
        let errno = e.errno().unwrap_or(libc::EIO);
        StepError::Step {
            step: "image",
            source: crate::sys::Error::new(
                "open",
                req.image.0.join(req.image.1).display(),
                std::io::Error::from_raw_os_error(errno),
            ),
        }
    })?;
    let want_root = step("image", crate::sys::fd::dev_ino(image.as_fd()))?;
    drop(image);
    // The container's namespaces, through pid 1's pidfd. Our root and
    // working directory become the mount namespace's root: it must be
    // the container's (the one the caller checked), never a root the
    // knot has not pivoted away from yet.
    // Our own copy of the caller's pidfd, open (keep list).
    let pid1 = step("pidfd", crate::sys::fs::adopt_fd(kept.pid1))?;
    step(
        "join the namespaces",
        namespace::join_from_pidfd(pid1.as_fd(), namespace::JOINED),
    )?;
    drop(pid1);
    if super::workload::root_identity() != Some(want_root) {
        return Err(StepError::ForeignRoot);
    }
    if let Some(fd) = kept.userns {
        // Our own copy of the nsfs fd, open (keep list).
        let userns = step("user namespace", crate::sys::fs::adopt_fd(fd))?;
        step(
            "join the user namespace",
            namespace::enter_userns(userns.as_fd()),
        )?;
    }
    step(
        "ids",
        super::privileges::drop_for_join(&super::seam::Real, req.uid, req.gid, &req.groups),
    )?;
    // The change of ids cleared the parent-death signal (prctl(2)): set
    // it again, and end here if the caller died meanwhile.
    step("PR_SET_PDEATHSIG", process::set_pdeathsig(libc::SIGKILL))?;
    if crate::sys::fd::pipe_closed(kept.alive) {
        process::exit_now(SETUP_FAILED);
    }
    crate::sys::fd::close_fd(kept.alive);
    // Everything below runs as the command's user, in the container.
    let root = step("/", sfs::open_dir(std::path::Path::new("/")))?;
    let stdio: [RawFd; 3] = match (kept.stdio, kept.pty) {
        (Some(fds), _) => fds,
        (None, Some(sock)) => {
            let slave = new_pty(root.as_fd(), sock)?;
            [slave, slave, slave]
        }
        (None, None) => {
            let null = step(
                "/dev/null",
                sfs::openat2(root.as_fd(), "/dev/null", libc::O_RDWR, 0, Resolve::InRoot),
            )?
            .into_raw_fd();
            [null, null, null]
        }
    };
    let wd = sfs::openat2(
        root.as_fd(),
        &req.workdir,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        Resolve::InRoot,
    )
    .map_err(|source| StepError::Workdir {
        path: req.workdir.clone(),
        source,
    })?;
    process::fchdir(wd.as_fd()).map_err(|source| StepError::Workdir {
        path: req.workdir.clone(),
        source,
    })?;
    drop(wd);
    let cwd = process::getcwd().map_err(|source| StepError::Workdir {
        path: req.workdir.clone(),
        source,
    })?;
    if !cwd.starts_with(b"/") {
        return Err(StepError::OutsideWorkdir {
            path: req.workdir.clone(),
            cwd: String::from_utf8_lossy(&cwd).into_owned(),
        });
    }
    let command = req.argv.first().map(String::as_str).unwrap_or("");
    let path = find_command(root.as_fd(), command, &req.search_path, &req.workdir)?;
    drop(root);
    for (target, fd) in stdio.iter().enumerate() {
        step("dup2", crate::sys::fd::dup2(*fd, target as RawFd))?;
        // dup2 onto itself (a terminal opened at 0-2) keeps close-on-exec.
        step("fds", crate::sys::fd::clear_cloexec(target as RawFd))?;
    }
    let mut keep: Vec<RawFd> = vec![0, 1, 2, kept.report];
    keep.extend(kept.init);
    step("close fds", crate::sys::fd::close_all_but(&keep))?;
    process::set_umask(req.umask);
    step("signals", signal::reset_signals())?;
    if kept.init.is_some() {
        // cairn-init reports a failed execve there (see `embedded`).
        step("report pipe", crate::sys::fd::clear_cloexec(kept.report))?;
    }
    // Last: the filter. What runs under it before the command is our
    // exec (cairn-init's execveat, then its fcntl and execve), which every
    // profile allows.
    if let Some(f) = req.filter {
        step("system call filter", crate::sys::seccomp::install(f))?;
    }
    if let Some(init) = kept.init {
        // The memfd stays open in this process (keep list).
        let e = embedded::exec_trampoline(init, kept.report, &path, &req.argv, &req.env);
        return Err(StepError::Exec(e));
    }
    let e = process::exec(&path, &req.argv, &req.env);
    Err(StepError::Lookup { path, source: e })
}

/// `-t`: a new pseudo-terminal of the container's own devpts, opened as
/// the command's user (it owns the terminal, as it would one it opened
/// itself), made our controlling terminal; its master goes to the caller
/// over `sock`, and we wait until the caller has set its size. Returns
/// the slave side.
fn new_pty(root: BorrowedFd<'_>, sock: RawFd) -> Result<RawFd, StepError> {
    let flags = libc::O_RDWR | libc::O_NOCTTY;
    let master = step(
        "/dev/ptmx",
        sfs::openat2(root, "/dev/ptmx", flags, 0, Resolve::InRoot),
    )?;
    let slave = step("pty", pty::open_peer(master.as_fd()))?;
    step("pty", pty::make_controlling(slave.as_fd()))?;
    // Our own copy of the caller's socket, open (keep list).
    let sock = step("pty", crate::sys::fs::adopt_fd(sock))?;
    step(
        "pty",
        crate::sys::socket::send_fd(sock.as_fd(), b'm', master.as_fd()),
    )?;
    drop(master);
    match crate::sys::socket::recv_fd(sock.as_fd()) {
        Ok(Some((b'g', None))) => Ok(slave.into_raw_fd()),
        _ => Err(StepError::PtyGone),
    }
}

/// Where `command` is in the container: as given when it holds a `/`
/// (relative to `workdir` when it does not start with one), else the
/// first regular file with an execute bit in a directory of `path`.
/// Looked up inside the root, without magic links, as the command's
/// user. (execve looks the path up again, by then with nothing of the
/// host open, so no link can lead out.)
fn find_command(
    root: BorrowedFd<'_>,
    command: &str,
    path: &str,
    workdir: &str,
) -> Result<String, StepError> {
    let runnable = |p: &str| -> Result<bool, crate::sys::Error> {
        let fd = sfs::openat2(root, p, libc::O_PATH, 0, Resolve::InRoot)?;
        let st = sfs::fstat(fd.as_fd())?;
        Ok(sfs::is_reg(&st) && st.st_mode & 0o111 != 0)
    };
    if command.contains('/') {
        let full = if command.starts_with('/') {
            command.to_string()
        } else {
            format!("{}/{command}", workdir.trim_end_matches('/'))
        };
        return match runnable(&full) {
            Ok(true) => Ok(full),
            Ok(false) => Err(StepError::NotExecutable { path: full }),
            Err(source) => Err(StepError::Lookup { path: full, source }),
        };
    }
    if !command.is_empty() {
        for dir in path.split(':').filter(|d| d.starts_with('/')) {
            let full = format!("{}/{command}", dir.trim_end_matches('/'));
            if let Ok(true) = runnable(&full) {
                return Ok(full);
            }
        }
    }
    Err(StepError::NotInPath {
        command: command.to_string(),
        path: path.to_string(),
    })
}
