//! `metrics.prom`, the Prometheus textfile: pure, from what the tree
//! counts and holds. Every series of a process is written for every
//! process the tree knows (0, not missing, also right after an adoption);
//! no row sums the others (totals are the scraper's job: a total row under
//! empty labels made `sum(cairn_running)` twice the truth).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::lifecycle::State;
use super::plan::ProcKey;
use super::state::Counters;

/// Everything the textfile says.
pub struct Input<'a> {
    pub counters: &'a BTreeMap<ProcKey, Counters>,
    /// Wanted instances per process (the configs).
    pub desired: BTreeMap<ProcKey, u64>,
    /// Instances per process and state.
    pub by_state: BTreeMap<(ProcKey, State), u64>,
    /// Processes with a rollout under way, and with a stopped one.
    pub rolling: BTreeSet<ProcKey>,
    pub halted: BTreeSet<ProcKey>,
    /// Config problems of the last load, per file.
    pub config_errors: BTreeMap<String, u64>,
    /// The last (re)load: when, and whether every config loaded.
    pub last_reload: Option<(SystemTime, bool)>,
    pub unknown_children: u64,
    pub version: &'a str,
    pub started: SystemTime,
    pub upgrades: u32,
}

const STATES: [State; 5] = [
    State::Starting,
    State::Running,
    State::Stopping,
    State::Backoff,
    State::Failed,
];

/// A label value, escaped as the text format asks.
pub fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64 / 1000.0)
}

/// The file of a config problem (`FILE:LINE: ...` or `FILE: ...`).
pub fn problem_file(problem: &str) -> &str {
    problem.split(": ").next().map_or(problem, |head| {
        // `FILE:LINE` → FILE.
        match head.rsplit_once(':') {
            Some((file, line)) if line.bytes().all(|b| b.is_ascii_digit()) => file,
            _ => head,
        }
    })
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn row(out: &mut String, name: &str, (s, p): &ProcKey, extra: &str, v: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "{name}{{sandbox=\"{}\",process=\"{}\"{extra}}} {v}",
        label(s),
        label(p)
    );
}

/// The textfile.
pub fn render(m: &Input<'_>) -> String {
    let mut procs: BTreeSet<&ProcKey> = m.counters.keys().collect();
    procs.extend(m.desired.keys());
    procs.extend(m.by_state.keys().map(|(k, _)| k));
    let mut out = String::new();
    type Counter = (&'static str, &'static str, fn(&Counters) -> u64);
    let counters: [Counter; 9] = [
        (
            "cairn_started_total",
            "Instances started (knots spawned).",
            |c| c.started,
        ),
        (
            "cairn_restarts_total",
            "Starts of an instance that had run before (after an exit or a config change).",
            |c| c.restarts,
        ),
        ("cairn_deaths_total", "Instance deaths (knot exits).", |c| {
            c.deaths
        }),
        ("cairn_failures_total", "Deaths counted as failures.", |c| {
            c.failures
        }),
        (
            "cairn_oom_kills_total",
            "Deaths by the OOM killer (memory-limit).",
            |c| c.oom_kills,
        ),
        (
            "cairn_refused_starts_total",
            "Starts that failed in a way a retry cannot change (executable or workdir missing from the image, not executable).",
            |c| c.refused,
        ),
        (
            "cairn_rollouts_stopped_total",
            "Rollouts stopped because their new instance failed (crashed, was not ready in time, or failed within min-ready).",
            |c| c.rollouts_stopped,
        ),
        (
            "cairn_health_kills_total",
            "Instances killed because their health check failed too often.",
            |c| c.health_kills,
        ),
        (
            "cairn_notify_refused_total",
            "Datagrams on notify sockets (ready: !Notify) refused because their sender was not a process of the instance.",
            |c| c.notify_refused,
        ),
    ];
    let zero = Counters::default();
    for (name, help, get) in counters {
        family(&mut out, name, "counter", help);
        for k in &procs {
            row(
                &mut out,
                name,
                k,
                "",
                get(m.counters.get(*k).unwrap_or(&zero)),
            );
        }
    }
    family(
        &mut out,
        "cairn_desired_instances",
        "gauge",
        "Instances the configs ask for.",
    );
    for k in &procs {
        row(
            &mut out,
            "cairn_desired_instances",
            k,
            "",
            m.desired.get(*k).copied().unwrap_or(0),
        );
    }
    family(
        &mut out,
        "cairn_instances",
        "gauge",
        "Instances by state (starting, running, stopping, backoff, failed).",
    );
    for k in &procs {
        for s in STATES {
            let n = m.by_state.get(&((*k).clone(), s)).copied().unwrap_or(0);
            let extra = format!(",state=\"{}\"", s.as_str());
            row(&mut out, "cairn_instances", k, &extra, n);
        }
    }
    family(
        &mut out,
        "cairn_running",
        "gauge",
        "Instances that run and are ready (state running).",
    );
    for k in &procs {
        let n = m
            .by_state
            .get(&((*k).clone(), State::Running))
            .copied()
            .unwrap_or(0);
        row(&mut out, "cairn_running", k, "", n);
    }
    family(
        &mut out,
        "cairn_rollout_in_progress",
        "gauge",
        "1 while a rollout of the process is under way.",
    );
    for k in &procs {
        row(
            &mut out,
            "cairn_rollout_in_progress",
            k,
            "",
            u8::from(m.rolling.contains(*k)),
        );
    }
    family(
        &mut out,
        "cairn_rollout_stopped",
        "gauge",
        "1 while the last rollout of the process is stopped (a new instance failed).",
    );
    for k in &procs {
        row(
            &mut out,
            "cairn_rollout_stopped",
            k,
            "",
            u8::from(m.halted.contains(*k)),
        );
    }
    family(
        &mut out,
        "cairn_config_errors",
        "gauge",
        "Problems the last config load found, per file.",
    );
    for (file, n) in &m.config_errors {
        let _ = writeln!(out, "cairn_config_errors{{file=\"{}\"}} {n}", label(file));
    }
    if let Some((at, ok)) = m.last_reload {
        family(
            &mut out,
            "cairn_last_reload_success",
            "gauge",
            "1 when every config loaded at the last (re)load.",
        );
        let _ = writeln!(out, "cairn_last_reload_success {}", u8::from(ok));
        family(
            &mut out,
            "cairn_last_reload_timestamp_seconds",
            "gauge",
            "When the last (re)load ran.",
        );
        let _ = writeln!(
            out,
            "cairn_last_reload_timestamp_seconds {:.3}",
            seconds(at)
        );
    }
    family(
        &mut out,
        "cairn_unknown_children_total",
        "counter",
        "Reaped processes that were no instance.",
    );
    let _ = writeln!(out, "cairn_unknown_children_total {}", m.unknown_children);
    family(
        &mut out,
        "cairn_upgrades_total",
        "counter",
        "In-place upgrades of the tree since it started.",
    );
    let _ = writeln!(out, "cairn_upgrades_total {}", m.upgrades);
    family(
        &mut out,
        "cairn_start_time_seconds",
        "gauge",
        "When the tree started (kept across upgrades).",
    );
    let _ = writeln!(out, "cairn_start_time_seconds {:.3}", seconds(m.started));
    family(
        &mut out,
        "cairn_build_info",
        "gauge",
        "The running cairn's version.",
    );
    let _ = writeln!(
        out,
        "cairn_build_info{{version=\"{}\"}} 1",
        label(m.version)
    );
    out
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
