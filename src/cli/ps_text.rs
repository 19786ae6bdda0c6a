//! `cairn ps` for a terminal: 80 columns, ages instead of timestamps, the
//! next start of an instance in back-off, and a summary line per process
//! and in total. Pure: the snapshot and "now" in, the text out. Every
//! string from the state is escaped (it may quote an image's config).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::text::escape;
use crate::tree::state::{InstanceInfo, Snapshot};

/// Seconds since the epoch of an RFC 3339 UTC time as cairn writes it
/// (`2026-12-03T07:53:54Z`, maybe with `.mmm`); `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// A short age: `45s`, `12m`, `3h`, `5d`.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m", s / 60),
        6000..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn since(when: &str, now: SystemTime) -> String {
    parse_rfc3339(when)
        .and_then(|t| now.duration_since(t).ok())
        .map_or_else(|| "-".to_string(), age)
}

/// What the last column says of an instance.
fn last(i: &InstanceInfo, now: SystemTime) -> String {
    let mut out = String::new();
    if i.state == "backoff"
        && let Some(t) = i.next_start.as_deref().and_then(parse_rfc3339)
    {
        let left = t.duration_since(now).unwrap_or_default();
        let _ = write!(out, "next in {} ", age(left));
    }
    match (&i.last_exit, &i.error) {
        (_, Some(e)) if i.state == "failed" => {
            let _ = write!(out, "error: {}", e.trim());
        }
        (Some(l), _) => match &l.error {
            Some(e) => {
                let _ = write!(out, "error: {}", e.trim());
            }
            None => {
                let _ = write!(
                    out,
                    "exit {}{}",
                    l.status,
                    if l.oom_killed { " (oom)" } else { "" }
                );
            }
        },
        (None, Some(e)) => {
            let _ = write!(out, "error: {}", e.trim());
        }
        (None, None) => {}
    }
    out
}

/// A terminal's width.
const COLUMNS: usize = 80;

/// The instance rows and the summary, for a terminal of 80 columns: a
/// last column that does not fit is cut with `…` and shown whole on the
/// next line, indented (a name longer than 24 makes its row longer).
pub fn render(snap: &Snapshot, now: SystemTime) -> String {
    let mut out = String::new();
    let width = name_width(snap);
    let _ = writeln!(
        out,
        "{:<width$} {:<8} {:>7} {:>3} {:>4} {:>6} {:>5} LAST",
        "INSTANCE", "STATE", "PID", "RST", "AGE", "CPU(s)", "MiB"
    );
    let dash = || "-".to_string();
    for i in &snap.instances {
        let row = format!(
            "{:<width$} {:<8} {:>7} {:>3} {:>4} {:>6} {:>5} ",
            escape(&i.name),
            escape(&i.state),
            i.pid.map(|p| p.to_string()).unwrap_or_else(dash),
            i.restarts,
            since(&i.since, now),
            i.cpu_seconds
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(dash),
            i.memory_bytes
                .map(|m| format!("{:.1}", m as f64 / 1_048_576.0))
                .unwrap_or_else(dash),
        );
        let _ = writeln!(out, "{}", fit(&row, &escape(&last(i, now))));
    }
    out.push_str(&summary(snap));
    out
}

/// `row` then `last` on one line of 80 columns; a `last` that does not
/// fit is cut with `…`, and shown whole on a line of its own below,
/// indented. No newline at the end.
pub fn fit(row: &str, last: &str) -> String {
    let room = COLUMNS.saturating_sub(row.chars().count());
    if last.chars().count() <= room {
        format!("{row}{last}")
    } else {
        let cut: String = last.chars().take(room.saturating_sub(1)).collect();
        format!("{row}{cut}…\n  {last}")
    }
}

/// The width of the INSTANCE column: the longest (escaped) name, between
/// 8 and 24.
pub fn name_width(snap: &Snapshot) -> usize {
    snap.instances
        .iter()
        .map(|i| escape(&i.name).chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 24)
}

/// `total: 5 running, 1 starting, 1 backoff, 0 failed` and, with more than
/// one process, the same per process.
fn summary(snap: &Snapshot) -> String {
    const STATES: [&str; 5] = ["running", "starting", "stopping", "backoff", "failed"];
    let mut per: BTreeMap<(String, String), [u32; 5]> = BTreeMap::new();
    let mut total = [0u32; 5];
    for i in &snap.instances {
        if let Some(k) = STATES.iter().position(|s| *s == i.state) {
            per.entry((i.sandbox.clone(), i.process.clone()))
                .or_default()[k] += 1;
            total[k] += 1;
        }
    }
    let words = |c: &[u32; 5]| {
        STATES
            .iter()
            .zip(c)
            .filter(|(s, n)| **n > 0 || ["running", "failed"].contains(*s))
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    if per.len() > 1 {
        for ((s, p), c) in &per {
            let _ = writeln!(out, "{}/{}: {}", escape(s), escape(p), words(c));
        }
    }
    let _ = writeln!(out, "total: {}", words(&total));
    out
}

#[cfg(test)]
#[path = "ps_text_tests.rs"]
mod tests;
