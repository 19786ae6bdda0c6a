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

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::plan::Want;
use super::supervisor::Tree;
use crate::sys::hostfs::HostDir;

/// The dir in the runtime dir.
pub const DIR: &str = "requests";
/// Its mode: only root may write a request, or read an answer.
pub const DIR_MODE: u32 = 0o700;
/// Appended to a request's name for its answer.
pub const REPLY: &str = ".reply";
/// The largest request read.
const REQUEST_CAP: usize = 16 << 10;

/// What a request asks for; the first part of its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answered after the reload its SIGHUP starts.
    Reload,
    /// Restart `Request::target`, one instance at a time.
    Restart,
    /// Answered by the new image once it supervises (or with the error
    /// when the exec failed).
    Upgrade,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reload => "reload",
            Kind::Restart => "restart",
            Kind::Upgrade => "upgrade",
        }
    }

    pub fn signal(self) -> i32 {
        match self {
            Kind::Reload => libc::SIGHUP,
            Kind::Restart => libc::SIGUSR1,
            Kind::Upgrade => libc::SIGQUIT,
        }
    }
}

/// A request file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `restart`: `SANDBOX`, `SANDBOX/PROCESS` or `SANDBOX/PROCESS.N`.
    #[serde(default)]
    pub target: Option<String>,
}

/// An answer: `error` when the request was refused or failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub error: Option<String>,
}

/// Whether `name` is a request of `kind`: `KIND.ID`, ID 1 to 64 ASCII
/// letters, digits, `-` or `_` (no dot: neither a reply nor a temp file).
pub fn is_request(name: &str, kind: Kind) -> bool {
    name.strip_prefix(kind.as_str())
        .and_then(|r| r.strip_prefix('.'))
        .is_some_and(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The wanted instances a restart `target` names: `SANDBOX` (all of its
/// instances), `SANDBOX/PROCESS` (all of that process) or
/// `SANDBOX/PROCESS.N` (that one). Empty: the target names nothing the
/// loaded config wants.
pub fn targets<'a>(target: &str, want: &'a BTreeMap<String, Want>) -> Vec<&'a String> {
    let (sandbox, rest) = match target.split_once('/') {
        Some((s, r)) => (s, Some(r)),
        None => (target, None),
    };
    want.iter()
        .filter(|(name, w)| {
            w.process.0 == sandbox
                && match rest {
                    None => true,
                    Some(r) => r == w.process.1 || name.as_str() == target,
                }
        })
        .map(|(n, _)| n)
        .collect()
}

impl Tree {
    /// The requests dir, made (root, 0700) if missing.
    fn requests_dir(&self) -> Option<HostDir> {
        match self.runtime.sub(Path::new(DIR), Some(DIR_MODE)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn want(names: &[(&str, &str, &str)]) -> BTreeMap<String, Want> {
        names
            .iter()
            .map(|(n, s, p)| {
                (
                    n.to_string(),
                    Want {
                        process: (s.to_string(), p.to_string()),
                        hash: "h".into(),
                        min_ready: std::time::Duration::ZERO,
                        generation: 0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_target_names_a_sandbox_a_process_or_one_instance() {
        let w = want(&[
            ("box/web.0", "box", "web"),
            ("box/web.1", "box", "web"),
            ("box/web2.0", "box", "web2"),
            ("other/web.0", "other", "web"),
        ]);
        let t = |s: &str| targets(s, &w).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(t("box"), ["box/web.0", "box/web.1", "box/web2.0"]);
        assert_eq!(t("box/web"), ["box/web.0", "box/web.1"]);
        assert_eq!(t("box/web.1"), ["box/web.1"]);
        assert_eq!(t("other"), ["other/web.0"]);
        for none in [
            "nope",
            "box/nope",
            "box/web.7",
            "bo",
            "box/",
            "",
            "/web",
            "box/we",
        ] {
            assert!(t(none).is_empty(), "{none}");
        }
    }

    #[test]
    fn only_well_formed_names_of_the_kind_are_requests() {
        assert!(is_request("restart.123-456", Kind::Restart));
        assert!(is_request("reload.a_B-9", Kind::Reload));
        assert!(!is_request("restart.123-456", Kind::Reload));
        assert!(!is_request("restart.123.reply", Kind::Restart));
        assert!(!is_request(".restart.1.tmp.5", Kind::Restart));
        assert!(!is_request("restart.", Kind::Restart));
        assert!(!is_request("restart", Kind::Restart));
        assert!(!is_request("restartx.1", Kind::Restart));
        assert!(!is_request("restart.a/b", Kind::Restart));
        assert!(!is_request(
            &format!("upgrade.{}", "a".repeat(65)),
            Kind::Upgrade
        ));
    }
}
