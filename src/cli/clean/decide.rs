//! Which images of one image-dir go and why: pure, from the facts
//! `gather` collected, so every rule is unit-tested.
//!
//! An image is kept, first reason that holds:
//! 1. a process runs in it (its root is the image), or the tree's
//!    state.json lists an instance of it, whatever its config says now;
//! 2. a process entry of a sandbox using this image-dir names it;
//! 3. a sandbox's `used-images-list` names it;
//! 4. something is mounted in it (the walk never crosses a mount);
//! 5. the config log shows it in use within `--keep-days` (without
//!    `--keep-days`: ever);
//! 6. it is one of the `--keep-recent` newest (by mtime) of the rest.
//!
//! Everything else goes: unused since the config log's last use, or never
//! used.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::text::{escape, rfc3339};

/// What is known of one image.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// Relative to the image-dir (`a/b` with `image-dir-levels: 2`).
    pub name: String,
    pub mtime: Option<SystemTime>,
    /// Who runs in it: `box/web.1 (running)`, `pid 123 (sleep)`.
    pub running: Vec<String>,
    /// Process entries naming it: `box/web`.
    pub configured: Vec<String>,
    /// `used-images-list` files naming it.
    pub listed: Vec<PathBuf>,
    /// A mount point inside it.
    pub mount: Option<String>,
    /// Its last use per the config log.
    pub last_used: Option<SystemTime>,
}

/// Where the history comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// `config-log-dir: null`.
    Off,
    /// The config log, its first line about this image-dir at this time
    /// (`None`: no line names it).
    Log(Option<SystemTime>),
}

#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// `--keep-days`: `None` keeps everything the config log names.
    pub keep_days: Option<f64>,
    /// `--keep-recent`.
    pub keep_recent: usize,
    pub now: SystemTime,
    pub history: History,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Running(Vec<String>),
    Configured(Vec<String>),
    Listed(Vec<PathBuf>),
    Mount(String),
    /// Used at this time, within `--keep-days` (or with none given).
    Used(SystemTime, Option<f64>),
    /// One of the N newest; its mtime.
    Recent(usize, Option<SystemTime>),
    /// Goes: unused since (per the config log), outside `--keep-days`.
    Unused(SystemTime, f64),
    /// Goes: never in the config log.
    Never(History),
}

impl Verdict {
    pub fn removes(&self) -> bool {
        matches!(self, Verdict::Unused(..) | Verdict::Never(_))
    }
}

fn days(d: f64) -> String {
    let s = format!("{d}");
    if d == 1.0 {
        "1 day".into()
    } else {
        format!("{s} days")
    }
}

fn list(v: &[String]) -> String {
    v.iter()
        .map(|s| escape(s).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Running(who) => write!(f, "in use by {}", list(who)),
            Verdict::Configured(by) => write!(f, "configured for {}", list(by)),
            Verdict::Listed(files) => {
                let files: Vec<String> = files
                    .iter()
                    .map(|p| crate::text::path(p).into_owned())
                    .collect();
                write!(f, "listed in {}", files.join(", "))
            }
            Verdict::Mount(m) => {
                write!(f, "{} is a mount point inside it; never crossed", escape(m))
            }
            Verdict::Used(t, Some(d)) => write!(
                f,
                "used until {} per the config log, within --keep-days {}",
                rfc3339(*t),
                d
            ),
            Verdict::Used(t, None) => write!(
                f,
                "used until {} per the config log (without --keep-days every image the log names is kept)",
                rfc3339(*t)
            ),
            Verdict::Recent(n, mtime) => {
                if *n == 1 {
                    write!(f, "the newest unused (--keep-recent 1)")?;
                } else {
                    write!(f, "one of the {n} newest unused (--keep-recent {n})")?;
                }
                if let Some(t) = mtime {
                    write!(f, ", modified {}", rfc3339(*t))?;
                }
                Ok(())
            }
            Verdict::Unused(t, d) => write!(
                f,
                "unused since {} per the config log, more than {} ago (--keep-days {d})",
                rfc3339(*t),
                days(*d)
            ),
            Verdict::Never(History::Off) => {
                write!(f, "not in use (no config log: config-log-dir is null)")
            }
            Verdict::Never(History::Log(Some(since))) => write!(
                f,
                "never used per the config log (since {})",
                rfc3339(*since)
            ),
            Verdict::Never(History::Log(None)) => write!(
                f,
                "never used per the config log (no line of it names this image-dir)"
            ),
        }
    }
}

/// The verdict of every image, in the order given.
pub fn decide(images: &[Image], rules: &Rules) -> Vec<Verdict> {
    let cutoff = rules.keep_days.map(|d| {
        let secs = (d * 86_400.0).clamp(0.0, 1e15);
        rules
            .now
            .checked_sub(Duration::from_secs_f64(secs))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    });
    let mut out: Vec<Verdict> = images
        .iter()
        .map(|i| {
            if !i.running.is_empty() {
                return Verdict::Running(i.running.clone());
            }
            if !i.configured.is_empty() {
                return Verdict::Configured(i.configured.clone());
            }
            if !i.listed.is_empty() {
                return Verdict::Listed(i.listed.clone());
            }
            if let Some(m) = &i.mount {
                return Verdict::Mount(m.clone());
            }
            match (i.last_used, cutoff, rules.keep_days) {
                (Some(t), Some(c), Some(d)) if t < c => Verdict::Unused(t, d),
                (Some(t), _, d) => Verdict::Used(t, d),
                (None, _, _) => Verdict::Never(rules.history),
            }
        })
        .collect();
    // --keep-recent: of what would go, the N newest by mtime stay (no
    // mtime counts as newest: keep what cannot be judged). Ties by name.
    let mut going: Vec<usize> = (0..images.len()).filter(|&i| out[i].removes()).collect();
    going.sort_by(|&a, &b| {
        let key = |i: usize| {
            images[i]
                .mtime
                .map_or((1, SystemTime::UNIX_EPOCH), |t| (0, t))
        };
        key(b)
            .cmp(&key(a))
            .then(images[a].name.cmp(&images[b].name))
    });
    for &i in going.iter().take(rules.keep_recent) {
        out[i] = Verdict::Recent(rules.keep_recent, images[i].mtime);
    }
    out
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
