//! One supervised instance as the event loop holds it.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::spec::InstanceSpec;

use super::lifecycle::{Life, Policy, State};
use super::plan::{Have, ProcKey};
use super::state::{InstanceInfo, LastExit, rfc3339};

pub struct Instance {
    pub spec: Arc<InstanceSpec>,
    pub hash: String,
    /// The restart generation it was started as (`plan::Want::generation`).
    pub generation: u64,
    pub key: ProcKey,
    pub life: Life,
    /// From the spec; `setup_timeout` is master.yaml's, put in at each
    /// step of the table (`Tree::event`), so a reload changes it for every
    /// instance's next start.
    pub policy: Policy,
    /// The knot's host pid while it lives.
    pub pid: Option<i32>,
    /// Its start time in clock ticks since boot (identity check).
    pub start_ticks: Option<u64>,
    /// Read end of the ready pipe, while the knot has not reported.
    pub ready: Option<OwnedFd>,
    /// For an adopted knot that is not our child: readable when it exits.
    pub pidfd: Option<OwnedFd>,
    pub token: u64,
    /// When the instance entered its current state.
    pub since: SystemTime,
    /// Knots started for this instance (restarts = spawns - 1).
    pub spawns: u32,
    pub last_exit: Option<LastExit>,
    /// The config to start in its place once it has stopped, while the
    /// table says a replacement follows the stop (`Then::Replace`).
    pub pending: Option<(Arc<InstanceSpec>, String)>,
    /// Why the instance is `failed`.
    pub error: Option<String>,
    /// A knot of this instance got its workload running, so the cgroup
    /// leaf exists with this config's limits: a restart only joins it. (A
    /// changed config is a new instance, after the old leaf is removed.)
    pub leaf_ready: bool,
    /// The readiness probe, while one runs (`tree::probe`).
    pub probe: Option<Box<super::probe::Probe>>,
    /// `ready: !Notify`: the notify socket of the current start, while
    /// its knot lives (`tree::sdnotify`).
    pub notify: Option<Box<super::sdnotify::NotifySock>>,
}

pub fn policy_of(spec: &InstanceSpec) -> Policy {
    Policy {
        ready_timeout: spec
            .service
            .ready
            .as_ref()
            .map(|_| Duration::from_millis(spec.service.ready_timeout_ms)),
        ..Policy::new(
            Duration::from_millis(spec.restart_timeout_ms),
            Duration::from_millis(spec.kill_timeout_ms),
        )
    }
}

impl Instance {
    pub fn new(spec: Arc<InstanceSpec>, hash: String, token: u64) -> Instance {
        let key = (spec.sandbox.clone(), spec.process.clone());
        let policy = policy_of(&spec);
        Instance {
            spec,
            hash,
            generation: 0,
            key,
            life: Life::new(),
            policy,
            pid: None,
            start_ticks: None,
            ready: None,
            pidfd: None,
            token,
            since: SystemTime::now(),
            spawns: 0,
            last_exit: None,
            pending: None,
            error: None,
            leaf_ready: false,
            probe: None,
            notify: None,
        }
    }

    pub fn have(&self) -> Have {
        Have {
            process: self.key.clone(),
            hash: self.hash.clone(),
            generation: self.generation,
            state: self.life.state,
            stopping: self.life.stop_requested(),
            replacing: self.life.replacing(),
            fresh_replacement: self.life.replacement,
        }
    }

    /// `ok` or `failing N/M` while running with a health check.
    pub fn health(&self) -> Option<String> {
        let h = self.spec.service.health.as_ref()?;
        if self.life.state != State::Running {
            return None;
        }
        let n = self
            .probe
            .as_ref()
            .filter(|p| p.health)
            .map_or(0, |p| p.failures);
        Some(if n == 0 {
            "ok".to_string()
        } else {
            format!("failing {n}/{}", h.failures)
        })
    }

    pub fn restarts(&self) -> u32 {
        self.spawns.saturating_sub(1)
    }

    /// The state.json view. `now`/`wall` convert deadlines to wall time.
    pub fn info(&self, now: Instant, wall: SystemTime) -> InstanceInfo {
        let next_start = match (self.life.state, self.life.deadline) {
            (State::Backoff, Some(d)) => Some(rfc3339(wall + d.saturating_duration_since(now))),
            _ => None,
        };
        InstanceInfo {
            name: self.spec.name.clone(),
            sandbox: self.spec.sandbox.clone(),
            process: self.spec.process.clone(),
            index: self.spec.index,
            state: self.life.state.as_str().to_string(),
            pid: self.pid,
            workload_pid: None,
            restarts: self.restarts(),
            since: rfc3339(self.since),
            ready_since: (self.life.state == State::Running).then(|| rfc3339(self.since)),
            health: self.health(),
            image: self.spec.image.clone(),
            config_hash: self.hash.clone(),
            last_exit: self.last_exit.clone(),
            next_start,
            error: self.error.clone(),
            status: self.notify.as_ref().and_then(|n| n.status.clone()),
            cgroup: self.spec.host.cgroup.clone(),
            cpu_seconds: None,
            memory_bytes: None,
        }
    }
}
