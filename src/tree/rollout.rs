//! Rollouts as `ps` and the metrics show them: which processes are being
//! rolled out to a new config, and which rollouts stopped, and why. Pure:
//! the planner decides what to replace (`plan`), the table when a
//! replacement is proven (`lifecycle`); this keeps the stops.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::plan::{Have, ProcKey, Want};

/// A stopped rollout: its replacement `instance` failed with `hash`, the
/// config the rollout was bringing. It stays stopped while that instance
/// is still wanted with that config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    pub instance: String,
    pub hash: String,
    /// The restart generation the rollout was bringing (0 for none).
    #[serde(default)]
    pub generation: u64,
    pub reason: String,
    /// Unix milliseconds.
    pub at_unix_ms: u64,
}

impl Halt {
    pub fn new(
        instance: &str,
        (hash, generation): (&str, u64),
        reason: String,
        at: SystemTime,
    ) -> Halt {
        Halt {
            instance: instance.to_string(),
            hash: hash.to_string(),
            generation,
            reason,
            at_unix_ms: at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// Still stopped, unless the config changed since or a new restart
    /// was asked for (the next rollout begins), or the instance is gone
    /// from the config.
    pub fn holds(&self, want: &BTreeMap<String, Want>) -> bool {
        want.get(&self.instance)
            .is_some_and(|w| w.hash == self.hash && w.generation == self.generation)
    }
}

/// One rollout in `state.json` (`ps --json`'s `rollouts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutInfo {
    pub sandbox: String,
    pub process: String,
    /// `in-progress` or `stopped`.
    pub state: String,
    /// Stopped: the replacement that failed.
    #[serde(default)]
    pub instance: Option<String>,
    /// Stopped: why.
    #[serde(default)]
    pub reason: Option<String>,
    /// Stopped: when (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// Instances of the process that run the wanted config and are
    /// proven (ready, and for a replacement ready for `min-ready`), and
    /// instances wanted.
    pub done: u32,
    pub total: u32,
}

/// Which processes are being rolled out: some instance runs another
/// config (or an older generation) than the wanted one, or a replacement
/// has not proven itself.
pub fn in_progress(
    want: &BTreeMap<String, Want>,
    have: &BTreeMap<String, Have>,
) -> BTreeSet<ProcKey> {
    let mut out = BTreeSet::new();
    for (name, h) in have {
        let changed = want.get(name).is_some_and(|w| !super::plan::current(w, h));
        if changed || h.fresh_replacement || h.replacing {
            out.insert(h.process.clone());
        }
    }
    out
}

/// The rollouts to show: the stopped ones, and those in progress.
pub fn infos(
    want: &BTreeMap<String, Want>,
    have: &BTreeMap<String, Have>,
    halted: &BTreeMap<ProcKey, Halt>,
) -> Vec<RolloutInfo> {
    let mut keys = in_progress(want, have);
    keys.extend(halted.keys().cloned());
    keys.into_iter()
        .map(|key| {
            let wanted: Vec<&String> = want
                .iter()
                .filter(|(_, w)| w.process == key)
                .map(|(n, _)| n)
                .collect();
            let done = wanted
                .iter()
                .filter(|n| {
                    have.get(n.as_str()).is_some_and(|h| {
                        super::plan::current(&want[n.as_str()], h)
                            && h.state == super::lifecycle::State::Running
                            && !h.fresh_replacement
                    })
                })
                .count() as u32;
            let halt = halted.get(&key);
            RolloutInfo {
                sandbox: key.0.clone(),
                process: key.1.clone(),
                state: if halt.is_some() {
                    "stopped"
                } else {
                    "in-progress"
                }
                .to_string(),
                instance: halt.map(|h| h.instance.clone()),
                reason: halt.map(|h| h.reason.clone()),
                since: halt.map(|h| {
                    crate::text::rfc3339(
                        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(h.at_unix_ms),
                    )
                }),
                done,
                total: wanted.len() as u32,
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
