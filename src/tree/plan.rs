//! The reload planner: a pure function from the desired instances and the
//! actual ones to the changes to make. Rolling rule: changed instances of
//! one process are replaced one at a time, the next only when the previous
//! one is ready again and has stayed ready for the entry's `min-ready`
//! (until then it is a `fresh_replacement`); a rollout whose replacement
//! fails is stopped (`halted`) and replaces nothing more that runs until
//! the next config change (a broken new config never takes down every
//! instance). A restart without a config change (`cairn restart`) is a
//! higher `generation` wanted than the instance has: it is rolled out by
//! the same rule, the instance keeping its config.

use std::collections::{BTreeMap, BTreeSet};

use super::lifecycle::State;

/// `(sandbox, process)`: the unit of rolling restarts.
pub type ProcKey = (String, String);

/// An instance the configs ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub process: ProcKey,
    pub hash: String,
    /// The entry's `min-ready` (not part of the hash: changing it
    /// restarts nothing).
    pub min_ready: std::time::Duration,
    /// Restarts asked for (`cairn restart`): an instance of a lower
    /// generation is replaced, with the same config.
    pub generation: u64,
}

/// An instance the tree has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Have {
    pub process: ProcKey,
    pub hash: String,
    /// The generation it was started as (see `Want::generation`).
    pub generation: u64,
    pub state: State,
    /// A stop was already asked for.
    pub stopping: bool,
    /// It is being stopped to be replaced by a new config.
    pub replacing: bool,
    /// It was started as a replacement and has not proven itself yet
    /// (ready, then ready for `min-ready`).
    pub fresh_replacement: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Start a new instance.
    Start(String),
    /// Stop an instance nobody wants any more.
    Stop(String),
    /// Stop an instance and start it again with its new config (or its
    /// same config, for a restart).
    Replace(String),
}

/// The instance runs what is wanted of it: the wanted config, and a
/// generation at least the one wanted (an instance is never restarted for
/// being ahead, e.g. after a recovery that lost the wanted generations).
pub fn current(w: &Want, h: &Have) -> bool {
    h.hash == w.hash && h.generation >= w.generation
}

/// Plan the changes. `frozen` are processes whose config could not be read
/// this time: their instances are left exactly as they are. `halted` are
/// processes whose rollout stopped: their running instances keep their
/// config.
pub fn plan(
    want: &BTreeMap<String, Want>,
    have: &BTreeMap<String, Have>,
    frozen: &BTreeSet<ProcKey>,
    halted: &BTreeSet<ProcKey>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for name in want.keys() {
        if !have.contains_key(name) {
            out.push(Change::Start(name.clone()));
        }
    }
    for (name, h) in have {
        if !want.contains_key(name) && !frozen.contains(&h.process) && !h.stopping {
            out.push(Change::Stop(name.clone()));
        }
    }
    // Processes with a replacement under way.
    let busy: BTreeSet<&ProcKey> = have
        .values()
        .filter(|h| h.replacing || h.fresh_replacement)
        .map(|h| &h.process)
        .collect();
    let mut rolled: BTreeSet<&ProcKey> = BTreeSet::new();
    for (name, w) in want {
        let Some(h) = have.get(name) else { continue };
        if current(w, h) || h.stopping || h.replacing {
            continue;
        }
        match h.state {
            // Nothing runs: nothing to protect, replace at once.
            State::Backoff | State::Failed => out.push(Change::Replace(name.clone())),
            State::Starting | State::Running => {
                if busy.contains(&h.process)
                    || rolled.contains(&h.process)
                    || halted.contains(&h.process)
                {
                    continue;
                }
                rolled.insert(&h.process);
                out.push(Change::Replace(name.clone()));
            }
            State::Stopping => {}
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
