//! What the tree tells the world: `<runtime-dir>/state.json` (read by
//! `cairn ps`) and `<runtime-dir>/metrics.prom` (Prometheus textfile).
//! Both are replaced atomically when something changed, batched and rate
//! limited (`flush_due`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys::cgroup::Cgroups;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub tree: TreeInfo,
    pub instances: Vec<InstanceInfo>,
    /// Config problems found by the last (re)load; the instances of the
    /// affected processes kept their previous config.
    #[serde(default)]
    pub config_errors: Vec<String>,
    /// Where instance cgroups live (for `ps` to read CPU and memory).
    #[serde(default)]
    pub cgroups: Option<Cgroups>,
    /// Rollouts in progress, and stopped ones.
    #[serde(default)]
    pub rollouts: Vec<super::rollout::RolloutInfo>,
    /// `config_errors`, each with the sandbox it belongs to ("" for
    /// master.yaml and the tree's own), for `--wait` to tell whose.
    #[serde(default)]
    pub config_problems: Vec<ConfigProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    pub sandbox: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeInfo {
    pub pid: i32,
    pub version: String,
    pub started: String,
    pub upgrades: u32,
    pub reloads: u32,
    /// Milliseconds from the upgrade signal to the new image supervising.
    #[serde(default)]
    pub last_upgrade_ms: Option<f64>,
    pub config: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    /// Shell-style status (128+N for signal N).
    pub status: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// Counted as a failure (not TERM from the tree, not a normal code).
    pub failure: bool,
    pub at: String,
    /// Why the container could not start, when it could not.
    pub error: Option<String>,
    /// The step of the start that failed and its errno, when the knot
    /// said (`protocol::Failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<crate::protocol::Failure>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub name: String,
    pub sandbox: String,
    pub process: String,
    pub index: u32,
    pub state: String,
    /// The knot's host pid.
    pub pid: Option<i32>,
    /// The workload's host pid (`ps` fills it in).
    #[serde(default)]
    pub workload_pid: Option<i32>,
    pub restarts: u32,
    /// When the instance entered its current state.
    pub since: String,
    /// In `running`: since when it is ready (its readiness probe passed,
    /// or its program runs when it has none).
    #[serde(default)]
    pub ready_since: Option<String>,
    /// In `running`, with a `health-check`: `ok`, or `failing N/M` (N
    /// failures in a row of the M that restart it); else null.
    #[serde(default)]
    pub health: Option<String>,
    pub image: String,
    pub config_hash: String,
    pub last_exit: Option<LastExit>,
    /// In `backoff`: when the next start is due.
    #[serde(default)]
    pub next_start: Option<String>,
    /// In `failed`: why.
    #[serde(default)]
    pub error: Option<String>,
    /// `ready: !Notify`: the service's last `STATUS=` (escaped, capped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The cgroup leaf, when cgroups are on.
    #[serde(default)]
    pub cgroup: Option<String>,
    /// Filled by `ps` from the cgroup.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// Counters per process, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub started: u64,
    pub deaths: u64,
    pub failures: u64,
    /// Starts refused for good (`protocol::Failure::permanent`).
    #[serde(default)]
    pub refused: u64,
    /// Rollouts of this process that stopped on a failed replacement.
    #[serde(default)]
    pub rollouts_stopped: u64,
    /// Starts of an instance that had run before with the same config.
    #[serde(default)]
    pub restarts: u64,
    /// Deaths by the OOM killer.
    #[serde(default)]
    pub oom_kills: u64,
    /// Kills for a failing health check.
    #[serde(default)]
    pub health_kills: u64,
    /// Datagrams on `!Notify` sockets refused: their senders were not
    /// processes of the instance.
    #[serde(default)]
    pub notify_refused: u64,
}

pub use crate::text::rfc3339;

/// How long changes wait before state.json is written: a restart (workload
/// gone, new container started, workload running) becomes one write after
/// the new workload runs instead of two in its way.
pub const FLUSH_BATCH: Duration = Duration::from_millis(5);
/// The shortest time between two writes while changes keep coming (a cold
/// start of 1000 instances: about 25 writes of the whole state, not 200).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// The state files, in the runtime dir.
pub const STATE_FILE: &str = "state.json";
pub const METRICS_FILE: &str = "metrics.prom";

/// After a failed write, the next try.
pub const FLUSH_RETRY: Duration = Duration::from_secs(1);

/// When state.json is written, given when the tree first went idle with
/// changes, when it last wrote it, and whether that write failed.
pub fn flush_due(dirty_since: Instant, last_flush: Option<Instant>, failing: bool) -> Instant {
    let batched = dirty_since + FLUSH_BATCH;
    let gap = if failing { FLUSH_RETRY } else { FLUSH_INTERVAL };
    match last_flush {
        Some(last) => batched.max(last + gap),
        None => batched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn flush_is_batched_and_rate_limited() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // The first change: written after the batch window.
        assert_eq!(flush_due(t0, None, false), t0 + FLUSH_BATCH);
        // After a quiet period: the same.
        assert_eq!(
            flush_due(t0 + ms(1000), Some(t0), false),
            t0 + ms(1000) + FLUSH_BATCH
        );
        // Changes right after a write wait for the interval.
        assert_eq!(flush_due(t0 + ms(1), Some(t0), false), t0 + FLUSH_INTERVAL);
        // After a failed write: the next try a second later, not at once.
        assert_eq!(flush_due(t0 + ms(1), Some(t0), true), t0 + FLUSH_RETRY);
        assert_eq!(
            flush_due(t0 + FLUSH_INTERVAL, Some(t0), false),
            t0 + FLUSH_INTERVAL + FLUSH_BATCH
        );
    }
}
