//! Sandbox ceilings: the most (or, for restart-timeout, the least) a
//! container config of a sandbox may ask for, so that an untrusted config
//! cannot pick its own limits.
//!
//! A config that asks for more is refused, naming the key and the ceiling.
//! A config that asks for nothing gets the ceiling where the ceiling is a
//! limit (memory, pids), and otherwise its default brought within the
//! ceiling (fileno 1024, tmpfs 100Mi, kill-timeout 5 s, restart-timeout
//! 1 s).

use serde::{Deserialize, Serialize};

use super::container::{
    ContainerConfig, DEFAULT_FILENO, DEFAULT_KILL_TIMEOUT, DEFAULT_PIDS_LIMIT,
    DEFAULT_RESTART_TIMEOUT, MAX_FILENO, MAX_PIDS, MIN_MEMORY, Volume,
};
use super::error::{ConfigError, Problems};
use super::reader::{Fields, Value, check};
use super::volume::DEFAULT_TMPFS_SIZE;

/// Defaults of a sandbox that sets no ceiling (see docs/config/sandbox.md
/// for why these numbers). `max-pids-limit` is the pids limit every
/// container got before ceilings existed; `min-restart-timeout` is
/// lithos's default restart-timeout, so neither changes a config that did
/// not ask.
pub const DEFAULT_MAX_PIDS: u64 = DEFAULT_PIDS_LIMIT;
pub const DEFAULT_MAX_FILENO: u64 = 65_536;
pub const DEFAULT_MAX_TMPFS: u64 = 1 << 30;
pub const DEFAULT_MAX_KILL_TIMEOUT: f64 = 60.0;
pub const DEFAULT_MIN_RESTART_TIMEOUT: f64 = 1.0;

/// The ceiling keys of a sandbox, as written (`None`: not written, the
/// default applies; for `max_memory_limit` that is "no ceiling").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    pub max_memory_limit: Option<u64>,
    pub max_pids_limit: Option<u64>,
    pub max_fileno_limit: Option<u64>,
    pub max_tmpfs_size: Option<u64>,
    pub max_kill_timeout: Option<f64>,
    pub min_restart_timeout: Option<f64>,
}

fn read_memory(v: &Value) -> Result<Option<u64>, ConfigError> {
    let n = v.u64()?;
    // As for memory-limit: 2^63-1 and more mean "no limit".
    if n >= i64::MAX as u64 {
        return Ok(None);
    }
    if n < MIN_MEMORY {
        return Err(v.err(format!(
            "{n} bytes is below the minimum of {MIN_MEMORY} (1Mi)"
        )));
    }
    Ok(Some(n))
}

fn read_at_least(v: &Value, min: u64, max: u64, why: &str) -> Result<u64, ConfigError> {
    let n = v.bounded(max)?;
    if n < min {
        return Err(v.err(format!("{n} is below the minimum of {min}{why}")));
    }
    Ok(n)
}

impl Ceilings {
    /// Read the ceiling keys of a sandbox file.
    pub fn read(f: &mut Fields, p: &mut Problems) -> Ceilings {
        let mut opt = |key: &str| f.opt(key);
        let (memory, pids, fileno) = (
            opt("max-memory-limit"),
            opt("max-pids-limit"),
            opt("max-fileno-limit"),
        );
        let (tmpfs, kill, restart) = (
            opt("max-tmpfs-size"),
            opt("max-kill-timeout"),
            opt("min-restart-timeout"),
        );
        Ceilings {
            max_memory_limit: memory.and_then(|v| check(p, read_memory(&v)).flatten()),
            max_pids_limit: pids.and_then(|v| {
                let why = " (0 would not even let the workload start)";
                check(p, read_at_least(&v, 1, MAX_PIDS, why))
            }),
            max_fileno_limit: fileno
                .and_then(|v| check(p, read_at_least(&v, 3, MAX_FILENO, " (stdio)"))),
            max_tmpfs_size: tmpfs.and_then(|v| {
                let why = " (0 would mean \"unlimited\")";
                check(p, read_at_least(&v, 1, u64::MAX, why))
            }),
            max_kill_timeout: kill.and_then(|v| check(p, v.seconds())),
            min_restart_timeout: restart.and_then(|v| check(p, v.seconds())),
        }
    }

    pub fn pids(&self) -> u64 {
        self.max_pids_limit.unwrap_or(DEFAULT_MAX_PIDS)
    }
    pub fn fileno(&self) -> u64 {
        self.max_fileno_limit.unwrap_or(DEFAULT_MAX_FILENO)
    }
    pub fn tmpfs(&self) -> u64 {
        self.max_tmpfs_size.unwrap_or(DEFAULT_MAX_TMPFS)
    }
    pub fn kill_timeout(&self) -> f64 {
        self.max_kill_timeout.unwrap_or(DEFAULT_MAX_KILL_TIMEOUT)
    }
    pub fn restart_timeout(&self) -> f64 {
        self.min_restart_timeout
            .unwrap_or(DEFAULT_MIN_RESTART_TIMEOUT)
    }

    /// The memory limit of an instance: its own, or the ceiling.
    pub fn memory_for(&self, c: &ContainerConfig) -> Option<u64> {
        c.memory_limit.or(self.max_memory_limit)
    }

    /// The pids limit of an instance: its own, or a ceiling the sandbox
    /// writes. `None` is the default ceiling, which the knot applies where
    /// the pids controller is on (as it did before ceilings existed, so the
    /// spec and its hash do not change for a sandbox without the key).
    pub fn pids_for(&self, c: &ContainerConfig) -> Option<u64> {
        c.pids_limit.or(self.max_pids_limit)
    }

    pub fn fileno_for(&self, c: &ContainerConfig) -> u64 {
        c.fileno_limit
            .unwrap_or_else(|| DEFAULT_FILENO.min(self.fileno()))
    }

    pub fn tmpfs_size_for(&self, size: Option<u64>) -> u64 {
        size.unwrap_or_else(|| DEFAULT_TMPFS_SIZE.min(self.tmpfs()))
    }

    pub fn kill_timeout_for(&self, c: &ContainerConfig) -> f64 {
        c.kill_timeout
            .unwrap_or_else(|| DEFAULT_KILL_TIMEOUT.min(self.kill_timeout()))
    }

    pub fn restart_timeout_for(&self, c: &ContainerConfig) -> f64 {
        c.restart_timeout
            .unwrap_or_else(|| DEFAULT_RESTART_TIMEOUT.max(self.restart_timeout()))
    }
}

/// A size as a person writes it: `15Ei`, `64Mi`, or plain bytes.
pub fn size_text(n: u64) -> String {
    for (unit, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        if n != 0 && n.trailing_zeros() >= shift {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// Every value of a container config beyond its sandbox's ceilings, each
/// naming the file, line and key, the ceiling and where it comes from.
/// `sandbox` is the sandbox file the ceilings come from.
pub fn check_container(
    file: &str,
    c: &ContainerConfig,
    ceil: &Ceilings,
    sandbox: &std::path::Path,
) -> Problems {
    // (key, what is wrong, whether the sandbox file writes the ceiling)
    let mut found: Vec<(String, String, bool)> = Vec::new();
    let mut above = |key: &str, asked: String, ceiling: &str, max: String, written: bool| {
        let msg = format!("{asked} is above the sandbox's {ceiling} {max}");
        found.push((key.to_string(), msg, written));
    };
    if let Some(max) = ceil.max_memory_limit {
        match c.memory_limit {
            Some(n) if n > max => above(
                "memory-limit",
                size_text(n),
                "max-memory-limit",
                size_text(max),
                true,
            ),
            None if c.lines.contains_key("memory-limit") => above(
                "memory-limit",
                "no limit".into(),
                "max-memory-limit",
                size_text(max),
                true,
            ),
            _ => {}
        }
    }
    if let Some(n) = c.pids_limit.filter(|&n| n > ceil.pids()) {
        let max = ceil.pids().to_string();
        above(
            "pids-limit",
            n.to_string(),
            "max-pids-limit",
            max,
            ceil.max_pids_limit.is_some(),
        );
    }
    if let Some(n) = c.fileno_limit.filter(|&n| n > ceil.fileno()) {
        let max = ceil.fileno().to_string();
        let written = ceil.max_fileno_limit.is_some();
        above(
            "fileno-limit",
            n.to_string(),
            "max-fileno-limit",
            max,
            written,
        );
    }
    if let Some(t) = c.kill_timeout.filter(|&t| t > ceil.kill_timeout()) {
        let max = ceil.kill_timeout().to_string();
        let written = ceil.max_kill_timeout.is_some();
        above(
            "kill-timeout",
            t.to_string(),
            "max-kill-timeout",
            max,
            written,
        );
    }
    for (target, vol) in &c.volumes {
        if let Volume::Tmpfs { size: Some(n), .. } = vol
            && *n > ceil.tmpfs()
        {
            let key = format!("volumes.{target}.size");
            let max = size_text(ceil.tmpfs());
            above(
                &key,
                size_text(*n),
                "max-tmpfs-size",
                max,
                ceil.max_tmpfs_size.is_some(),
            );
        }
    }
    if let Some(t) = c.restart_timeout.filter(|&t| t < ceil.restart_timeout()) {
        let min = ceil.restart_timeout();
        let msg = format!("{t} is below the sandbox's min-restart-timeout {min}");
        found.push((
            "restart-timeout".into(),
            msg,
            ceil.min_restart_timeout.is_some(),
        ));
    }
    let mut p = Problems::new();
    for (key, msg, written) in found {
        let origin = if written {
            sandbox.display().to_string()
        } else {
            format!("{}; the default", sandbox.display())
        };
        let line = c.lines.get(&key).copied().unwrap_or(0);
        p.push(
            ConfigError::new(file, format!("{msg} ({origin})"))
                .at(line)
                .key(key),
        );
    }
    p
}

#[cfg(test)]
#[path = "ceilings_tests.rs"]
mod tests;
