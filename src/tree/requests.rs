//! Requests from the commands (`reload --wait`, `switch --wait`, `upgrade
//! --wait`, `restart`) and the tree's answers. A command writes one file,
//! `KIND.ID`, into `<runtime-dir>/requests/` (root's, mode 0700: only root
//! may ask) and sends the signal of its kind (SIGHUP reload, SIGUSR1
//! restart, SIGQUIT upgrade). The tree takes the files of that kind (a
//! signal sent twice before it is read is one signal; the files are not
//! lost), does what they ask, and writes `KIND.ID.reply` once state.json
//! shows the outcome: so a command that finds its reply and then reads
//! state.json reads a state written after its request was handled.
//!
//! The tree reads a request only when root alone could have written it
//! (`HostDir::read_trusted`: a regular file owned by root, not writable by
//! group or others, one link, reached without a symlink), at most
//! `REQUEST_CAP` bytes, and only names of the form `KIND.ID` (`is_request`).

use std::path::Path;

use super::request::{DIR, DIR_MODE, Kind, REPLY, Reply, Request, is_request, targets};
use super::supervisor::Tree;
use crate::sys::hostfs::HostDir;

/// The largest request read.
const REQUEST_CAP: usize = 16 << 10;

impl Tree {
    /// The requests dir, made (root, 0700) if missing.
    fn requests_dir(&self) -> Option<HostDir> {
        match self.io.runtime.sub(Path::new(DIR), Some(DIR_MODE)) {
            Ok(d) => d,
            Err(e) => {
                log::error!("{e}; requests are not read");
                None
            }
        }
    }

    /// Take (read and remove) the requests of `kind` waiting. One that
    /// cannot be read is removed and answered with why.
    pub fn take_requests(&mut self, kind: Kind) -> Vec<(String, Request)> {
        let Some(dir) = self.requests_dir() else {
            return Vec::new();
        };
        let names = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                log::error!("{e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for name in names.into_iter().filter(|n| is_request(n, kind)) {
            let read = dir.read_trusted(&name, REQUEST_CAP);
            if let Err(e) = dir.remove(&name) {
                log::error!("{e}");
            }
            let req = match read {
                Ok(Some(b)) => serde_json::from_slice::<Request>(&b).map_err(|e| e.to_string()),
                Ok(None) => continue,
                Err(e) => Err(format!("{e}; ignored (not written by root alone)")),
            };
            match req {
                Ok(r) => out.push((name, r)),
                Err(why) => {
                    log::warn!("request {name}: {why}");
                    self.answer(name, Some(why));
                }
            }
        }
        out
    }

    /// Queue the answer to request `name`; it is written once state.json
    /// has been (`write_replies`).
    pub fn answer(&mut self, name: String, error: Option<String>) {
        self.replies.push((name, Reply { error }));
        self.dirty = true;
    }

    /// Restart requests: each target's instances get a higher wanted
    /// generation, which the planner rolls out one at a time.
    pub fn restart_requests(&mut self) {
        for (name, req) in self.take_requests(Kind::Restart) {
            let target = req.target.unwrap_or_default();
            let names: Vec<String> = targets(&target, &self.want).into_iter().cloned().collect();
            if names.is_empty() {
                let why = format!(
                    "unknown target {target:?}: no such sandbox, process or instance in the \
                     loaded config"
                );
                log::warn!("restart: {why}");
                self.answer(name, Some(why));
                continue;
            }
            log::info!("restart of {target} requested ({} instances)", names.len());
            for n in names {
                let have = self.instances.get(&n).map_or(0, |i| i.generation);
                let g = self.generations.entry(n.clone()).or_default();
                *g = (*g).max(have) + 1;
                let g = *g;
                if let Some(w) = self.want.get_mut(&n) {
                    w.generation = g;
                }
            }
            self.answer(name, None);
        }
        // Instances gone from the config need no generation.
        let want = &self.want;
        self.generations.retain(|n, _| want.contains_key(n));
        self.replan = true;
        self.dirty = true;
    }

    /// Requests left from before this tree (it was started, or restarted
    /// after a crash, while a command waited): a fresh start is a load and
    /// the installed binary, so reload and upgrade requests are answered;
    /// restarts are done. Stale answers nobody took are removed first.
    pub fn requests_at_start(&mut self, fresh: bool) {
        if fresh
            && let Some(dir) = self.requests_dir()
            && let Ok(names) = dir.names()
        {
            for n in names.iter().filter(|n| n.ends_with(REPLY)) {
                if let Err(e) = dir.remove(n) {
                    log::error!("{e}");
                }
            }
        }
        for kind in [Kind::Reload, Kind::Upgrade] {
            for (name, _) in self.take_requests(kind) {
                self.answer(name, None);
            }
        }
        self.restart_requests();
    }

    /// Write the answers queued, now that state.json shows what they asked
    /// for. One that cannot be written is logged and dropped (its command
    /// times out saying so).
    pub fn write_replies(&mut self) {
        if self.replies.is_empty() {
            return;
        }
        let Some(dir) = self.requests_dir() else {
            return;
        };
        for (name, reply) in std::mem::take(&mut self.replies) {
            let file = format!("{name}{REPLY}");
            if let Err(e) = dir.write_atomic(&file, false, |w| {
                serde_json::to_writer(w, &reply).map_err(std::io::Error::other)
            }) {
                log::error!("{e}");
            }
        }
    }
}
