//! `cairn tree`: setup, the event loop, signals, shutdown.
//!
//! One blocking wait (epoll) on the signalfd and the knots' ready pipes,
//! with the earliest instance deadline as its timeout: an idle tree makes
//! no wakeups at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::config::LogLevel;
use crate::config::master::Master;
use crate::sys::cgroup;
use crate::sys::event::Poller;
use crate::sys::hostfs::HostDir;
use crate::sys::{process, signal};

use super::leaves::{self, Leaves};
use super::lifecycle::Event;
use super::probe::{KIND_FD_PROBE, KIND_PIDFD, KIND_READY};
use super::request::Kind;
use super::supervisor::{Io, Tree};

/// Command-line options of `cairn tree`.
pub struct Options {
    pub config: PathBuf,
    pub log_stderr: bool,
    pub log_level: Option<LogLevel>,
    /// Starts a knot (`knot::spawn`; the tree knows the knot only
    /// through `protocol`).
    pub launch: crate::protocol::Launch,
    /// Starts `!Exec` probes inside instances (`knot::join::JOINER`).
    pub join: crate::protocol::Joiner,
}

/// Why the tree could not start; each names the step or path.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// fds, limits, signals, the poller, the crash handler, cgroups: the
    /// call names itself and its target.
    #[error("{0}")]
    Sys(#[from] crate::sys::Error),
    /// One of cairn's own dirs failed the rules (the error names it).
    #[error("{0}")]
    Dir(#[from] crate::sys::hostfs::Error),
    #[error("{}: could not be created", .0.display())]
    NotCreated(PathBuf),
    #[error("{0}")]
    HostDirs(#[from] super::hostdirs::HostDirsError),
    #[error("{0}")]
    Handoff(#[from] super::handoff::HandoffError),
    #[error("own binary: {0}")]
    OwnBinary(std::io::Error),
    #[error("{0} (cairn-init runs from a memfd; a host with vm.memfd_noexec = 2 forbids that)")]
    Init(crate::sys::Error),
}

/// The epoll token of the signalfd; instances use 1 and up.
const SIGNAL_TOKEN: u64 = 0;

pub fn run(opts: Options) -> u8 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "cairn tree: must run as root (it makes namespaces, mounts and cgroups for its containers)"
        );
        return 1;
    }
    let master = match Master::load(&opts.config) {
        Ok(m) => m,
        Err(p) => {
            for e in p.iter() {
                eprintln!("{}", crate::text::escape(&e.to_string()));
            }
            return 1;
        }
    };
    // Before anything is opened or started (the log file included): every
    // dir we write into as root must be root's alone.
    if let Err(e) = super::hostdirs::refuse_unsafe(&master, super::hostdirs::Scope::Tree) {
        eprintln!("cairn tree: {e}");
        return 1;
    }
    let level = opts.log_level.unwrap_or(master.log_level).to_filter();
    // Also at each start of a new image after an upgrade: the journal
    // stream (fd 2 and JOURNAL_STREAM) survives exec.
    let journal = master.log_journal && crate::logger::stderr_is_journal();
    let target = crate::logger::target(
        opts.log_stderr,
        master.syslog_facility.map(|f| f.code()),
        journal,
        &master.syslog_name,
        &master.log_file,
    );
    if let Err(e) = crate::logger::init(target, level) {
        eprintln!("cairn tree: log: {}", crate::text::escape(&e.to_string()));
        return 1;
    }
    match Tree::new(&opts.config, master, opts.launch, opts.join) {
        Ok(mut tree) => tree.run_guarded(),
        Err(e) => {
            // A second tree refused by the first one's lock writes nothing
            // into that tree's log: the refusal is this command's, on its
            // stderr.
            let refused = matches!(
                e,
                TreeError::HostDirs(super::hostdirs::HostDirsError::Running { .. })
            );
            if !refused {
                log::error!("{e}");
            }
            eprintln!("cairn tree: {}", crate::text::escape(&e.to_string()));
            1
        }
    }
}

impl Tree {
    fn new(
        master_path: &Path,
        master: Master,
        launch: crate::protocol::Launch,
        join: crate::protocol::Joiner,
    ) -> Result<Tree, TreeError> {
        // Whatever we inherited (from a shell, a hand-off we may fail to
        // read) must not leak into anything we exec (invariant 4).
        crate::sys::fd::cloexec_from(3)?;
        // Every instance holds a few fds here (its ready pipe, a pidfd, its
        // sockets) and a start needs a few more; a shell's soft limit of
        // 1024 ran out at a few hundred instances. The hard limit is what
        // the host allows us (LimitNOFILE= under systemd).
        let fd_limit = crate::sys::rlimit::raise_soft_to_hard(
            crate::sys::rlimit::RLIMIT_NOFILE,
            "RLIMIT_NOFILE",
        )?;
        let handoff = super::handoff::take();
        let own_dir = |d: &Path| {
            HostDir::open(d, true)?.ok_or_else(|| TreeError::NotCreated(d.to_path_buf()))
        };
        let runtime = own_dir(&master.runtime_dir)?;
        let lock = match &handoff {
            Some(Ok(h)) => h.lock_file()?,
            _ => super::hostdirs::lock_pid_file(&runtime)?,
        };
        let state = own_dir(&master.state_dir)?;
        own_dir(&master.mount_dir)?;
        if process::getpid() != 1 {
            // Orphans of our knots come to us, not to the host's init.
            process::set_child_subreaper()?;
        }
        // The OOM killer picks workloads, not their supervisors: the tree
        // and every knot (which inherit this) are exempt, workloads are
        // set back to 0. Best effort: it needs CAP_SYS_RESOURCE.
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", "-1000") {
            log::warn!("/proc/self/oom_score_adj: {e}");
        }
        let oom_score_adj = crate::sys::proc::oom_score_adj().unwrap_or(-1);
        signal::block_all_signals()?;
        let sigfd = signal::signalfd_all()?;
        // The installed path, even if the file was replaced since (then
        // /proc/self/exe reads "... (deleted)").
        let exe = std::env::current_exe().map_err(TreeError::OwnBinary)?;
        let exe = PathBuf::from(exe.to_string_lossy().trim_end_matches(" (deleted)"));
        let args: Vec<String> = std::env::args().collect();
        let mut env: Vec<String> = std::env::vars()
            .filter(|(k, _)| k != super::handoff::ENV && k != super::recover::RECOVER_ENV)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(format!("{}=1", super::recover::RECOVER_ENV));
        crate::sys::crash::reexec_on_fatal(&exe.display().to_string(), &args, &env)?;
        let poller = Poller::new()?;
        poller.add(sigfd.as_fd(), SIGNAL_TOKEN)?;
        let cgroups = match &master.cgroup_name {
            Some(root) => Some(cgroup::detect_host(root, &master.cgroup_controllers)?),
            None => None,
        };
        log::info!(
            "cairn tree {} starting (pid {}, config {})",
            crate::version(),
            process::getpid(),
            master_path.display()
        );
        let mut tree = Tree {
            master_path: master_path.to_path_buf(),
            master,
            instances: BTreeMap::new(),
            by_pid: HashMap::new(),
            by_token: HashMap::new(),
            next_token: 1,
            want: BTreeMap::new(),
            specs: BTreeMap::new(),
            frozen: BTreeSet::new(),
            config_errors: Vec::new(),
            config_problems: Vec::new(),
            counters: BTreeMap::new(),
            unknown_children: 0,
            logged_hash: HashMap::new(),
            retiring: Default::default(),
            died_away: HashMap::new(),
            started: SystemTime::now(),
            upgrades: 0,
            reloads: 0,
            last_reload: None,
            shutting_down: false,
            dirty: true,
            dirty_since: None,
            last_flush: None,
            flush_failing: false,
            replan: false,
            last_upgrade_ms: None,
            ready_sent: false,
            probing: BTreeSet::new(),
            probe_pids: HashMap::new(),
            halted: BTreeMap::new(),
            generations: BTreeMap::new(),
            replies: Vec::new(),
            io: Io {
                cgroups,
                poller,
                sigfd,
                sandbox_logs: HashMap::new(),
                sockets: Default::default(),
                exe,
                args,
                notify: super::notify::Notify::from_env(),
                // Every workload's execve goes through cairn-init (so no
                // workload can reach this binary through /proc/self/exe):
                // without it nothing starts.
                init: crate::sys::embedded::init_memfd().map_err(TreeError::Init)?,
                fd_limit,
                launch,
                join,
                filters: Default::default(),
                _lock: lock,
                runtime,
                state,
                oom_score_adj,
                proc_pid: crate::sys::proc::own_pid_in_proc(),
                stdio_dir: None,
                leaves: Leaves::default(),
                home_netns: None,
            },
        };
        match handoff {
            Some(Ok(h)) => tree.restore(h),
            Some(Err(e)) => {
                log::error!("{e}; recovering from the cgroups and state dirs instead");
                tree.recover();
            }
            None => {
                if std::env::var_os(super::recover::RECOVER_ENV).is_some() {
                    log::error!("restarted after a crash; adopting the running instances");
                }
                tree.recover();
            }
        }
        Ok(tree)
    }

    pub fn new_token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    /// Put an instance's ready pipe and pidfd into the poller.
    pub fn watch(&self, inst: &mut super::instance::Instance) {
        if let Some(r) = &inst.ready
            && let Err(e) = self
                .io
                .poller
                .add(r.as_fd(), Self::token_of(inst.token, KIND_READY))
        {
            log::error!("{}: {e}", inst.spec.name);
        }
        if let Some(p) = &inst.pidfd
            && let Err(e) = self
                .io
                .poller
                .add(p.as_fd(), Self::token_of(inst.token, KIND_PIDFD))
        {
            log::error!("{}: {e}", inst.spec.name);
        }
        if let Some(n) = &inst.notify
            && let Err(e) = self
                .io
                .poller
                .add(n.socket.as_fd(), Self::token_of(inst.token, KIND_FD_PROBE))
        {
            log::error!("{}: {e}", inst.spec.name);
        }
        if let Some(p) = inst.probe.as_ref().and_then(|p| p.pipe.as_ref())
            && let Err(e) = self
                .io
                .poller
                .add(p.as_fd(), Self::token_of(inst.token, KIND_FD_PROBE))
        {
            log::error!("{}: {e}", inst.spec.name);
        }
    }

    /// The main loop, with a net: a panic re-execs the tree (hand-off
    /// first, plain recovery if that fails) instead of orphaning anything.
    fn run_guarded(&mut self) -> u8 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.reload();
            self.requests_at_start(self.last_upgrade_ms.is_none());
            self.main_loop()
        }));
        match r {
            Ok(code) => code,
            Err(_) => {
                log::error!("panic in the tree; re-executing to recover");
                let why = self.upgrade(process::monotonic_ns());
                log::error!("{why}");
                // The hand-off failed: the crash path (plain re-exec and
                // adoption) is what SIGABRT's handler does.
                let _ = process::kill(process::getpid(), libc::SIGABRT);
                1
            }
        }
    }

    fn main_loop(&mut self) -> u8 {
        let mut ready = Vec::new();
        loop {
            if self.shutting_down && self.instances.is_empty() {
                return self.finish();
            }
            // Work already waiting is done first; state.json is written once
            // a burst (1000 instances starting) has been handled, right
            // before the tree would sleep.
            if let Err(e) = self.io.poller.wait(Some(0), &mut ready) {
                log::error!("{e}");
            }
            if ready.is_empty() {
                let now = Instant::now();
                let mut flush_at = None;
                // Twice: a write that failed leaves the state dirty, to be
                // tried again later.
                for _ in 0..2 {
                    if !self.dirty {
                        break;
                    }
                    let since = *self.dirty_since.get_or_insert(now);
                    let due = super::state::flush_due(since, self.last_flush, self.flush_failing);
                    if now >= due {
                        self.flush();
                    } else {
                        flush_at = Some(due);
                        break;
                    }
                }
                let timeout = self
                    .instances
                    .values()
                    .filter_map(|i| i.life.deadline)
                    .chain(flush_at)
                    .chain(self.io.leaves.next_try())
                    .chain(self.next_probe_at())
                    .chain(self.next_watchdog_at())
                    .min()
                    .map(|d| {
                        let left = d.saturating_duration_since(now);
                        // Round up, so we never wake up a hair early and spin.
                        left.as_millis() as u64 + u64::from(left.subsec_nanos() % 1_000_000 != 0)
                    });
                if let Err(e) = self.io.poller.wait(timeout, &mut ready) {
                    log::error!("{e}");
                }
            }
            for token in ready.drain(..) {
                if token == SIGNAL_TOKEN {
                    self.signals();
                } else {
                    match token & 3 {
                        KIND_READY => self.ready_event(token >> 2),
                        KIND_PIDFD => self.pidfd_event(token >> 2),
                        _ => self.probe_event(token),
                    }
                }
            }
            self.deadlines();
            if self.replan && !self.shutting_down {
                self.replan = false;
                self.apply_plan();
                self.gc_sockets();
            }
        }
    }

    fn signals(&mut self) {
        while let Ok(Some(si)) = signal::read_signal(self.io.sigfd.as_fd()) {
            match si.signo {
                libc::SIGCHLD => self.reap(),
                libc::SIGHUP => {
                    // Logs are reopened too, for logrotate.
                    crate::logger::reopen();
                    for (_, f) in self.io.sandbox_logs.values_mut() {
                        *f = None;
                    }
                    log::info!("SIGHUP: reloading configs");
                    // Taken before the load: each asked for one that
                    // begins after its config was written.
                    let asked = self.take_requests(Kind::Reload);
                    self.reload();
                    for (name, _) in asked {
                        self.answer(name, None);
                    }
                }
                libc::SIGUSR1 => self.restart_requests(),
                libc::SIGQUIT => {
                    log::info!("SIGQUIT: upgrading in place");
                    let began = process::monotonic_ns();
                    self.flush();
                    // Answered by the new image, once it supervises.
                    let asked = self.take_requests(Kind::Upgrade);
                    for (name, _) in &asked {
                        self.answer(name.clone(), None);
                    }
                    let why = self.upgrade(began);
                    log::error!("{why}");
                    for (name, reply) in self.replies.iter_mut() {
                        if asked.iter().any(|(n, _)| n == name) {
                            reply.error = Some(why.clone());
                        }
                    }
                }
                libc::SIGTERM | libc::SIGINT => self.shutdown(),
                _ => {}
            }
        }
    }

    pub(super) fn reap(&mut self) {
        while let Some((pid, exit)) = process::reap_any() {
            if self.retiring.remove(&pid) {
                continue;
            }
            if let Some(name) = self.probe_pids.remove(&pid) {
                self.exec_probe_exited(&name, pid, exit);
                continue;
            }
            match self.by_pid.remove(&pid) {
                Some(name) => self.knot_exited(&name, exit),
                None => {
                    self.unknown_children += 1;
                    self.dirty = true;
                }
            }
        }
    }

    fn deadlines(&mut self) {
        let now = Instant::now();
        if !self.probing.is_empty() {
            self.probe_timers(now);
        }
        self.watchdogs(now);
        if !self.io.leaves.is_empty() {
            let in_use = leaves::in_use(&self.instances);
            self.io.leaves.retry(self.io.cgroups.as_ref(), &in_use, now);
        }
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
}

impl Tree {
    /// Tell systemd we are ready, once no instance is settling: each one
    /// runs, backs off, has failed, or has outlived its setup deadline (a
    /// knot stuck in setup holds readiness up for setup-timeout at most).
    pub fn notify_ready(&mut self) {
        if self.ready_sent {
            return;
        }
        if self.instances.values().any(|i| i.life.settling()) {
            return;
        }
        self.ready_sent = true;
        if let Some(n) = &self.io.notify {
            n.send(&format!(
                "READY=1\nMAINPID={}\nSTATUS=supervising {} instances",
                crate::sys::process::getpid(),
                self.instances.len()
            ));
        }
    }

    /// Around a reload: RELOADING=1 now, READY=1 when it is done.
    pub fn notify_reloading(&mut self) {
        if let Some(n) = &self.io.notify {
            let usec = crate::sys::process::monotonic_ns() / 1000;
            n.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
        }
        self.ready_sent = false;
    }
}
