//! Publishing the tree's state: `state.json` and `metrics.prom` in the
//! runtime dir, written from the supervisor's state (their shapes are in
//! `state`).

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use super::lifecycle::State;
use super::plan::ProcKey;
use super::state::{FLUSH_RETRY, METRICS_FILE, STATE_FILE, Snapshot, TreeInfo, rfc3339};
use super::supervisor::Tree;
use crate::sys::process;

impl Tree {
    /// Write state.json and metrics.prom if anything changed. A write that
    /// fails (a full disk) leaves the state dirty and is tried again every
    /// `FLUSH_RETRY` until it works: a stale file would show a dead tree's
    /// pid, or instances that are gone, until some later change.
    pub fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let now = Instant::now();
        self.dirty_since = None;
        let have = self.rolling_have();
        self.last_flush = Some(now);
        let wall = SystemTime::now();
        let snap = Snapshot {
            tree: TreeInfo {
                pid: process::getpid(),
                version: crate::version().to_string(),
                started: rfc3339(self.started),
                upgrades: self.upgrades,
                reloads: self.reloads,
                last_upgrade_ms: self.last_upgrade_ms,
                config: self.master_path.display().to_string(),
            },
            instances: self.instances.values().map(|i| i.info(now, wall)).collect(),
            config_errors: self.config_errors.clone(),
            config_problems: self
                .config_problems
                .iter()
                .map(|(sandbox, error)| super::state::ConfigProblem {
                    sandbox: sandbox.clone(),
                    error: error.clone(),
                })
                .collect(),
            cgroups: self.io.cgroups.clone(),
            rollouts: super::rollout::infos(&self.want, &have, &self.halted),
        };
        let mut failed = Vec::new();
        let write = self.io.runtime.write_atomic(STATE_FILE, false, |w| {
            serde_json::to_writer(w, &snap).map_err(std::io::Error::other)
        });
        match write {
            // Answers follow the state that shows what they asked for.
            Ok(()) => self.write_replies(),
            Err(e) => failed.push(e.to_string()),
        }
        self.notify_ready();
        let text = self.metrics_text(&have);
        let write = self.io.runtime.write_atomic(METRICS_FILE, false, |w| {
            std::io::Write::write_all(w, text.as_bytes())
        });
        if let Err(e) = write {
            failed.push(e.to_string());
        }
        if failed.is_empty() {
            if self.flush_failing {
                log::warn!("state.json and metrics.prom are written again");
            }
            self.flush_failing = false;
            return;
        }
        // Logged once per outage, not at every retry.
        if !self.flush_failing {
            for f in &failed {
                log::error!("{f}; trying again every {} s", FLUSH_RETRY.as_secs());
            }
        }
        self.flush_failing = true;
        self.dirty = true;
    }
}

impl Tree {
    /// What the planner sees of the instances of processes that may be
    /// in a rollout (one of theirs runs another config or generation, is
    /// a replacement, or their rollout stopped); nothing when none is: a
    /// flush of a quiet tree copies no instance.
    fn rolling_have(&self) -> BTreeMap<String, super::plan::Have> {
        let mut keys: std::collections::BTreeSet<&ProcKey> = self.halted.keys().collect();
        for (n, i) in &self.instances {
            let changed = self
                .want
                .get(n)
                .is_some_and(|w| w.hash != i.hash || w.generation != i.generation);
            if changed || i.life.replacement || i.life.replacing() {
                keys.insert(&i.key);
            }
        }
        if keys.is_empty() {
            return BTreeMap::new();
        }
        self.instances
            .iter()
            .filter(|(_, i)| keys.contains(&i.key))
            .map(|(n, i)| (n.clone(), i.have()))
            .collect()
    }

    /// metrics.prom's text.
    fn metrics_text(&self, have: &BTreeMap<String, super::plan::Have>) -> String {
        let mut desired: BTreeMap<ProcKey, u64> = BTreeMap::new();
        for w in self.want.values() {
            *desired.entry(w.process.clone()).or_default() += 1;
        }
        let mut by_state: BTreeMap<(ProcKey, State), u64> = BTreeMap::new();
        for i in self.instances.values() {
            *by_state.entry((i.key.clone(), i.life.state)).or_default() += 1;
        }
        let mut config_errors: BTreeMap<String, u64> = BTreeMap::new();
        for e in &self.config_errors {
            *config_errors
                .entry(super::metrics::problem_file(e).to_string())
                .or_default() += 1;
        }
        let version = crate::version();
        super::metrics::render(&super::metrics::Input {
            counters: &self.counters,
            desired,
            by_state,
            rolling: super::rollout::in_progress(&self.want, have),
            halted: self.halted.keys().cloned().collect(),
            config_errors,
            last_reload: self.last_reload.map(|t| (t, self.config_errors.is_empty())),
            unknown_children: self.unknown_children,
            version,
            started: self.started,
            upgrades: self.upgrades,
        })
    }
}
