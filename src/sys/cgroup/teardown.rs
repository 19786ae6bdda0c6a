//! Taking a cgroup leaf down: killing what is left in it (frozen first on
//! v1 with the freezer in use; `cgroup.kill` on v2) and removing it, once
//! or until it goes.

use std::fs;
use std::path::{Path, PathBuf};

use super::super::Error;
use super::super::proc::read_text;
use super::{Cgroups, write};

impl Cgroups {
    /// SIGKILL everything in `leaf` and remove it, waiting (up to about
    /// 0.3 s) while killed tasks drain. For `cairn cmd` and the tree's
    /// exit and upgrade; the running tree uses `remove_once` and tries
    /// again from its loop.
    pub fn destroy(&self, leaf: &str) -> Result<(), Error> {
        self.kill_all(leaf);
        let mut busy = None;
        for _ in 0..300 {
            busy = self.remove_once(leaf)?;
            if busy.is_none() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        match busy {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// SIGKILL everything in `leaf`, in every hierarchy: v2 has
    /// cgroup.kill; on v1 we kill what we see until the cgroup is empty (a
    /// fork racing the kill shows up on the next read). With the v1
    /// `freezer` controller in use, the leaf is frozen first, so nothing in
    /// it can fork while it is being killed; it is thawed after, and what
    /// was killed dies then.
    pub fn kill_all(&self, leaf: &str) {
        if let Some(state) = self.freeze_v1(leaf) {
            // One pass: frozen, nothing can fork, and a killed task stays
            // listed until it is thawed.
            if let Some(dir) = state.parent() {
                for p in procs_in(dir) {
                    let _ = super::super::process::kill(p, libc::SIGKILL);
                }
            }
            if let Err(e) = write(&state, "THAWED") {
                log::warn!("{e}");
            }
        }
        self.kill_visible(leaf);
    }

    /// Freeze `leaf` in the v1 freezer hierarchy, if we use one, and wait
    /// (briefly: tasks stop at their next return to user space) until it
    /// is frozen. Returns its `freezer.state` file to thaw it with.
    fn freeze_v1(&self, leaf: &str) -> Option<PathBuf> {
        let h = self
            .hierarchies
            .iter()
            .find(|h| !h.v2 && h.has("freezer"))?;
        let state = h.dir(&self.root, Some(leaf)).join("freezer.state");
        if let Err(e) = write(&state, "FROZEN") {
            if state.exists() {
                log::warn!("{e}");
            }
            return None;
        }
        for _ in 0..1000 {
            match read_text(&state) {
                Ok(s) if s.trim() == "FROZEN" => break,
                Ok(_) => std::thread::yield_now(),
                Err(_) => break,
            }
        }
        Some(state)
    }

    fn kill_visible(&self, leaf: &str) {
        for h in &self.hierarchies {
            let dir = h.dir(&self.root, Some(leaf));
            if !dir.exists() {
                continue;
            }
            if h.v2 && write(&dir.join("cgroup.kill"), "1").is_ok() {
                continue;
            }
            for _ in 0..100 {
                let pids = procs_in(&dir);
                if pids.is_empty() {
                    break;
                }
                for p in pids {
                    let _ = super::super::process::kill(p, libc::SIGKILL);
                }
                std::thread::yield_now();
            }
        }
    }

    /// One try at removing `leaf` from every hierarchy, without waiting:
    /// `Ok(None)` once it is gone everywhere, `Ok(Some(EBUSY))` while
    /// something still holds it (exiting tasks, a cgroup below it), `Err`
    /// for any other failure.
    pub fn remove_once(&self, leaf: &str) -> Result<Option<Error>, Error> {
        let mut busy = None;
        for h in &self.hierarchies {
            let dir = h.dir(&self.root, Some(leaf));
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    busy = Some(Error::new("rmdir", dir.display(), e));
                }
                Err(e) => return Err(Error::new("rmdir", dir.display(), e)),
            }
        }
        Ok(busy)
    }
}

/// The processes in the cgroup at `dir` (none when it cannot be read).
fn procs_in(dir: &Path) -> Vec<i32> {
    read_text(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}
