//! `--wait`: when a reload, switch, upgrade or restart is done, read from
//! one `state.json` (pure: `verdict`). Done means: no rollout of the scope
//! is in progress, and every instance of the scope is `running` (so it
//! runs the wanted config and generation, and is ready: an instance that
//! does not is part of a rollout in progress).
//!
//! What fails at once (exit 1), because waiting cannot change it:
//! - a config problem of the scope (`config_problems`: for a reload or an
//!   upgrade any, for a switch those of its sandbox and of master.yaml; a
//!   restart reads no config): the entry kept its last good config;
//! - a stopped rollout of the scope: it stays stopped until the next
//!   config change or restart;
//! - an instance of the scope in `failed`: it is not tried again until a
//!   reload.
//!
//! What is waited for (until the timeout, exit 124): a rollout in
//! progress, an instance `starting`, `stopping` (removed, or making way
//! for its replacement) or in `backoff` (it may come up at its next
//! start, as after a transient failure).

use crate::text::escape;
use crate::tree::state::Snapshot;

/// What a `--wait` looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Only this sandbox (`switch`, `restart`); `None`: every one.
    pub sandbox: Option<String>,
    /// Only these instances (`restart SANDBOX/PROCESS[.N]`).
    pub target: Option<String>,
    /// Whether config problems count (not for a restart: it loads none).
    pub config: bool,
}

impl Scope {
    /// A reload or an upgrade: everything.
    pub fn all() -> Scope {
        Scope {
            sandbox: None,
            target: None,
            config: true,
        }
    }

    /// A switch of `sandbox`'s process config.
    pub fn sandbox(sandbox: &str) -> Scope {
        Scope {
            sandbox: Some(sandbox.to_string()),
            target: None,
            config: true,
        }
    }

    /// A restart of `target` (`SANDBOX`, `SANDBOX/PROCESS`, `SANDBOX/PROCESS.N`).
    pub fn restart(target: &str) -> Scope {
        let (sandbox, rest) = match target.split_once('/') {
            Some((s, _)) => (s, Some(target)),
            None => (target, None),
        };
        Scope {
            sandbox: Some(sandbox.to_string()),
            target: rest.map(str::to_string),
            config: false,
        }
    }

    fn has_sandbox(&self, sandbox: &str) -> bool {
        self.sandbox.as_deref().is_none_or(|s| s == sandbox)
    }

    /// Whether the process `sandbox/process` is looked at.
    fn has_process(&self, sandbox: &str, process: &str) -> bool {
        if !self.has_sandbox(sandbox) {
            return false;
        }
        let Some(t) = &self.target else { return true };
        let sp = format!("{sandbox}/{process}");
        *t == sp
            || t.strip_prefix(&sp)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Whether the instance `name` of `sandbox/process` is looked at.
    fn has_instance(&self, sandbox: &str, process: &str, name: &str) -> bool {
        match &self.target {
            Some(t) if t != &format!("{sandbox}/{process}") => {
                self.has_sandbox(sandbox) && t == name
            }
            _ => self.has_process(sandbox, process),
        }
    }
}

/// What one look at state.json says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every instance of the scope runs its wanted config and is ready:
    /// this many.
    Done(usize),
    /// It cannot get there without a new change: one line per reason.
    Failed(Vec<String>),
    /// Not yet: one line per thing still under way.
    Pending(Vec<String>),
}

/// The verdict of `snap` for `scope`. Every string from state.json is
/// escaped (it may quote an image's config).
pub fn verdict(snap: &Snapshot, scope: &Scope) -> Verdict {
    let mut failed = Vec::new();
    let mut pending = Vec::new();
    if scope.config {
        for p in &snap.config_problems {
            if p.sandbox.is_empty() || scope.has_sandbox(&p.sandbox) {
                failed.push(format!("config error: {}", escape(&p.error)));
            }
        }
    }
    for r in &snap.rollouts {
        if !scope.has_process(&r.sandbox, &r.process) {
            continue;
        }
        let what = format!("{}/{}", escape(&r.sandbox), escape(&r.process));
        match &r.reason {
            Some(why) if r.state == "stopped" => {
                failed.push(format!("{what}: rollout stopped: {}", escape(why)))
            }
            _ => pending.push(format!(
                "{what}: rollout in progress ({} of {} done)",
                r.done, r.total
            )),
        }
    }
    let mut done = 0;
    for i in &snap.instances {
        if !scope.has_instance(&i.sandbox, &i.process, &i.name) {
            continue;
        }
        match i.state.as_str() {
            "running" => done += 1,
            "failed" => failed.push(format!(
                "{}: failed: {}",
                escape(&i.name),
                escape(i.error.as_deref().unwrap_or("(no reason given)"))
            )),
            s => {
                let last = match &i.last_exit {
                    Some(x) if s == "backoff" => format!(" (last exit {})", x.status),
                    _ => String::new(),
                };
                pending.push(format!("{}: {}{last}", escape(&i.name), escape(s)))
            }
        }
    }
    if !failed.is_empty() {
        Verdict::Failed(failed)
    } else if !pending.is_empty() {
        Verdict::Pending(pending)
    } else {
        Verdict::Done(done)
    }
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
