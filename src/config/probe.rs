//! `ready` of a container config: how the service tells it is ready to
//! serve (`!Fd`, `!Tcp`, `!Http`, `!Notify`, `!Exec`), with
//! `ready-timeout` and, for `!Notify`, `watchdog-timeout`; and
//! `health-check` (`!Tcp`, `!Http`, `!Exec`) with its interval, timeout
//! and failures.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::error::{ConfigError, Problems};
use super::reader::{Fields, Value, check, finish_one};

/// The default `ready-timeout`, in seconds.
pub const DEFAULT_READY_TIMEOUT: f64 = 60.0;

/// Lowest fd a `!Fd` may name: 0 to 2 are the workload's stdio.
pub const MIN_READY_FD: u32 = 3;

/// Highest fd a `!Fd` may name (the least `fileno-limit` cairn allows is
/// 3; the fd must also be below the instance's own limit, checked where
/// that is known).
pub const MAX_READY_FD: u32 = 1023;

/// A readiness probe as the config gives it. Ports may hold `@{var}`;
/// they are substituted and checked when the instance is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Probe {
    /// The workload writes a newline to this fd (s6, dinit).
    Fd(u32),
    /// A TCP connect to this port succeeds, in the container's network.
    Tcp(String),
    /// `GET path` on this port answers with a 2xx or 3xx status.
    Http { port: String, path: String },
    /// The sd_notify protocol: `READY=1` on the instance's own socket
    /// (`NOTIFY_SOCKET`).
    Notify,
    /// This command, run inside the instance as `cairn exec` runs one,
    /// exits 0. Its words may hold `@{var}`.
    Exec(Vec<String>),
}

/// The most words an `!Exec` probe may have, and bytes in one word.
pub const MAX_EXEC_WORDS: usize = 64;
pub const MAX_EXEC_WORD: usize = 4096;

impl Probe {
    /// The port text (may hold `@{var}`), for probes that have one.
    pub fn port(&self) -> Option<&str> {
        match self {
            Probe::Fd(_) | Probe::Notify | Probe::Exec(_) => None,
            Probe::Tcp(p) | Probe::Http { port: p, .. } => Some(p),
        }
    }
}

/// A port: a number or a `@{var}` template (checked once substituted).
fn port_text(v: &Value) -> Result<String, ConfigError> {
    let s = v.str_any_tag()?.trim().to_string();
    if s.is_empty() {
        return Err(v.err("a port is expected (a number or @{variable})"));
    }
    Ok(s)
}

/// An HTTP path for a request line: absolute, printable ASCII, no spaces
/// (nothing that could end the request line or add a header).
pub fn http_path_ok(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?} is not an absolute path (it starts with /)"
        ));
    }
    if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{path:?} has {c:?}; a path is printable ASCII without spaces (percent-encode the rest)"
        ));
    }
    if path.len() > 1024 {
        return Err("longer than 1024 bytes".to_string());
    }
    Ok(())
}

/// The default `health-interval`, `health-timeout` (seconds) and
/// `health-failures`.
pub const DEFAULT_HEALTH_INTERVAL: f64 = 10.0;
pub const DEFAULT_HEALTH_TIMEOUT: f64 = 2.0;
pub const DEFAULT_HEALTH_FAILURES: u32 = 3;
/// The most `health-failures`.
pub const MAX_HEALTH_FAILURES: u64 = 100;

/// The readiness, health and watchdog keys of a container config, as
/// given (`None`: not given).
#[derive(Debug, Default)]
pub struct ServiceKeys {
    pub ready: Option<Probe>,
    pub ready_timeout: Option<f64>,
    pub health_check: Option<Probe>,
    pub health_interval: Option<f64>,
    pub health_timeout: Option<f64>,
    pub health_failures: Option<u32>,
    pub watchdog_timeout: Option<f64>,
}

/// Read `ready`, `ready-timeout`, `health-check`, `health-interval`,
/// `health-timeout`, `health-failures` and `watchdog-timeout`, recording
/// each key's line in `lines` and each problem in `p`.
pub fn read_service_keys(
    f: &mut Fields,
    p: &mut Problems,
    lines: &mut BTreeMap<String, usize>,
) -> ServiceKeys {
    let ready = f.opt_tagged("ready").and_then(|v| {
        lines.insert("ready".to_string(), v.line());
        check(p, read_probe(&v))
    });
    let ready_timeout = positive(
        f,
        p,
        lines,
        "ready-timeout",
        "0 would fail every start; give at least a fraction of a second",
    );
    let health_check = f.opt("health-check").and_then(|v| {
        lines.insert("health-check".to_string(), v.line());
        check(p, read_health_check(&v))
    });
    let health_interval = positive(f, p, lines, "health-interval", "must be above 0");
    let health_timeout = positive(f, p, lines, "health-timeout", "must be above 0");
    let health_failures = f.opt("health-failures").and_then(|v| {
        lines.insert("health-failures".to_string(), v.line());
        match check(p, v.bounded(MAX_HEALTH_FAILURES)) {
            Some(0) => {
                p.push(v.err("0 would restart at once; give at least 1"));
                None
            }
            other => other.map(|n| n as u32),
        }
    });
    let watchdog_timeout = positive(
        f,
        p,
        lines,
        "watchdog-timeout",
        "0 would restart the instance at once; give at least a fraction of a second",
    );
    ServiceKeys {
        ready,
        ready_timeout,
        health_check,
        health_interval,
        health_timeout,
        health_failures,
        watchdog_timeout,
    }
}

/// Seconds above 0 at `key` (`seconds` already refuses a negative number,
/// so what is left to refuse is 0, said in `zero`'s words).
fn positive(
    f: &mut Fields,
    p: &mut Problems,
    lines: &mut BTreeMap<String, usize>,
    key: &str,
    zero: &str,
) -> Option<f64> {
    f.opt(key).and_then(|v| {
        lines.insert(key.to_string(), v.line());
        match check(p, v.seconds()) {
            Some(t) if t <= 0.0 => {
                p.push(v.err(zero));
                None
            }
            other => other,
        }
    })
}

/// Read `health-check`: a `!Tcp`, `!Http` or `!Exec` probe.
pub fn read_health_check(v: &Value) -> Result<Probe, ConfigError> {
    match v.tag() {
        Some("Tcp" | "Http" | "Exec") => read_probe(v),
        _ => Err(v.err(
            "a health check is expected: !Tcp PORT, !Http {port: PORT, path: /PATH} or !Exec [COMMAND, ARG...]",
        )),
    }
}

/// `!Exec [COMMAND, ARG...]`: one word at least, each a string without
/// NUL; at most `MAX_EXEC_WORDS` of at most `MAX_EXEC_WORD` bytes.
fn read_exec(v: &Value) -> Result<Probe, ConfigError> {
    let items = v.seq_tagged_ok()?;
    if items.is_empty() {
        return Err(v.err("!Exec needs a command: !Exec [COMMAND, ARG...]"));
    }
    if items.len() > MAX_EXEC_WORDS {
        return Err(v.err(format!("more than {MAX_EXEC_WORDS} words")));
    }
    let mut words = Vec::with_capacity(items.len());
    for i in &items {
        let w = i.string()?;
        if w.contains('\0') {
            return Err(i.err("a NUL character is not allowed here"));
        }
        if w.len() > MAX_EXEC_WORD {
            return Err(i.err(format!("longer than {MAX_EXEC_WORD} bytes")));
        }
        words.push(w);
    }
    if words[0].is_empty() {
        return Err(items[0].err("the command is empty"));
    }
    Ok(Probe::Exec(words))
}

/// Read `ready`.
pub fn read_probe(v: &Value) -> Result<Probe, ConfigError> {
    let tag = v.tag().ok_or_else(|| {
        v.err("a readiness probe is expected: !Fd N, !Tcp PORT, !Http {port: PORT, path: /PATH}, !Notify or !Exec [COMMAND, ARG...]")
    })?;
    match tag {
        "Fd" => {
            let n = v.str_any_tag()?;
            let fd: u32 = n
                .trim()
                .parse()
                .map_err(|_| v.err(format!("{n:?} is not an fd number")))?;
            if !(MIN_READY_FD..=MAX_READY_FD).contains(&fd) {
                return Err(v.err(format!(
                    "fd {fd} is out of range {MIN_READY_FD}-{MAX_READY_FD} (0-2 are stdio)"
                )));
            }
            Ok(Probe::Fd(fd))
        }
        "Tcp" => Ok(Probe::Tcp(port_text(v)?)),
        "Http" => {
            let mut f = v.fields_tagged_ok()?;
            let port = port_text(&f.req("port")?)?;
            let path = match f.opt("path") {
                Some(p) => {
                    let s = p.string()?;
                    http_path_ok(&s).map_err(|m| p.err(m))?;
                    s
                }
                None => "/".to_string(),
            };
            finish_one(f)?;
            Ok(Probe::Http { port, path })
        }
        "Exec" => read_exec(v),
        "Notify" if v.is_null() => Ok(Probe::Notify),
        "Notify" => Err(v.err("!Notify takes no value (write `ready: !Notify`)")),
        other => Err(v.err(format!(
            "unknown readiness probe !{other}; one of !Fd, !Tcp, !Http, !Notify, !Exec"
        ))),
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
