//! `cairn ps --watch`: what changed between two snapshots of the tree's
//! state, as a list of changes, and each change as one line of text (80
//! columns) or one JSON object. Pure: two snapshots in, changes out; a
//! change and the time it was seen in, its line out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::ps::Filter;
use super::ps_text::{age, fit, parse_rfc3339};
use crate::text::escape;
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

impl Subject {
    fn label(&self) -> String {
        match self {
            Subject::Tree => "tree".to_string(),
            Subject::Sandbox(s) => s.clone(),
            Subject::Process { sandbox, process } => format!("{sandbox}/{process}"),
            Subject::Instance { name, .. } => name.clone(),
        }
    }
}

/// `HH:MM:SS` (UTC) of `t`.
fn clock(t: SystemTime) -> String {
    crate::text::rfc3339(t)
        .get(11..19)
        .unwrap_or("??:??:??")
        .to_string()
}

/// A config hash as the text shows it: its first 12 characters.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// How an exit reads: `exited 3 (a failure)`, `killed by signal 9 (OOM,
/// a failure)`, `could not start: WHY`.
fn exit_text(l: &LastExit) -> String {
    if let Some(e) = &l.error {
        return format!("could not start: {}", e.trim());
    }
    let mut s = match l.signal {
        Some(sig) => format!("killed by signal {sig}"),
        None => format!("exited {}", l.status),
    };
    let tags: Vec<&str> = [(l.oom_killed, "OOM"), (l.failure, "a failure")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, t)| *t)
        .collect();
    if !tags.is_empty() {
        let _ = write!(s, " ({})", tags.join(", "));
    }
    s
}

/// What the text says of a change, after its time and subject.
fn message(what: &What, at: SystemTime) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    match what {
        What::Upgraded { upgrades, version } => {
            format!("upgraded in place to {version} (upgrade {upgrades})")
        }
        What::Reloaded { reloads } => format!("configs read again (reload {reloads})"),
        What::NewTree { from, to } => {
            format!("another tree wrote the state: pid {to} (was {from})")
        }
        What::Ended { pid, why } => format!("ended (pid {pid}): {why}"),
        What::ConfigError { error } => format!("config error: {}", error.trim()),
        What::ConfigFixed { error } => format!("config error gone: {}", error.trim()),
        What::Appeared { state, pid } => match pid {
            Some(p) => format!("appeared, {state}, pid {p}"),
            None => format!("appeared, {state}"),
        },
        What::Gone { state } => format!("gone (was {state})"),
        What::State {
            from,
            to,
            next_start,
            error,
        } => {
            let mut s = format!("{from} → {to}");
            if let Some(t) = next_start.as_deref().and_then(parse_rfc3339) {
                let _ = write!(
                    s,
                    ", next start in {}",
                    age(t.duration_since(at).unwrap_or_default())
                );
            }
            if let Some(e) = error {
                let _ = write!(s, ": {}", e.trim());
            }
            s
        }
        What::Exited(l) => exit_text(l),
        What::Restarted { restarts } => format!("restarted (restart {restarts})"),
        What::Pid { from: Some(f), to } => format!("new pid {to} (was {f})"),
        What::Pid { from: None, to } => format!("new pid {to}"),
        What::Config { from, to } => format!("runs config {} (was {})", short(to), short(from)),
        What::Ready { ready: true } => "ready".to_string(),
        What::Ready { ready: false } => "not ready".to_string(),
        What::Health { from, to } => format!("health {} → {}", opt(from), opt(to)),
        What::Status { status: Some(s) } => format!("status: {s}"),
        What::Status { status: None } => "status cleared".to_string(),
        What::RolloutStarted { done, total } => {
            format!("rollout started ({done} of {total} done)")
        }
        What::RolloutProgress { done, total } => format!("rollout: {done} of {total} done"),
        What::RolloutFinished => "rollout finished".to_string(),
        What::RolloutStopped { instance, reason } => {
            let mut s = format!("rollout stopped: {}", opt(reason));
            if let Some(i) = instance {
                let _ = write!(s, " ({i})");
            }
            s
        }
        What::RolloutCleared => "stopped rollout cleared".to_string(),
    }
}

/// One change as text: `HH:MM:SS SUBJECT MESSAGE`, the subject padded to
/// `width`, everything escaped, cut to 80 columns with the whole message
/// below when it does not fit (as `ps` does with its last column).
pub fn line(c: &Change, at: SystemTime, width: usize) -> String {
    let head = format!("{} {:<width$} ", clock(at), escape(&c.subject.label()));
    fit(&head, &escape(&message(&c.what, at)))
}

/// One change as a JSON object: `at` (RFC 3339, milliseconds), `event`,
/// what it is about (`instance`, `sandbox`, `process`, `state`) and the
/// fields of that event (docs/commands.md lists them).
pub fn to_json(c: &Change, at: SystemTime) -> Value {
    let (event, fields) = event_json(&c.what);
    let mut o = serde_json::Map::new();
    o.insert("at".into(), crate::text::rfc3339_ms(at).into());
    o.insert("event".into(), event.into());
    match &c.subject {
        Subject::Tree => {}
        Subject::Sandbox(s) => {
            o.insert("sandbox".into(), s.as_str().into());
        }
        Subject::Process { sandbox, process } => {
            o.insert("sandbox".into(), sandbox.as_str().into());
            o.insert("process".into(), process.as_str().into());
        }
        Subject::Instance {
            name,
            sandbox,
            process,
            was,
            now,
        } => {
            o.insert("instance".into(), name.as_str().into());
            o.insert("sandbox".into(), sandbox.as_str().into());
            o.insert("process".into(), process.as_str().into());
            o.insert(
                "state".into(),
                now.as_ref().or(was.as_ref()).cloned().into(),
            );
        }
    }
    if let Value::Object(f) = fields {
        o.extend(f);
    }
    Value::Object(o)
}

/// The event's name and its own fields.
fn event_json(what: &What) -> (&'static str, Value) {
    match what {
        What::Upgraded { upgrades, version } => {
            ("upgrade", json!({"upgrades": upgrades, "version": version}))
        }
        What::Reloaded { reloads } => ("reload", json!({"reloads": reloads})),
        What::NewTree { from, to } => ("new_tree", json!({"from": from, "to": to})),
        What::Ended { pid, why } => ("tree_ended", json!({"pid": pid, "why": why})),
        What::ConfigError { error } => ("config_error", json!({"error": error})),
        What::ConfigFixed { error } => ("config_fixed", json!({"error": error})),
        What::Appeared { pid, .. } => ("appeared", json!({"pid": pid})),
        What::Gone { .. } => ("gone", json!({})),
        What::State {
            from,
            to,
            next_start,
            error,
        } => (
            "state",
            json!({"from": from, "to": to, "next_start": next_start, "error": error}),
        ),
        What::Exited(l) => ("exit", json!({ "last_exit": l })),
        What::Restarted { restarts } => ("restart", json!({ "restarts": restarts })),
        What::Pid { from, to } => ("pid", json!({"from": from, "to": to})),
        What::Config { from, to } => ("config", json!({"from": from, "to": to})),
        What::Ready { ready } => ("ready", json!({ "ready": ready })),
        What::Health { from, to } => ("health", json!({"from": from, "to": to})),
        What::Status { status } => ("status", json!({ "status": status })),
        What::RolloutStarted { done, total } => {
            ("rollout_started", json!({"done": done, "total": total}))
        }
        What::RolloutProgress { done, total } => {
            ("rollout_progress", json!({"done": done, "total": total}))
        }
        What::RolloutFinished => ("rollout_finished", json!({})),
        What::RolloutStopped { instance, reason } => (
            "rollout_stopped",
            json!({"failed_instance": instance, "reason": reason}),
        ),
        What::RolloutCleared => ("rollout_cleared", json!({})),
    }
}

#[cfg(test)]
#[path = "ps_changes_tests.rs"]
mod tests;
