//! The supervisor's state: what the tree knows (`Tree`: its config, its
//! instances and their lifecycles, its counters) and the kernel handles it
//! works through (`Io`). The event loop that drives it is `run`; the other
//! modules of `tree` add the steps it takes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::master::Master;
use crate::protocol::{ExitRecord, Launch};
use crate::spec::InstanceSpec;
use crate::sys::cgroup::Cgroups;
use crate::sys::event::Poller;
use crate::sys::hostfs::HostDir;

use super::instance::Instance;
use super::leaves::Leaves;
use super::notify::Notify;
use super::plan::{ProcKey, Want};
use super::rollout::Halt;
use super::sockets::Sockets;
use super::state::Counters;

/// What the tree knows: its config, its instances and their lifecycles,
/// what it counts and what it has to write. Plain data; the kernel
/// handles it works through are in `io`.
pub struct Tree {
    pub master_path: PathBuf,
    pub master: Master,
    pub instances: BTreeMap<String, Instance>,
    pub by_pid: HashMap<i32, String>,
    pub by_token: HashMap<u64, String>,
    pub next_token: u64,
    /// The last good desired set.
    pub want: BTreeMap<String, Want>,
    pub specs: BTreeMap<String, Arc<InstanceSpec>>,
    pub frozen: BTreeSet<ProcKey>,
    pub config_errors: Vec<String>,
    /// The same problems, each with its sandbox ("" for master.yaml and
    /// the tree's own): state.json's `config_problems`.
    pub config_problems: Vec<(String, String)>,
    pub counters: BTreeMap<ProcKey, Counters>,
    pub unknown_children: u64,
    pub logged_hash: HashMap<String, String>,
    /// Exits of knots that died while no tree ran (from their state dirs),
    /// reported when the instance starts again.
    pub died_away: HashMap<String, (ExitRecord, Option<String>)>,
    /// Knots that reported their end and are still tearing down; their
    /// exit is reaped but is no news.
    pub retiring: HashSet<i32>,
    pub started: SystemTime,
    pub upgrades: u32,
    pub reloads: u32,
    /// When the last (re)load ran.
    pub last_reload: Option<SystemTime>,
    pub shutting_down: bool,
    pub dirty: bool,
    /// When the tree first went idle with unwritten changes, and when it
    /// last wrote state.json (see `state::flush_due`).
    pub dirty_since: Option<Instant>,
    pub last_flush: Option<Instant>,
    /// The last write of state.json or metrics.prom failed (retried).
    pub flush_failing: bool,
    pub replan: bool,
    /// How long the last upgrade took until we supervised again.
    pub last_upgrade_ms: Option<f64>,
    pub ready_sent: bool,
    /// Instances with a connect probe (`!Tcp`, `!Http`) under way: the
    /// only ones whose timers the loop looks at.
    pub probing: BTreeSet<String>,
    /// The commands of `!Exec` probes (our children) not reaped yet, and
    /// their instances (see `tree::exec_probe`).
    pub probe_pids: HashMap<i32, String>,
    /// Stopped rollouts, by process (see `tree::rollout`).
    pub halted: BTreeMap<ProcKey, Halt>,
    /// The restart generation wanted of each instance (`cairn restart`;
    /// `plan::Want::generation`); absent: 0.
    pub generations: BTreeMap<String, u64>,
    /// Answers to requests (`tree::requests`), written once state.json
    /// shows what they asked for.
    pub replies: Vec<(String, super::request::Reply)>,
    /// The kernel handles.
    pub io: Io,
}

/// The kernel handles the tree drives its work through: its poller and
/// signalfd, cgroups, listening sockets, checked host dirs, log files,
/// cairn-init and the filters knots inherit, and facts about its own
/// process. Every system call the tree makes goes through one of these.
pub struct Io {
    pub cgroups: Option<Cgroups>,
    pub poller: Poller,
    pub sigfd: OwnedFd,
    /// Each sandbox's log file, opened on first use.
    pub sandbox_logs: HashMap<String, (PathBuf, Option<std::fs::File>)>,
    pub sockets: Sockets,
    /// The binary to exec for upgrades (its installed path) and our argv.
    pub exe: PathBuf,
    pub args: Vec<String>,
    /// systemd's notify socket, if we run under systemd.
    pub notify: Option<Notify>,
    /// cairn-init in a sealed memfd, for the knots to exec.
    pub init: Option<OwnedFd>,
    /// The most open files we may have (the hard RLIMIT_NOFILE, which our
    /// soft limit was raised to).
    pub fd_limit: u64,
    /// Starts a knot (see `Options::launch`).
    pub launch: Launch,
    /// Starts `!Exec` probes (see `Options::join`).
    pub join: crate::protocol::Joiner,
    /// System call filters, one per distinct profile, inherited by knots.
    pub filters: crate::sys::seccomp::Cache,
    /// Held for the tree's life: the pid file lock.
    pub _lock: std::fs::File,
    /// The runtime dir, checked once: state.json and metrics.prom are
    /// replaced relative to it.
    pub runtime: HostDir,
    /// The state dir, checked once: knots make their instance dirs below
    /// this fd.
    pub state: HostDir,
    /// Ours, which knots inherit (workloads are reset to 0 from it).
    pub oom_score_adj: i32,
    /// Our pid as /proc numbers it (see `protocol::Context::tree_pid`).
    pub proc_pid: i32,
    /// Cgroup leaves of removed instances that something still held
    /// (EBUSY), tried again from the loop (see `tree::leaves`).
    pub leaves: Leaves,
    /// The stdio-log-dir, checked (and made) when a knot first needs it:
    /// knots open their sandbox's stdio log below it (see
    /// `protocol::Context::stdio_dir_fd`).
    pub stdio_dir: Option<HostDir>,
    /// Our own network namespace, opened when a probe first has to enter
    /// a bridged container's, to come back to.
    pub home_netns: Option<OwnedFd>,
}
