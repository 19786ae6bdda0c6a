//! Removing the cgroup leaf of an instance that is gone, without ever
//! sleeping in the event loop: a leaf that something still holds (tasks
//! that are still exiting, a cgroup someone made below it) is tried again
//! from the loop, less and less often, since every failed `rmdir` of a
//! cgroup takes the kernel's cgroup lock, which every start on the host
//! needs to join its cgroups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::sys::cgroup::Cgroups;

use super::instance::Instance;

/// The first wait before a busy leaf is tried again; it doubles each time
/// up to `RETRY_MAX`, for `GIVE_UP` in all.
const RETRY: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);
const GIVE_UP: Duration = Duration::from_secs(10);

/// A leaf still to be removed.
pub struct PendingLeaf {
    leaf: String,
    /// When to try again.
    at: Instant,
    /// The wait after that try.
    wait: Duration,
    /// When to stop trying (and say so).
    give_up: Instant,
}

/// The leaves still to be removed.
#[derive(Default)]
pub struct Leaves {
    pending: Vec<PendingLeaf>,
}

/// The leaves the instances in `table` use: theirs, never removed.
pub fn in_use(table: &BTreeMap<String, Instance>) -> BTreeSet<&str> {
    table
        .values()
        .filter_map(|i| i.spec.host.cgroup.as_deref())
        .collect()
}

impl Leaves {
    /// The instance `name` (taken out of the table) used `leaf`: kill what
    /// is left in it and remove it, or, if something still holds it, try
    /// again later from the loop. Its knot is gone, and with it every
    /// process of its pid namespace; the kill is a safety net.
    pub fn remove(&mut self, cgroups: Option<&Cgroups>, name: &str, leaf: &str) {
        let Some(cg) = cgroups else { return };
        cg.kill_all(leaf);
        match cg.remove_once(leaf) {
            Ok(None) => {}
            Ok(Some(_)) => {
                let now = Instant::now();
                self.pending.push(PendingLeaf {
                    leaf: leaf.to_string(),
                    at: now + RETRY,
                    wait: RETRY * 2,
                    give_up: now + GIVE_UP,
                });
            }
            Err(e) => log::error!("{name}: cgroup cleanup: {e}"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the loop must wake up to try a leaf again.
    pub fn next_try(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.at).min()
    }

    /// Try again the leaves whose time has come, unless an instance uses
    /// that leaf again by now (`in_use`).
    pub fn retry(&mut self, cgroups: Option<&Cgroups>, in_use: &BTreeSet<&str>, now: Instant) {
        let Some(cg) = cgroups else {
            self.pending.clear();
            return;
        };
        self.pending.retain_mut(|p| {
            if in_use.contains(p.leaf.as_str()) {
                return false;
            }
            if p.at > now {
                return true;
            }
            match cg.remove_once(&p.leaf) {
                Ok(None) => false,
                Ok(Some(e)) if now >= p.give_up => {
                    log::error!("cgroup {}: cleanup: {e}", p.leaf);
                    false
                }
                Ok(Some(_)) => {
                    p.at = now + p.wait;
                    p.wait = (p.wait * 2).min(RETRY_MAX);
                    true
                }
                Err(e) => {
                    log::error!("cgroup {}: cleanup: {e}", p.leaf);
                    false
                }
            }
        });
    }

    /// Remove every leaf still to be removed, waiting for each (the tree
    /// exits or re-executes itself: nobody would try again). A leaf an
    /// instance uses again (`in_use`) is its own: never killed here.
    pub fn drain(&mut self, cgroups: Option<&Cgroups>, in_use: &BTreeSet<&str>) {
        let pending = std::mem::take(&mut self.pending);
        let Some(cg) = cgroups else { return };
        for p in pending.iter().filter(|p| !in_use.contains(p.leaf.as_str())) {
            if let Err(e) = cg.destroy(&p.leaf) {
                log::error!("cgroup {}: cleanup: {e}", p.leaf);
            }
        }
    }
}
