//! Removing the cgroup leaf of an instance that is gone, without ever
//! sleeping in the event loop: a leaf that something still holds (tasks
//! that are still exiting, a cgroup someone made below it) is tried again
//! from the loop, less and less often, since every failed `rmdir` of a
//! cgroup takes the kernel's cgroup lock, which every start on the host
//! needs to join its cgroups.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::run::Tree;

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

impl Tree {
    /// The instance `name` (taken out of the table) used `leaf`: kill what
    /// is left in it and remove it, or, if something still holds it, try
    /// again later from the loop. Its knot is gone, and with it every
    /// process of its pid namespace; the kill is a safety net.
    pub fn remove_leaf(&mut self, name: &str, leaf: &str) {
        let Some(cg) = &self.cgroups else { return };
        cg.kill_all(leaf);
        match cg.remove_once(leaf) {
            Ok(None) => {}
            Ok(Some(_)) => {
                let now = Instant::now();
                self.leaves_to_remove.push(PendingLeaf {
                    leaf: leaf.to_string(),
                    at: now + RETRY,
                    wait: RETRY * 2,
                    give_up: now + GIVE_UP,
                });
            }
            Err(e) => log::error!("{name}: cgroup cleanup: {e}"),
        }
    }

    /// When the loop must wake up to try a leaf again.
    pub fn next_leaf_try(&self) -> Option<Instant> {
        self.leaves_to_remove.iter().map(|p| p.at).min()
    }

    /// The leaves the instances in the table use: theirs, never removed.
    fn leaves_in_use(&self) -> BTreeSet<&str> {
        self.instances
            .values()
            .filter_map(|i| i.spec.host.cgroup.as_deref())
            .collect()
    }

    /// Try again the leaves whose time has come, unless an instance uses
    /// that leaf again by now.
    pub fn remove_leaves(&mut self, now: Instant) {
        if self.leaves_to_remove.is_empty() {
            return;
        }
        let in_use: BTreeSet<String> = self
            .leaves_in_use()
            .into_iter()
            .map(str::to_string)
            .collect();
        let Some(cg) = &self.cgroups else {
            self.leaves_to_remove.clear();
            return;
        };
        self.leaves_to_remove.retain_mut(|p| {
            if in_use.contains(&p.leaf) {
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
    /// instance uses again is its own: never killed here.
    pub fn drain_leaves(&mut self) {
        let pending = std::mem::take(&mut self.leaves_to_remove);
        let in_use = self.leaves_in_use();
        let Some(cg) = &self.cgroups else { return };
        for p in pending.iter().filter(|p| !in_use.contains(p.leaf.as_str())) {
            if let Err(e) = cg.destroy(&p.leaf) {
                log::error!("cgroup {}: cleanup: {e}", p.leaf);
            }
        }
    }
}
