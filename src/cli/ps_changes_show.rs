//! How a change reads: one line of text (80 columns) or one JSON object.

use std::fmt::Write;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::super::ps_text::{age, fit, parse_rfc3339};
use super::{Change, Subject, What};
use crate::text::escape;
use crate::tree::state::LastExit;

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
pub(super) fn exit_text(l: &LastExit) -> String {
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
