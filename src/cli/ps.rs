//! `cairn ps [--json] [--watch]`: what runs, from `<runtime-dir>/state.json`, with
//! CPU and memory read live from each instance's cgroup and the workload's
//! host pid from the knot's children.

use std::fmt::Write;
use std::path::Path;

use crate::config::master::Master;
use crate::text::{self, escape};
use crate::tree::state::Snapshot;

/// The most of state.json we read (about 64 KiB per instance at 10,000
/// instances would still fit).
pub(super) const STATE_CAP: usize = 1 << 30;

/// `--sandbox` and `--state`: which instances to show (all by default).
#[derive(Default)]
pub struct Filter<'a> {
    pub sandbox: Option<&'a str>,
    pub state: Option<&'a str>,
}

impl Filter<'_> {
    pub fn keeps(&self, i: &crate::tree::state::InstanceInfo) -> bool {
        self.sandbox.is_none_or(|s| i.sandbox == s) && self.state.is_none_or(|s| i.state == s)
    }
}

pub fn run(master_path: &Path, json: bool, filter: &Filter<'_>) -> u8 {
    match load(master_path) {
        Ok(master) => once(&master, json, filter),
        Err(code) => code,
    }
}

/// master.yaml, or its problems said on stderr and 1.
pub fn load(master_path: &Path) -> Result<Master, u8> {
    Master::load(master_path).map_err(|p| {
        super::eprint_problems(&p);
        1
    })
}

/// `cairn ps` without `--watch`: the state as it is now; 1 when the tree
/// is not running.
pub fn once(master: &Master, json: bool, filter: &Filter<'_>) -> u8 {
    let snap = match read_state(master) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let dead = tree_gone(master);
    if let Some(why) = &dead {
        say_dead(master, &snap, why);
    }
    print!("{}", show(snap, dead.is_none(), json, filter));
    u8::from(dead.is_some())
}

/// Why the tree of `master` does not run (no one holds the pid file's
/// lock), or `None` while it runs (also when it runs in another pid
/// namespace, where its pid cannot be seen from here).
pub fn tree_gone(master: &Master) -> Option<String> {
    match super::signal::running_tree(master) {
        Ok(_) => None,
        Err(e) if e.contains("another pid namespace") => None,
        Err(e) => Some(e),
    }
}

/// A tree killed (kill -9, a crash with no restart) leaves its last
/// state.json behind: say so, and since when.
fn say_dead(master: &Master, snap: &Snapshot, why: &str) {
    let written = std::fs::metadata(master.state_file())
        .and_then(|m| m.modified())
        .map(|t| {
            let ago = std::time::SystemTime::now()
                .duration_since(t)
                .map_or(0, |d| d.as_secs());
            format!("{} ({ago} s ago)", text::rfc3339(t))
        })
        .unwrap_or_else(|_| "at an unknown time".to_string());
    eprintln!(
        "cairn ps: {}; the tree (pid {}) is not running. This is its last state, written {written}: \
         what it lists may have died since.",
        escape(why),
        snap.tree.pid
    );
}

/// What `ps` prints of `snap` (the instances `filter` keeps, with CPU,
/// memory and workload pids read now): one JSON line, or the text form.
pub fn show(mut snap: Snapshot, running: bool, json: bool, filter: &Filter<'_>) -> String {
    snap.instances.retain(|i| filter.keeps(i));
    for i in &mut snap.instances {
        if let Some(pid) = i.pid {
            i.workload_pid = workload_pid(pid);
        }
        if let (Some(cg), Some(leaf)) = (&snap.cgroups, &i.cgroup)
            && i.pid.is_some()
        {
            i.cpu_seconds = cg.cpu_ns(leaf).map(|ns| ns as f64 / 1e9);
            i.memory_bytes = cg.memory_bytes(leaf);
        }
    }
    let mut out = String::new();
    if json {
        let mut tree = serde_json::to_value(&snap.tree).unwrap_or_default();
        if let Some(t) = tree.as_object_mut() {
            t.insert("running".into(), running.into());
        }
        let v = serde_json::json!({
            "tree": tree,
            "instances": snap.instances,
            "config_errors": snap.config_errors,
            "rollouts": snap.rollouts,
            "config_problems": snap.config_problems,
        });
        // serde escaped the C0 controls; `text::json` shows the rest.
        let _ = writeln!(out, "{}", text::json(&v.to_string()));
        return out;
    }
    // Everything below may quote an image's config or a knot's error:
    // every string is shown escaped, one line per record.
    let now = std::time::SystemTime::now();
    let up = super::ps_text::parse_rfc3339(&snap.tree.started)
        .and_then(|t| now.duration_since(t).ok())
        .map_or_else(|| "-".to_string(), super::ps_text::age);
    let head = format!(
        "tree pid {} version {} up {up} upgrades {} reloads {}",
        snap.tree.pid,
        escape(&snap.tree.version),
        snap.tree.upgrades,
        snap.tree.reloads
    );
    let _ = writeln!(out, "{}", super::ps_text::fit("", &head));
    for e in &snap.config_errors {
        let _ = writeln!(out, "{}", super::ps_text::fit("config error: ", &escape(e)));
    }
    for r in &snap.rollouts {
        let what = match (&r.instance, &r.reason) {
            (_, Some(why)) => format!("stopped: {why}"),
            _ => "in progress".to_string(),
        };
        let head = format!(
            "rollout {}/{} ({} of {} done): ",
            escape(&r.sandbox),
            escape(&r.process),
            r.done,
            r.total,
        );
        let _ = writeln!(out, "{}", super::ps_text::fit(&head, &escape(&what)));
    }
    out.push_str(&super::ps_text::render(&snap, now));
    out
}

/// The tree's `state.json`, or why not (one escaped line). Opened
/// non-blocking and read only if it is a regular file: a FIFO or a device
/// there must not hang the command.
pub fn read_state(master: &Master) -> Result<Snapshot, String> {
    let path = master.state_file();
    match crate::config::read_file_capped(&path, STATE_CAP) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| format!("{}: {}", text::path(&path), escape(&e.to_string()))),
        Err(_) if std::fs::symlink_metadata(&path).is_err() => Err(format!(
            "cairn ps: no cairn tree runs with runtime dir {} (no state.json)",
            text::path(&master.runtime_dir)
        )),
        Err(e) => Err(format!("cairn ps: {}: {}", text::path(&path), escape(&e))),
    }
}

/// The knot's first child (the workload), as a host pid.
fn workload_pid(knot: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{knot}/task/{knot}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
