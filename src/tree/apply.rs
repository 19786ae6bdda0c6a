//! The tree's effects: (re)load configs, apply the plan, run the actions
//! of the lifecycle table (spawn, TERM, KILL, forget). What knots report
//! is in `events`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::master::Master;
use crate::sys::process;

use super::instance::Instance;
use super::lifecycle::{self, Action, Event, Life, State, Then};
use super::plan::{self, Change, ProcKey, Want};
use super::state::{LastExit, rfc3339};
use super::supervisor::Tree;
use crate::load::desired::{self, Selection};
use crate::load::parse;

impl Tree {
    /// Re-read every config and reconcile. A file that fails keeps the
    /// instances it described running as they are.
    pub fn reload(&mut self) {
        self.reloads += 1;
        self.last_reload = Some(SystemTime::now());
        self.dirty = true;
        if self.reloads > 1 {
            self.notify_reloading();
        }
        let master = match Master::load(&self.master_path) {
            Ok(m) => m,
            Err(p) => {
                for e in p.iter() {
                    log::error!("master config: {e}");
                }
                self.config_errors = p.iter().map(|e| e.to_string()).collect();
                self.config_problems = p.iter().map(|e| (String::new(), e.to_string())).collect();
                return;
            }
        };
        if master.runtime_dir != self.master.runtime_dir
            || master.cgroup_name != self.master.cgroup_name
        {
            log::warn!(
                "runtime-dir and cgroup-name changes need a restart of the tree; keeping the old ones"
            );
        }
        let configs = desired::load_configs(master, &Selection::default());
        // Takes effect at each instance's next start.
        self.master.setup_timeout = configs.master.setup_timeout;
        // (sandbox, or "" for master.yaml and the tree, problem)
        let mut errors: Vec<(String, String)> = Vec::new();
        let mut frozen: BTreeSet<ProcKey> = BTreeSet::new();
        for (sandbox, p) in &configs.problems {
            errors.extend(p.iter().map(|e| (sandbox.clone(), e.to_string())));
            // A sandbox whose files fail: its running instances stay.
            for i in self.instances.values() {
                if &i.key.0 == sandbox || sandbox.is_empty() {
                    frozen.insert(i.key.clone());
                }
            }
        }
        for w in &configs.warnings {
            log::warn!("{w}");
        }
        for (name, sc) in &configs.sandboxes {
            let path = &sc.sandbox.log_file;
            match self.io.sandbox_logs.get(name) {
                Some((p, _)) if p == path => {}
                _ => {
                    self.io
                        .sandbox_logs
                        .insert(name.clone(), (path.clone(), None));
                }
            }
        }
        let mut jobs = Vec::new();
        for sc in configs.sandboxes.values() {
            for e in sc.processes.entries.values() {
                if e.kind.is_daemon() {
                    jobs.push((&sc.sandbox, e));
                }
            }
        }
        let cache = crate::load::parsed::Cache::open(&self.master.runtime_dir);
        let mut loader = parse::Prefetched(parse::load_all(&jobs, &cache));
        let mut want = BTreeMap::new();
        let mut specs = BTreeMap::new();
        let mut failed: Vec<(ProcKey, u32, String)> = Vec::new();
        for (sandbox, e) in &jobs {
            let key = (sandbox.name.clone(), e.name.clone());
            // An instance whose config did not change keeps the spec it
            // has (same hash, same content), and the fresh copy is dropped
            // at once: holding a second copy of every spec until the end of
            // the reload left the heap of a 1000-instance tree 1.9 MiB
            // bigger after its first reload (and upgrade).
            let mut list: Vec<(Arc<crate::spec::InstanceSpec>, String)> = Vec::new();
            let instances = &self.instances;
            let resolved = desired::resolve_entry_each(
                &configs.master,
                sandbox,
                e,
                &mut loader,
                &mut |spec| {
                    let hash = spec.hash();
                    let spec = match instances.get(&spec.name) {
                        Some(i) if i.hash == hash && !i.spec.is_placeholder() => i.spec.clone(),
                        _ => Arc::new(spec),
                    };
                    list.push((spec, hash));
                },
            );
            match resolved {
                Ok(()) => {
                    for (spec, hash) in list {
                        want.insert(
                            spec.name.clone(),
                            Want {
                                process: key.clone(),
                                hash,
                                min_ready: Duration::from_secs_f64(e.min_ready),
                                generation: self.generations.get(&spec.name).copied().unwrap_or(0),
                            },
                        );
                        specs.insert(spec.name.clone(), spec);
                    }
                }
                Err(p) => {
                    errors.extend(p.iter().map(|e| (key.0.clone(), e.to_string())));
                    let first = p.iter().next().map(|e| e.to_string()).unwrap_or_default();
                    failed.push((key.clone(), e.instances, first));
                    frozen.insert(key);
                }
            }
        }
        for (_, e) in &errors {
            log::error!("config: {e}");
        }
        self.want = want;
        self.specs = specs;
        if let Some(short) = self.fd_shortfall() {
            log::error!("{short}");
            errors.push((String::new(), short));
        }
        self.config_errors = errors.iter().map(|(_, e)| e.clone()).collect();
        self.config_problems = errors;
        self.frozen = frozen;
        // Adopted instances whose config did not change take the real spec
        // in place of their placeholder (the others kept theirs above).
        // One that failed for want of it is tried again.
        let mut unheld = Vec::new();
        for (name, i) in self.instances.iter_mut() {
            if let (Some(w), Some(spec)) = (self.want.get(name), self.specs.get(name))
                && w.hash == i.hash
                && !Arc::ptr_eq(&i.spec, spec)
            {
                if i.spec.is_placeholder() && i.life.state == State::Failed {
                    unheld.push(name.clone());
                }
                i.spec = spec.clone();
                i.policy = super::instance::policy_of(spec);
            }
        }
        self.apply_plan();
        self.retry_refused(unheld);
        self.gc_sockets();
        // Parsing every config leaves free memory behind: give it back.
        process::trim_heap();
        // Entries that cannot start show as `failed` where nothing runs.
        for ((sandbox, process), count, why) in failed {
            for index in 0..count {
                let name = format!("{sandbox}/{process}.{index}");
                if let Some(i) = self.instances.get_mut(&name) {
                    if i.life.state == State::Failed {
                        i.error = Some(why.clone());
                    }
                    continue;
                }
                let spec = crate::spec::InstanceSpec::placeholder(&sandbox, &process, index);
                let token = self.new_token();
                let mut inst = Instance::new(Arc::new(spec), String::new(), token);
                inst.life = lifecycle::Life::failed();
                inst.error = Some(why.clone());
                self.by_token.insert(token, name.clone());
                self.instances.insert(name, inst);
            }
        }
    }

    /// A reload tries again the instances whose start was refused for good
    /// (`protocol::Failure::permanent`) with a config that did not change
    /// (the operator may have fixed the image), and `unheld`: adopted ones
    /// refused for want of their config, which has loaded now.
    fn retry_refused(&mut self, unheld: Vec<String>) {
        let mut refused: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, i)| {
                i.life.state == State::Failed
                    && i.last_exit
                        .as_ref()
                        .and_then(|e| e.cause.as_ref())
                        .is_some_and(|c| c.permanent())
            })
            .map(|(n, _)| n.clone())
            .collect();
        refused.extend(unheld);
        for name in refused {
            log::info!("{name}: trying again (reload)");
            if let Some(i) = self.instances.get_mut(&name) {
                i.error = None;
            }
            self.event(&name, Event::Retry);
        }
    }

    /// Compare desired and actual and make the changes.
    pub fn apply_plan(&mut self) {
        // A stopped rollout stays stopped until the config it was bringing
        // changes (or its instance leaves the config): then the next
        // rollout begins.
        let want = &self.want;
        let resumed: Vec<ProcKey> = self
            .halted
            .iter()
            .filter(|(_, h)| !h.holds(want))
            .map(|(k, _)| k.clone())
            .collect();
        for k in resumed {
            self.halted.remove(&k);
            self.dirty = true;
            log::info!(
                "{}/{}: the config changed or a restart was asked for; a new rollout may begin",
                k.0,
                k.1
            );
        }
        let have = self
            .instances
            .iter()
            .map(|(n, i)| (n.clone(), i.have()))
            .collect();
        let halted: BTreeSet<ProcKey> = self.halted.keys().cloned().collect();
        for change in plan::plan(&self.want, &have, &self.frozen, &halted) {
            match change {
                Change::Start(name) => self.start(&name, false),
                Change::Stop(name) => {
                    log::info!("{name}: stopping (removed from the config)");
                    self.event(&name, Event::Stop(Then::Remove));
                }
                Change::Replace(name) => self.replace(&name),
            }
        }
    }

    fn start(&mut self, name: &str, replacement: bool) {
        let (Some(spec), Some(w)) = (self.specs.get(name).cloned(), self.want.get(name).cloned())
        else {
            return;
        };
        self.start_with(name, spec, w.hash, replacement);
    }

    fn start_with(
        &mut self,
        name: &str,
        spec: Arc<crate::spec::InstanceSpec>,
        hash: String,
        replacement: bool,
    ) {
        let token = self.new_token();
        let mut inst = Instance::new(spec, hash, token);
        inst.generation = self.want.get(name).map_or(0, |w| w.generation);
        if replacement {
            inst.life = Life::replacement();
        }
        if let Some((rec, error)) = self.died_away.remove(name) {
            // It ran before this tree, and died while no tree watched it.
            let normal = rec.signal.is_none()
                && error.is_none()
                && inst.spec.normal_exit_codes.contains(&rec.status);
            let c = self.counters.entry(inst.key.clone()).or_default();
            c.deaths += 1;
            if !normal {
                c.failures += 1;
            }
            inst.spawns = 1;
            inst.last_exit = Some(LastExit {
                status: rec.status,
                signal: rec.signal,
                oom_killed: rec.oom_killed,
                failure: !normal,
                at: rfc3339(SystemTime::now()),
                error,
                cause: rec.failure,
            });
            log::warn!(
                "{name}: died while no tree ran (status {}); starting it again",
                rec.status
            );
        }
        self.by_token.insert(token, name.to_string());
        self.instances.insert(name.to_string(), inst);
        self.event(name, Event::Deadline);
    }

    fn replace(&mut self, name: &str) {
        let (Some(spec), Some(w)) = (self.specs.get(name).cloned(), self.want.get(name).cloned())
        else {
            return;
        };
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        if i.hash == w.hash {
            log::info!("{name}: restart requested, restarting");
        } else {
            log::info!(
                "{name}: config changed ({} -> {}), restarting",
                i.hash,
                w.hash
            );
        }
        // Stopped at once when idle, after its knot exits otherwise; then
        // `forget` starts this config in its place.
        i.pending = Some((spec, w.hash));
        self.event(name, Event::Stop(Then::Replace));
    }

    /// Feed one event to an instance's lifecycle and perform its actions.
    pub fn event(&mut self, name: &str, ev: Event) {
        let now = Instant::now();
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let before = i.life.state;
        // Whether a rollout waits on this instance (its replacement coming
        // up, or failing), before the step clears it.
        let in_rollout = i.life.replacement || i.life.replacing();
        // The spec sets the restart numbers, the entry min-ready,
        // master.yaml the setup deadline.
        let min_ready = self.want.get(name).map_or(Duration::ZERO, |w| w.min_ready);
        let policy = lifecycle::Policy {
            setup_timeout: self.master.setup_timeout,
            min_ready,
            ..i.policy
        };
        let was_replacement = i.life.replacement;
        let actions = lifecycle::step(&mut i.life, ev, now, &policy);
        // A replacement that stayed up for min-ready lets its rollout go
        // on (its state stays Running).
        if was_replacement && !i.life.replacement {
            self.replan = true;
            self.dirty = true;
        }
        // A readiness probe runs while Starting, a health check while
        // Running; one whose time is over stops.
        let probing = i.probe.as_ref().is_some_and(|p| {
            let wants = if p.health {
                State::Running
            } else {
                State::Starting
            };
            i.life.state != wants
        });
        let runs_now = before != State::Running
            && i.life.state == State::Running
            && i.spec.service.health.is_some();
        // A rollout's replacement that failed (crashed, was not ready in
        // time, or died within min-ready) stops its rollout.
        let failed_replacement = was_replacement
            && i.life.replacement
            && matches!(i.life.state, State::Backoff | State::Failed)
            && matches!(before, State::Starting | State::Running);
        if i.life.state != before {
            i.since = SystemTime::now();
            self.dirty = true;
            // Only a rollout waits on state changes (its replacement coming
            // up, or failing); planning after every change of every
            // instance would make a cold start quadratic.
            if in_rollout || i.life.replacement || i.life.replacing() {
                self.replan = true;
            }
        }
        if probing {
            self.stop_probe(name);
        }
        if runs_now {
            self.start_health(name);
        }
        if failed_replacement {
            self.halt_rollout(name, before);
        }
        for a in actions {
            match a {
                Action::Spawn => self.spawn(name),
                Action::Term => self.signal(name, libc::SIGTERM),
                Action::Kill => {
                    log::warn!("{name}: still running after kill-timeout; killing");
                    self.signal(name, libc::SIGKILL)
                }
                Action::KillSetup => self.kill_setup(name),
                Action::Probe => self.start_probe(name),
                Action::KillUnready => self.kill_unready(name),
                Action::KillUnhealthy => self.kill_unhealthy(name),
                Action::KillStarved => self.kill_starved(name),
                Action::Forget(then) => self.forget(name, then),
            }
        }
    }

    pub(super) fn signal(&mut self, name: &str, sig: i32) {
        if let Some(pid) = self.instances.get(name).and_then(|i| i.pid) {
            let _ = process::kill(pid, sig);
        }
    }

    /// Close listening sockets that no instance (or pending replacement)
    /// uses any more.
    pub fn gc_sockets(&mut self) {
        let mut used = std::collections::BTreeSet::new();
        for i in self.instances.values() {
            used.extend(super::sockets::keys(&i.spec).into_iter().map(|(k, _, _)| k));
            if let Some((p, _)) = &i.pending {
                used.extend(super::sockets::keys(p).into_iter().map(|(k, _, _)| k));
            }
        }
        self.io.sockets.retain(&used);
    }

    /// The instance is done: stopped for good, or its knot gone to make
    /// way for its replacement (`then`, the table's word).
    fn forget(&mut self, name: &str, then: Then) {
        let pending = self.instances.get_mut(name).and_then(|i| i.pending.take());
        let key = self.instances.get(name).map(|i| i.key.clone());
        let replace = match (then, pending) {
            (Then::Replace, Some(p)) => {
                // Removed from the config while it was being replaced (and
                // not kept by a broken entry, `frozen`): gone for good.
                let wanted =
                    self.want.contains_key(name) || key.is_some_and(|k| self.frozen.contains(&k));
                wanted.then_some(p)
            }
            _ => None,
        };
        self.remove(name, replace.is_none());
        let Some((spec, hash)) = replace else { return };
        if let Some(w) = self.want.get_mut(name) {
            w.hash = hash.clone();
            self.specs.insert(name.to_string(), spec.clone());
        }
        // Its replacement starts with the config the rollout began with,
        // also when that entry's config broke since (frozen): dropping it
        // would leave it neither running nor listed, and a later good
        // config would roll the next instance while this one was down.
        self.start_with(name, spec, hash, true);
    }

    /// Take an instance out of the table and clean up after it.
    fn remove(&mut self, name: &str, drop_state: bool) {
        let Some(i) = self.instances.remove(name) else {
            return;
        };
        self.by_token.remove(&i.token);
        if let Some(pid) = i.pid {
            self.by_pid.remove(&pid);
        }
        if let Some(r) = &i.ready {
            let _ = self.io.poller.delete(r.as_fd());
        }
        if let Some(p) = &i.pidfd {
            let _ = self.io.poller.delete(p.as_fd());
        }
        if let Some(n) = &i.notify {
            let _ = self.io.poller.delete(n.socket.as_fd());
        }
        self.unlink_notify(&i.spec);
        if let Some(leaf) = &i.spec.host.cgroup {
            self.io.leaves.remove(self.io.cgroups.as_ref(), name, leaf);
        }
        if drop_state && !i.spec.host.state_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&i.spec.host.state_dir);
        }
        if i.life.state != State::Failed {
            let msg = format!("{name}: stopped");
            log::info!("{msg}");
            self.sandbox_log(name, &msg);
        }
        self.dirty = true;
        self.replan = true;
    }
}
