//! `cairn ps --watch`: what changed between two snapshots of the tree's
//! state, as a list of changes, and each change as one line of text (80
//! columns) or one JSON object. Pure: two snapshots in, changes out; a
//! change and the time it was seen in, its line out.

use std::collections::{BTreeMap, BTreeSet};

use super::ps::Filter;
use crate::tree::rollout::RolloutInfo;
use crate::tree::state::{InstanceInfo, LastExit, Snapshot};

/// What a change is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// The tree itself, or master.yaml.
    Tree,
    /// A sandbox (its config problems).
    Sandbox(String),
    /// A process of a sandbox (its rollout).
    Process { sandbox: String, process: String },
    /// An instance, with its state before the change (`None`: it was not
    /// there) and after it (`None`: it is gone).
    Instance {
        name: String,
        sandbox: String,
        process: String,
        was: Option<String>,
        now: Option<String>,
    },
}

/// What changed.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    // The tree.
    /// Replaced itself in place (`cairn upgrade`): `upgrades` so far.
    Upgraded {
        upgrades: u32,
        version: String,
    },
    /// Read its configs again: `reloads` so far.
    Reloaded {
        reloads: u32,
    },
    /// Another tree wrote the state (not the one followed until now).
    NewTree {
        from: i32,
        to: i32,
    },
    /// The tree is gone (added by the watch, never by `diff`).
    Ended {
        pid: i32,
        why: String,
    },
    // Configs.
    ConfigError {
        error: String,
    },
    ConfigFixed {
        error: String,
    },
    // An instance.
    Appeared {
        state: String,
        pid: Option<i32>,
    },
    Gone {
        state: String,
    },
    State {
        from: String,
        to: String,
        /// Into `backoff`: when the next start is due.
        next_start: Option<String>,
        /// Into `failed`: why.
        error: Option<String>,
    },
    /// It ended, or could not start (`error`), as `last_exit` says.
    Exited(Box<LastExit>),
    Restarted {
        restarts: u32,
    },
    /// A new knot pid (a start).
    Pid {
        from: Option<i32>,
        to: i32,
    },
    /// It runs another config.
    Config {
        from: String,
        to: String,
    },
    Ready {
        ready: bool,
    },
    Health {
        from: Option<String>,
        to: Option<String>,
    },
    /// `ready: !Notify`: the service's `STATUS=`.
    Status {
        status: Option<String>,
    },
    // A rollout.
    RolloutStarted {
        done: u32,
        total: u32,
    },
    RolloutProgress {
        done: u32,
        total: u32,
    },
    RolloutFinished,
    RolloutStopped {
        instance: Option<String>,
        reason: Option<String>,
    },
    /// A stopped rollout is no longer stopped (its config changed again,
    /// or its instance is gone) and none follows.
    RolloutCleared,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub subject: Subject,
    pub what: What,
}

/// Every change from `old` to `new`: the tree's first, then config
/// problems, rollouts that start, instances (by name), and the progress,
/// end or stop of rollouts.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    let tree = |what| Change {
        subject: Subject::Tree,
        what,
    };
    if old.tree.pid != new.tree.pid {
        out.push(tree(What::NewTree {
            from: old.tree.pid,
            to: new.tree.pid,
        }));
    }
    if new.tree.upgrades > old.tree.upgrades {
        out.push(tree(What::Upgraded {
            upgrades: new.tree.upgrades,
            version: new.tree.version.clone(),
        }));
    }
    if new.tree.reloads > old.tree.reloads {
        out.push(tree(What::Reloaded {
            reloads: new.tree.reloads,
        }));
    }
    config_changes(old, new, &mut out);
    // A rollout that starts reads before the replacements it makes; its
    // progress, end or stop after them.
    let mut rollouts = Vec::new();
    rollout_changes(&old.rollouts, &new.rollouts, &mut rollouts);
    let (started, rest): (Vec<Change>, Vec<Change>) = rollouts
        .into_iter()
        .partition(|c| matches!(c.what, What::RolloutStarted { .. }));
    out.extend(started);
    let olds: BTreeMap<&str, &InstanceInfo> =
        old.instances.iter().map(|i| (i.name.as_str(), i)).collect();
    let news: BTreeMap<&str, &InstanceInfo> =
        new.instances.iter().map(|i| (i.name.as_str(), i)).collect();
    let names: BTreeSet<&str> = olds.keys().chain(news.keys()).copied().collect();
    for name in names {
        instance_changes(olds.get(name).copied(), news.get(name).copied(), &mut out);
    }
    out.extend(rest);
    out
}

/// Each config problem with its sandbox ("" for master.yaml and the
/// tree's own); from `config_errors` alone in a state that has no
/// `config_problems`.
fn problems(s: &Snapshot) -> BTreeSet<(String, String)> {
    if s.config_problems.is_empty() {
        s.config_errors
            .iter()
            .map(|e| (String::new(), e.clone()))
            .collect()
    } else {
        s.config_problems
            .iter()
            .map(|p| (p.sandbox.clone(), p.error.clone()))
            .collect()
    }
}

fn config_changes(old: &Snapshot, new: &Snapshot, out: &mut Vec<Change>) {
    let (was, now) = (problems(old), problems(new));
    let subject = |sandbox: &str| match sandbox {
        "" => Subject::Tree,
        s => Subject::Sandbox(s.to_string()),
    };
    for (sandbox, error) in now.difference(&was) {
        out.push(Change {
            subject: subject(sandbox),
            what: What::ConfigError {
                error: error.clone(),
            },
        });
    }
    for (sandbox, error) in was.difference(&now) {
        out.push(Change {
            subject: subject(sandbox),
            what: What::ConfigFixed {
                error: error.clone(),
            },
        });
    }
}

/// The changes of one instance: it appeared, it is gone, or, in the order
/// they happen in a restart, its exit, state, restart count, pid, config,
/// readiness, health and status.
fn instance_changes(old: Option<&InstanceInfo>, new: Option<&InstanceInfo>, out: &mut Vec<Change>) {
    let Some(i) = new.or(old) else {
        return;
    };
    let subject = Subject::Instance {
        name: i.name.clone(),
        sandbox: i.sandbox.clone(),
        process: i.process.clone(),
        was: old.map(|o| o.state.clone()),
        now: new.map(|n| n.state.clone()),
    };
    let mut push = |what| {
        out.push(Change {
            subject: subject.clone(),
            what,
        })
    };
    let (o, n) = match (old, new) {
        (None, Some(n)) => {
            return push(What::Appeared {
                state: n.state.clone(),
                pid: n.pid,
            });
        }
        (Some(o), None) => {
            return push(What::Gone {
                state: o.state.clone(),
            });
        }
        (Some(o), Some(n)) => (o, n),
        (None, None) => return,
    };
    // A new exit record, or the same one again: a record's time is in
    // seconds, and a workload that dies twice in one second leaves two
    // equal records; its knot's pid is gone then.
    let knot_gone = o.pid.is_some() && o.pid != n.pid;
    if let Some(l) = &n.last_exit
        && (o.last_exit.as_ref() != Some(l) || knot_gone)
    {
        push(What::Exited(Box::new(l.clone())));
    }
    if o.state != n.state {
        push(What::State {
            from: o.state.clone(),
            to: n.state.clone(),
            next_start: n.next_start.clone().filter(|_| n.state == "backoff"),
            error: n.error.clone().filter(|_| n.state == "failed"),
        });
    }
    if n.restarts > o.restarts {
        push(What::Restarted {
            restarts: n.restarts,
        });
    }
    if let Some(to) = n.pid
        && o.pid != Some(to)
    {
        push(What::Pid { from: o.pid, to });
    }
    if o.config_hash != n.config_hash {
        push(What::Config {
            from: o.config_hash.clone(),
            to: n.config_hash.clone(),
        });
    }
    // Ready once more, or no longer while it runs (a running instance
    // that leaves `running` is no longer ready: its state says so).
    match (&o.ready_since, &n.ready_since) {
        (was, Some(now)) if was.as_ref() != Some(now) => push(What::Ready { ready: true }),
        (Some(_), None) if o.state == "running" && n.state == "running" => {
            push(What::Ready { ready: false })
        }
        _ => {}
    }
    if o.health != n.health {
        push(What::Health {
            from: o.health.clone(),
            to: n.health.clone(),
        });
    }
    if o.status != n.status {
        push(What::Status {
            status: n.status.clone(),
        });
    }
}

fn rollout_changes(old: &[RolloutInfo], new: &[RolloutInfo], out: &mut Vec<Change>) {
    let key = |r: &RolloutInfo| (r.sandbox.clone(), r.process.clone());
    let olds: BTreeMap<_, &RolloutInfo> = old.iter().map(|r| (key(r), r)).collect();
    let news: BTreeMap<_, &RolloutInfo> = new.iter().map(|r| (key(r), r)).collect();
    let keys: BTreeSet<&(String, String)> = olds.keys().chain(news.keys()).collect();
    let stopped = |r: &RolloutInfo| r.state == "stopped";
    for k in keys {
        let what = match (olds.get(k), news.get(k)) {
            (_, Some(n)) if stopped(n) && !olds.get(k).is_some_and(|o| stopped(o)) => {
                What::RolloutStopped {
                    instance: n.instance.clone(),
                    reason: n.reason.clone(),
                }
            }
            (o, Some(n)) if !stopped(n) && o.is_none_or(|o| stopped(o)) => What::RolloutStarted {
                done: n.done,
                total: n.total,
            },
            (Some(o), Some(n)) if !stopped(n) && (o.done, o.total) != (n.done, n.total) => {
                What::RolloutProgress {
                    done: n.done,
                    total: n.total,
                }
            }
            (Some(o), None) if stopped(o) => What::RolloutCleared,
            (Some(_), None) => What::RolloutFinished,
            _ => continue,
        };
        out.push(Change {
            subject: Subject::Process {
                sandbox: k.0.clone(),
                process: k.1.clone(),
            },
            what,
        });
    }
}

/// Whether `--sandbox` and `--state` keep this change. `--sandbox` keeps
/// what is about that sandbox and the tree's own changes; `--state` keeps
/// the changes of instances in that state before or after them, and the
/// tree's upgrades, reloads and end (config problems and rollouts are no
/// instance's state).
pub fn keeps(filter: &Filter<'_>, c: &Change) -> bool {
    let sandbox_ok = match &c.subject {
        Subject::Tree => true,
        Subject::Sandbox(s) | Subject::Process { sandbox: s, .. } => {
            filter.sandbox.is_none_or(|f| f == s)
        }
        Subject::Instance { sandbox, .. } => filter.sandbox.is_none_or(|f| f == sandbox),
    };
    let state_ok = match (&c.subject, filter.state) {
        (_, None) => true,
        (Subject::Instance { was, now, .. }, Some(f)) => {
            was.as_deref() == Some(f) || now.as_deref() == Some(f)
        }
        (Subject::Tree, Some(_)) => matches!(
            c.what,
            What::Upgraded { .. }
                | What::Reloaded { .. }
                | What::NewTree { .. }
                | What::Ended { .. }
        ),
        _ => false,
    };
    sandbox_ok && state_ok
}

#[path = "ps_changes_show.rs"]
mod show;
#[cfg(test)]
use show::exit_text;
pub use show::{line, to_json};

#[cfg(test)]
#[path = "ps_changes_tests.rs"]
mod tests;
