//! The tree's end: stopping every instance on SIGTERM or SIGINT (a
//! second signal kills them all), and once none is left, removing what the
//! tree made (its cgroup root, state.json, metrics.prom, tree.pid).

use super::leaves;
use super::lifecycle::{Event, Then};
use super::supervisor::Tree;
use crate::sys::process;

impl Tree {
    /// SIGTERM or SIGINT: stop every instance (TERM, KILL after its
    /// kill-timeout); a second one kills them all at once.
    pub(super) fn shutdown(&mut self) {
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
            self.event(&name, Event::Stop(Then::Remove));
        }
        self.dirty = true;
    }

    /// Everything stopped: remove what we made and leave.
    pub(super) fn finish(&mut self) -> u8 {
        self.io
            .leaves
            .drain(self.io.cgroups.as_ref(), &leaves::in_use(&self.instances));
        if let Some(cg) = &self.io.cgroups {
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
}
