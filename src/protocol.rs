//! The tree–knot protocol, which both sides use and neither owns.
//!
//! In: the instance's spec and a `Context` of host facts (fds, the
//! compiled system call filter, the tree's pid), handed to `Launch`, the
//! function that starts a knot (the knot's `spawn`, given to the tree by
//! the binary's entry point).
//!
//! Out: records in the instance dir, each written whole by the knot (and
//! by cairn-init for `exit-status`) and read back by the tree only when
//! root alone could have written them:
//! - `knot`: a `KnotRecord`, which makes a running knot findable and
//!   adoptable by a new tree;
//! - `workload.pid`: the workload's host pid;
//! - `error`: why the container could not be set up (the knot then exits
//!   `SETUP_FAILED`);
//! - `exit-status`: an `ExitRecord` (JSON).
//!
//! And one byte on the `ready` pipe: `r` once the workload has exec'd,
//! `x` once it has ended (before the container is torn down).

use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::spec::InstanceSpec;
use crate::sys::cgroup::Cgroups;
use crate::sys::seccomp::{self, Program};

/// Starts the knot of `spec` (clones it); returns its host pid.
pub type Launch = fn(&InstanceSpec, &Context) -> Result<i32, LaunchError>;

/// Why a knot could not be started: the knot's own error (`knot::spawn`),
/// which names the instance and the step, with its source (and errno)
/// kept; the tree only shows it.
pub type LaunchError = Box<dyn std::error::Error + Send + Sync>;

/// Names of the records in an instance dir.
pub const KNOT_FILE: &str = "knot";
pub const ERROR_FILE: &str = "error";
pub const EXIT_FILE: &str = "exit-status";
pub const WORKLOAD_PID_FILE: &str = "workload.pid";

/// Exit status of a knot whose container could not be set up (the reason
/// is in `<instance dir>/error` and on stderr).
pub const SETUP_FAILED: i32 = 125;

/// What a knot needs besides its spec: host facts that are not config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Context {
    /// Cgroup hierarchies, or `None` when cgroups are off.
    pub cgroups: Option<Cgroups>,
    /// Listening sockets: (fd number in the workload, fd in this process).
    pub sockets: Vec<(u32, RawFd)>,
    /// `TERM` for the workload unless its environ sets one.
    pub term: String,
    /// Arguments appended to the configured ones (`cairn cmd`).
    pub extra_args: Vec<String>,
    /// Supervised by the tree: record `knot`, `workload.pid`, `error` and
    /// `exit-status` in the instance dir (`cairn cmd` needs none of them).
    #[serde(default)]
    pub supervised: bool,
    /// For a knot of `cairn cmd`: the read end of a pipe whose write end
    /// only `cairn cmd` holds. The knot dies with `cairn cmd` (parent-death
    /// signal) and checks this pipe to close the race with its start.
    #[serde(default)]
    pub parent_pipe: Option<RawFd>,
    /// The oom_score_adj the knot inherits (the tree's, or that of the
    /// caller of `cairn cmd`); unknown (absent) counts as not 0.
    #[serde(default = "unknown_oom")]
    pub oom_score_adj: i32,
    /// An fd of master.yaml's `state-dir`, checked (`sys::hostfs`) by the
    /// tree or `cairn cmd`: the knot makes its instance dir below it
    /// without walking the path from `/` again.
    #[serde(default)]
    pub state_dir_fd: Option<RawFd>,
    /// An fd of the sandbox's stdio-log-dir, checked (`sys::hostfs`) by the
    /// tree: the knot opens its stdio log below it (when the dir at that
    /// path is still this one) without walking the path from `/`.
    #[serde(default)]
    pub stdio_dir_fd: Option<RawFd>,
    /// A memfd holding cairn-init (the tree's): supervised knots exec it
    /// once the workload runs.
    #[serde(default)]
    pub init_fd: Option<RawFd>,
    /// The network namespace the knot was cloned from (a bridged instance
    /// attaches its veth pair to the bridge there); set by `spawn`.
    #[serde(default)]
    pub host_netns: Option<RawFd>,
    /// The instance's cgroup leaf exists with this spec's limits (a knot
    /// of the same config ran in it): join it without rewriting them,
    /// falling back to a full setup if joining fails.
    #[serde(default)]
    pub leaf_ready: bool,
    /// For a knot of the tree: the tree's pid as the tree's /proc numbers
    /// it (which the knot still sees at its start). Until its `knot` file
    /// is written (a new tree could not find it before), the knot dies
    /// with the tree; one whose parent is no longer this pid when it
    /// starts ends at once.
    #[serde(default)]
    pub tree_pid: Option<i32>,
    /// The instance's config hash, recorded in `<instance>/knot` so a
    /// restarted supervisor can adopt the instance.
    pub hash: String,
    /// `ready: !Fd N`: (N, the write end of the tree's readiness pipe),
    /// given to the workload as fd N.
    #[serde(default)]
    pub ready_pipe: Option<(u32, RawFd)>,
    /// `ready: !Notify`: an `O_PATH` fd of the tree's notify socket file,
    /// which the knot binds read-only onto `spec::NOTIFY_SOCKET_PATH` in
    /// the container (never given to the workload as an fd).
    #[serde(default)]
    pub notify_socket: Option<RawFd>,
    /// Write end of a pipe: the knot writes `r` once the workload has
    /// exec'd, so the supervisor knows it runs (no polling), and `x` once
    /// it has ended and its records are written.
    pub ready: Option<RawFd>,
    /// The workload's system call filter, compiled by the caller (once per
    /// distinct profile: see `filter`); `None` for `seccomp: unconfined`.
    /// A knot never compiles one itself.
    #[serde(default)]
    pub seccomp: Option<Arc<Program>>,
}

impl Context {
    /// The fds the workload is given besides stdio: (its number there,
    /// the fd here): the listening sockets, then the readiness pipe.
    pub fn workload_fds(&self) -> impl Iterator<Item = (u32, RawFd)> + '_ {
        self.sockets.iter().copied().chain(self.ready_pipe)
    }
}

fn unknown_oom() -> i32 {
    -1
}

/// The workload's end as the knot records it in `exit-status`; for a
/// workload that never started, why (`failure`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Shell-style status: the code, or 128 + signal.
    pub status: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// Set when the knot could not start the workload (status 125 to 127).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// The step of a start that failed, as far as the tree needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Building the container, before the workload's own steps.
    Setup,
    /// Changing to the container's `workdir`.
    Workdir,
    /// Finding or executing the container's `executable`.
    Executable,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Setup => "setup",
            Stage::Workdir => "workdir",
            Stage::Executable => "executable",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        [Stage::Setup, Stage::Workdir, Stage::Executable]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// Why a start failed: the step, the kernel's errno when there is one,
/// and the path involved when it is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub stage: Stage,
    pub errno: Option<i32>,
    /// The container's `workdir` or `executable` for those stages (as the
    /// config gave it); for `setup`, the path of the step that failed,
    /// when there is one (an image dir, a volume, a host file). Absent in
    /// records of an older cairn, and where no path is involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Failure {
    /// Whether starting again with the same config and image must fail the
    /// same way: the `workdir` or `executable` is missing from the image
    /// (ENOENT, ENOTDIR), leads through a symlink or magic link out of it
    /// (ELOOP, EXDEV), is not the workload user's to use (EACCES), or is
    /// not a format the kernel runs (ENOEXEC). Anything else (out of
    /// memory or fds, an I/O error, any failure to build the container)
    /// may pass and is retried with back-off.
    pub fn permanent(&self) -> bool {
        matches!(
            (self.stage, self.errno),
            (
                Stage::Workdir | Stage::Executable,
                Some(
                    libc::ENOENT
                        | libc::ENOTDIR
                        | libc::ELOOP
                        | libc::EXDEV
                        | libc::EACCES
                        | libc::ENOEXEC
                )
            )
        )
    }
}

/// The record that makes a running knot findable (`<instance>/knot`).
///
/// Text, one item per line: "HOSTPID STARTTIME HASH"; then "policy
/// RESTART_MS KILL_MS CODES" (the normal exit codes, comma-separated, `-`
/// for none), so an adopted instance is stopped and restarted as
/// configured even when no config names it any more; then one line per
/// listening socket the knot holds, "sock FD HOST PORT OWNER" (OWNER `-`
/// for a shared socket), which a new tree takes back with pidfd_getfd(2).
/// Readers skip lines they do not know.
#[derive(Debug, Clone, PartialEq)]
pub struct KnotRecord {
    pub pid: i32,
    /// The knot's start time (clock ticks after boot, /proc/PID/stat).
    pub ticks: u64,
    /// The instance's config hash.
    pub hash: String,
    pub policy: Option<Policy>,
    /// (fd in the knot, host, port, owner) of its listening sockets.
    pub sockets: Vec<(i32, IpAddr, u16, Option<String>)>,
}

/// The stop and restart policy of an instance, as its config gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub restart_timeout_ms: u64,
    pub kill_timeout_ms: u64,
    pub normal_exit_codes: Vec<i32>,
}

impl Policy {
    /// The policy `spec` configures.
    pub fn of(spec: &InstanceSpec) -> Policy {
        Policy {
            restart_timeout_ms: spec.restart_timeout_ms,
            kill_timeout_ms: spec.kill_timeout_ms,
            normal_exit_codes: spec.normal_exit_codes.clone(),
        }
    }

    /// `policy RESTART_MS KILL_MS CODES`, split on whitespace.
    fn parse(fields: &[&str]) -> Option<Policy> {
        let ["policy", restart, kill, codes] = fields else {
            return None;
        };
        let normal_exit_codes = if *codes == "-" {
            Vec::new()
        } else {
            codes
                .split(',')
                .map(|c| c.parse().ok())
                .collect::<Option<Vec<i32>>>()?
        };
        Some(Policy {
            restart_timeout_ms: restart.parse().ok()?,
            kill_timeout_ms: kill.parse().ok()?,
            normal_exit_codes,
        })
    }
}

impl KnotRecord {
    pub fn to_text(&self) -> String {
        let mut out = format!("{} {} {}\n", self.pid, self.ticks, self.hash);
        if let Some(p) = &self.policy {
            let codes: Vec<String> = p.normal_exit_codes.iter().map(|c| c.to_string()).collect();
            let codes = if codes.is_empty() {
                "-".to_string()
            } else {
                codes.join(",")
            };
            out.push_str(&format!(
                "policy {} {} {codes}\n",
                p.restart_timeout_ms, p.kill_timeout_ms
            ));
        }
        for (fd, host, port, owner) in &self.sockets {
            let owner = owner.as_deref().unwrap_or("-");
            out.push_str(&format!("sock {fd} {host} {port} {owner}\n"));
        }
        out
    }

    /// The record in `text`; `None` when its first line is not one.
    pub fn parse(text: &str) -> Option<KnotRecord> {
        let mut lines = text.lines();
        let mut it = lines.next()?.split_whitespace();
        let mut rec = KnotRecord {
            pid: it.next()?.parse().ok()?,
            ticks: it.next()?.parse().ok()?,
            hash: it.next().unwrap_or("").to_string(),
            policy: None,
            sockets: Vec::new(),
        };
        for line in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let Some(p) = Policy::parse(&f) {
                rec.policy = Some(p);
            } else if let ["sock", fd, host, port, owner] = f.as_slice()
                && let (Ok(fd), Ok(host), Ok(port)) = (fd.parse(), host.parse(), port.parse())
            {
                let owner = (*owner != "-").then(|| owner.to_string());
                rec.sockets.push((fd, host, port, owner));
            }
        }
        Some(rec)
    }
}

/// How a command joined into a running container (`cairn exec`, an
/// `!Exec` probe) gets its stdin, stdout and stderr. Each fd is one of
/// the caller's, close-on-exec; the joined process takes its own copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStdio {
    /// These three (pipes: nothing of the caller's own files).
    Fds([RawFd; 3]),
    /// A new pseudo-terminal in the container's devpts: its master side
    /// is sent back on this `SOCK_SEQPACKET` socket (`sys::socket::
    /// send_fd`), and the command goes on once it reads one byte from it.
    Pty(RawFd),
    /// The container's /dev/null for all three.
    Null,
}

/// One command to run inside a running instance, with everything it
/// needs already looked up and checked by the caller (the instance is
/// the one named: its pid 1's identity, its user namespace and its root
/// were verified).
pub struct JoinRequest<'a> {
    /// The instance, for messages.
    pub instance: &'a str,
    /// A pidfd of the container's pid 1: its pid, mount, UTS, IPC,
    /// network and cgroup namespaces are joined through it.
    pub pid1: std::os::fd::BorrowedFd<'a>,
    /// The workload's user namespace (an nsfs fd), when it has one.
    pub userns: Option<std::os::fd::BorrowedFd<'a>>,
    /// The instance's image (its image-dir and name): the root the
    /// command finds after joining must be this directory (the child looks
    /// at it itself: a hung file system under an image hangs only it).
    pub image: (&'a std::path::Path, &'a str),
    /// The instance's cgroup leaf in each hierarchy.
    pub cgroup: Option<(&'a Cgroups, &'a str)>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The whole environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Where the command starts (inside the container).
    pub workdir: String,
    /// The command and its arguments; a command without `/` is looked
    /// up in `search_path` (a `PATH`) inside the container.
    pub argv: Vec<String>,
    pub search_path: String,
    /// Resource limits (resource, soft, hard, name) to set, as the
    /// workload inherited them, then `RLIMIT_NOFILE` = `fileno`.
    pub rlimits: Vec<(crate::sys::rlimit::Resource, u64, u64, &'static str)>,
    pub fileno: u64,
    pub umask: u32,
    /// The system call filter, installed last; `None`: unconfined.
    pub filter: Option<&'a Program>,
    /// cairn-init's memfd: the command is exec'd through it (`None`
    /// where there is no cairn-init).
    pub init: Option<std::os::fd::BorrowedFd<'a>>,
    pub stdio: JoinStdio,
}

/// A joined command that was forked: its pid (as the caller sees it, a
/// child of the caller), the read end of its report pipe (end of file
/// with nothing read: it exec'd; see `knot::join::outcome`), and a pipe
/// end to hold until then (the child ends itself if it finds it closed
/// before it runs anything: its caller died).
pub struct Joined {
    pub pid: i32,
    pub report: std::os::fd::OwnedFd,
    pub alive: std::os::fd::OwnedFd,
}

/// A joined command's report pipe, read to its end (`failure` reads it).
pub type JoinFailure = fn(&str, &[u8]) -> Option<(i32, String)>;

/// How the tree starts a joined command (`!Exec` probes) and reads the
/// report of one that failed: the knot's `join`, given to the tree by the
/// binary's entry point, as `Launch` is.
#[derive(Clone, Copy)]
pub struct Joiner {
    pub start: fn(&JoinRequest<'_>) -> Result<Joined, LaunchError>,
    /// (the command, its report pipe's bytes) → (status, why), when the
    /// command failed before or at its execve.
    pub failure: JoinFailure,
}

/// The filter profile of a command joined into `spec`'s container: the
/// sandbox's (`seccomp`, `allow-user-namespaces`) for a process without
/// any capability, which is what a joined command has; `None` for
/// `seccomp: unconfined`.
pub fn join_filter_profile(spec: &InstanceSpec) -> Result<Option<seccomp::Profile>, String> {
    profile_with(spec, &[])
}

/// The system call filter profile of `spec`'s workload: the sandbox's
/// `seccomp` and `allow-user-namespaces`, and the capabilities it keeps;
/// `None` for `seccomp: unconfined`.
pub fn filter_profile(spec: &InstanceSpec) -> Result<Option<seccomp::Profile>, String> {
    profile_with(spec, &spec.capabilities)
}

/// The profile of `spec`'s sandbox for a process keeping `caps`.
fn profile_with(spec: &InstanceSpec, caps: &[String]) -> Result<Option<seccomp::Profile>, String> {
    use crate::config::isolation::Seccomp;
    let mode = match spec.isolation.seccomp {
        Seccomp::Unconfined => return Ok(None),
        Seccomp::Default => seccomp::Mode::Enforce,
        Seccomp::Log => seccomp::Mode::Log,
    };
    let userns = spec.isolation.allow_user_namespaces;
    seccomp::Profile::workload(mode, userns, caps)
        .map(Some)
        .map_err(|e| format!("system call filter: {e}"))
}

/// The compiled filter for `spec`, from `cache` (compiled there the first
/// time its profile is asked for), to put in the knot's `Context`.
pub fn filter(
    spec: &InstanceSpec,
    cache: &mut seccomp::Cache,
) -> Result<Option<Arc<Program>>, String> {
    match filter_profile(spec)? {
        Some(p) => cache
            .get(&p)
            .map(Some)
            .map_err(|e| format!("system call filter: {e}")),
        None => Ok(None),
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
