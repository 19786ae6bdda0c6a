//! `cairn tree`: setup, the event loop, signals, shutdown.
//!
//! One blocking wait (epoll) on the signalfd and the knots' ready pipes,
//! with the earliest instance deadline as its timeout: an idle tree makes
//! no wakeups at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::LogLevel;
use crate::config::master::Master;
use crate::spec::InstanceSpec;
use crate::sys::cgroup::{self, Cgroups};
use crate::sys::event::Poller;
use crate::sys::fs as sfs;
use crate::sys::process;

use super::instance::Instance;
use super::lifecycle::{Event, State};
use super::plan::{ProcKey, Want};
use super::state::{Counters, Snapshot, TreeInfo, rfc3339};

/// Command-line options of `cairn tree`.
pub struct Options {
    pub config: PathBuf,
    pub log_stderr: bool,
    pub log_level: Option<LogLevel>,
}

/// The epoll token of the signalfd; instances use 1 and up.
const SIGNAL_TOKEN: u64 = 0;

pub struct Tree {
    pub master_path: PathBuf,
    pub master: Master,
    pub cgroups: Option<Cgroups>,
    pub poller: Poller,
    pub sigfd: OwnedFd,
    pub instances: BTreeMap<String, Instance>,
    pub by_pid: HashMap<i32, String>,
    pub by_token: HashMap<u64, String>,
    pub next_token: u64,
    /// The last good desired set.
    pub want: BTreeMap<String, Want>,
    pub specs: BTreeMap<String, Arc<InstanceSpec>>,
    pub frozen: BTreeSet<ProcKey>,
    pub config_errors: Vec<String>,
    pub counters: BTreeMap<ProcKey, Counters>,
    pub unknown_children: u64,
    pub logged_hash: HashMap<String, String>,
    pub started: SystemTime,
    pub upgrades: u32,
    pub reloads: u32,
    pub shutting_down: bool,
    pub dirty: bool,
    pub replan: bool,
    /// Held for the tree's life: the pid file lock.
    pub _lock: std::fs::File,
}

/// Take the pid file lock of `runtime_dir`, or say which tree holds it.
fn lock_pid_file(runtime_dir: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(runtime_dir)
        .map_err(|e| format!("runtime-dir {}: {e}", runtime_dir.display()))?;
    let path = runtime_dir.join("tree.pid");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !sfs::try_lock(f.as_fd()).map_err(|e| format!("{}: {e}", path.display()))? {
        let pid = std::fs::read_to_string(&path).unwrap_or_default();
        return Err(format!(
            "another cairn tree (pid {}) already runs with runtime dir {}",
            pid.trim(),
            runtime_dir.display()
        ));
    }
    f.set_len(0)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&path, format!("{}\n", process::getpid()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(f)
}

pub fn run(opts: Options) -> u8 {
    let master = match Master::load(&opts.config) {
        Ok(m) => m,
        Err(p) => {
            eprintln!("{p}");
            return 1;
        }
    };
    let level = opts.log_level.unwrap_or(master.log_level).to_filter();
    let log_file = (!opts.log_stderr).then_some(master.log_file.as_path());
    if let Err(e) = crate::logger::init(log_file, level) {
        eprintln!("cairn tree: log: {e}");
        return 1;
    }
    match Tree::new(&opts.config, master) {
        Ok(mut tree) => tree.main_loop(),
        Err(e) => {
            log::error!("{e}");
            eprintln!("cairn tree: {e}");
            1
        }
    }
}

impl Tree {
    fn new(master_path: &Path, master: Master) -> Result<Tree, String> {
        let lock = lock_pid_file(&master.runtime_dir)?;
        for d in [&master.state_dir, &master.mount_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        if process::getpid() != 1 {
            // Orphans of our knots come to us, not to the host's init.
            process::set_child_subreaper().map_err(|e| e.to_string())?;
        }
        process::block_all_signals().map_err(|e| e.to_string())?;
        let sigfd = process::signalfd_all().map_err(|e| e.to_string())?;
        let poller = Poller::new().map_err(|e| e.to_string())?;
        poller
            .add(sigfd.as_fd(), SIGNAL_TOKEN)
            .map_err(|e| e.to_string())?;
        let cgroups = match &master.cgroup_name {
            Some(root) => Some(
                cgroup::detect_host(root, &master.cgroup_controllers).map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        log::info!(
            "cairn tree {} starting (pid {}, config {})",
            crate::cli::version(),
            process::getpid(),
            master_path.display()
        );
        Ok(Tree {
            master_path: master_path.to_path_buf(),
            master,
            cgroups,
            poller,
            sigfd,
            instances: BTreeMap::new(),
            by_pid: HashMap::new(),
            by_token: HashMap::new(),
            next_token: 1,
            want: BTreeMap::new(),
            specs: BTreeMap::new(),
            frozen: BTreeSet::new(),
            config_errors: Vec::new(),
            counters: BTreeMap::new(),
            unknown_children: 0,
            logged_hash: HashMap::new(),
            started: SystemTime::now(),
            upgrades: 0,
            reloads: 0,
            shutting_down: false,
            dirty: true,
            replan: false,
            _lock: lock,
        })
    }

    fn main_loop(&mut self) -> u8 {
        self.reload();
        let mut ready = Vec::new();
        loop {
            if self.shutting_down && self.instances.is_empty() {
                return self.finish();
            }
            self.flush();
            let now = Instant::now();
            let timeout = self
                .instances
                .values()
                .filter_map(|i| i.life.deadline)
                .min()
                .map(|d| {
                    let left = d.saturating_duration_since(now);
                    // Round up, so we never wake up a hair early and spin.
                    left.as_millis() as u64 + u64::from(left.subsec_nanos() % 1_000_000 != 0)
                });
            if let Err(e) = self.poller.wait(timeout, &mut ready) {
                log::error!("{e}");
            }
            for token in ready.drain(..) {
                if token == SIGNAL_TOKEN {
                    self.signals();
                } else {
                    self.ready_event(token);
                }
            }
            self.deadlines();
            if self.replan && !self.shutting_down {
                self.replan = false;
                self.apply_plan();
            }
        }
    }

    fn signals(&mut self) {
        while let Ok(Some(si)) = process::read_signal(self.sigfd.as_fd()) {
            match si.signo {
                libc::SIGCHLD => self.reap(),
                libc::SIGHUP => {
                    log::info!("SIGHUP: reloading configs");
                    self.reload();
                }
                libc::SIGQUIT => {
                    log::info!("SIGQUIT: reloading configs");
                    self.reload();
                }
                libc::SIGTERM | libc::SIGINT => self.shutdown(),
                _ => {}
            }
        }
    }

    fn reap(&mut self) {
        while let Some((pid, exit)) = process::reap_any() {
            match self.by_pid.remove(&pid) {
                Some(name) => self.knot_exited(&name, exit),
                None => self.unknown_children += 1,
            }
        }
    }

    fn deadlines(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, i)| i.life.deadline.is_some_and(|d| d <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.event(&name, Event::Deadline);
        }
    }

    fn shutdown(&mut self) {
        if self.shutting_down {
            log::warn!("second stop signal: killing every instance now");
            for i in self.instances.values() {
                if let Some(pid) = i.pid {
                    let _ = process::kill(pid, libc::SIGKILL);
                }
            }
            return;
        }
        log::info!("stopping every instance");
        self.shutting_down = true;
        let names: Vec<String> = self.instances.keys().cloned().collect();
        for name in names {
            if let Some(i) = self.instances.get_mut(&name) {
                i.pending = None;
                i.drop_state = true;
            }
            self.event(&name, Event::Stop);
        }
        self.dirty = true;
    }

    /// Everything stopped: remove what we made and leave.
    fn finish(&mut self) -> u8 {
        if let Some(cg) = &self.cgroups {
            for h in &cg.hierarchies {
                let _ = std::fs::remove_dir(h.dir(&cg.root, None));
            }
        }
        for f in [
            self.master.state_file(),
            self.master.metrics_file(),
            self.master.pid_file(),
        ] {
            let _ = std::fs::remove_file(f);
        }
        log::info!("all instances stopped; exiting");
        0
    }

    /// Write state.json and metrics.prom if anything changed.
    pub fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let now = Instant::now();
        let wall = SystemTime::now();
        let snap = Snapshot {
            tree: TreeInfo {
                pid: process::getpid(),
                version: crate::cli::version().to_string(),
                started: rfc3339(self.started),
                upgrades: self.upgrades,
                reloads: self.reloads,
                config: self.master_path.display().to_string(),
            },
            instances: self.instances.values().map(|i| i.info(now, wall)).collect(),
            config_errors: self.config_errors.clone(),
            cgroups: self.cgroups.clone(),
        };
        match serde_json::to_vec_pretty(&snap) {
            Ok(json) => {
                if let Err(e) = sfs::write_atomic(&self.master.state_file(), &json, false) {
                    log::error!("{}: {e}", self.master.state_file().display());
                }
            }
            Err(e) => log::error!("state.json: {e}"),
        }
        let mut running: BTreeMap<ProcKey, u64> = BTreeMap::new();
        for i in self.instances.values() {
            let r = running.entry(i.key.clone()).or_default();
            if i.life.state == State::Running {
                *r += 1;
            }
        }
        let text = super::state::metrics(&self.counters, &running, self.unknown_children);
        if let Err(e) = sfs::write_atomic(&self.master.metrics_file(), text.as_bytes(), false) {
            log::error!("{}: {e}", self.master.metrics_file().display());
        }
    }
}
