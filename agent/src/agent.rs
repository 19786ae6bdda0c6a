//! The agent's life: setup (locks, the state watch), sessions with etcd
//! one after the other with back-off between them, and what it remembers
//! across sessions and restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use inotify::{Inotify, WatchMask};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

use crate::Args;
use crate::files;
use crate::host::Host;
use crate::keys::HostKeys;
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::session::{self, End};
use crate::status::{self, Applied};

/// Log one line on stderr, naming the host.
#[macro_export]
macro_rules! say {
    ($a:expr, $($t:tt)*) => {
        eprintln!("cairn-agent[{}]: {}", $a.keys.host, format!($($t)*))
    };
}

/// First and longest pause between two sessions.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct Agent {
    pub args: Args,
    pub host: Host,
    pub keys: HostKeys,
    /// The etcd revision applied up to (0: never synced; a full read).
    pub revision: i64,
    /// Sandboxes whose process config the agent installed: a deleted key
    /// empties only these.
    pub managed: BTreeSet<String>,
    pub results: BTreeMap<String, Applied>,
    /// The tree's state.json, as last read (`None`: no tree).
    pub state: Option<Value>,
    pub metrics: Metrics,
    /// Who this agent is, in the `agent` key: a restarted agent of the
    /// same host and runtime dir may take over from a dead one.
    pub identity: Value,
    state_file: PathBuf,
    saved_file: PathBuf,
    metrics_file: PathBuf,
    written_metrics: String,
}

impl Agent {
    /// Read the tree's state.json again (after inotify said it changed).
    pub fn read_state(&mut self) {
        self.state = match files::read_checked(&self.state_file) {
            Ok(Some(b)) => serde_json::from_slice(&b).ok(),
            Ok(None) => None,
            Err(e) => {
                say!(self, "{e}; ignored");
                None
            }
        };
    }

    /// The status value as it stands.
    pub fn status(&self) -> String {
        status::render(
            &self.keys.host,
            std::process::id(),
            self.revision,
            &self.results,
            self.state.as_ref(),
        )
    }

    /// Note an outcome: results, managed sandboxes, metrics, log.
    pub fn record(&mut self, sandbox: &str, revision: i64, outcome: Outcome) {
        match &outcome {
            Outcome::Applied => say!(self, "sandbox {sandbox}: revision {revision} applied"),
            o => say!(
                self,
                "sandbox {sandbox}: revision {revision} {}: {}",
                o.word(),
                o.message().unwrap_or("")
            ),
        }
        if !matches!(outcome, Outcome::Refused(_) | Outcome::Error(_)) {
            self.managed.insert(sandbox.to_string());
        }
        self.metrics.count(&outcome);
        self.results
            .insert(sandbox.to_string(), Applied { revision, outcome });
    }

    /// Save what a restarted agent resumes from, and the metrics.
    pub fn save(&mut self) {
        self.metrics.applied_revision = self.revision;
        let results: serde_json::Map<String, Value> = self
            .results
            .iter()
            .map(|(k, a)| (k.clone(), a.outcome.to_json(a.revision)))
            .collect();
        let saved = json!({
            "host": self.keys.host,
            "revision": self.revision,
            "managed": self.managed,
            "results": results,
        });
        if let Err(e) = files::write_atomic(&self.saved_file, saved.to_string().as_bytes(), 0o644) {
            say!(self, "cannot save the applied revision: {e}");
        }
        self.write_metrics();
    }

    pub fn write_metrics(&mut self) {
        let text = self.metrics.render(&self.keys.host);
        if text == self.written_metrics {
            return;
        }
        match files::write_atomic(&self.metrics_file, text.as_bytes(), 0o644) {
            Ok(()) => self.written_metrics = text,
            Err(e) => say!(self, "cannot write metrics: {e}"),
        }
    }

    /// Resume from `cairn-agent.json` when it is this host's.
    fn load_saved(&mut self) {
        let saved: Option<Value> = match files::read_checked(&self.saved_file) {
            Ok(Some(b)) => serde_json::from_slice(&b).ok(),
            Ok(None) => None,
            Err(e) => {
                say!(self, "{e}; starting with a full read");
                None
            }
        };
        let Some(saved) = saved.filter(|s| s["host"] == self.keys.host.as_str()) else {
            return;
        };
        self.revision = saved["revision"].as_i64().unwrap_or(0);
        if let Some(m) = saved["managed"].as_array() {
            self.managed = m
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
        }
        if let Some(r) = saved["results"].as_object() {
            for (name, v) in r {
                let msg = v["message"].as_str().unwrap_or("").to_string();
                let outcome = match v["result"].as_str() {
                    Some("applied") => Outcome::Applied,
                    Some("refused") => Outcome::Refused(msg),
                    Some("rollout-stopped") => Outcome::RolloutStopped(msg),
                    Some("timed-out") => Outcome::TimedOut(msg),
                    _ => Outcome::Error(msg),
                };
                let revision = v["revision"].as_i64().unwrap_or(0);
                self.results
                    .insert(name.clone(), Applied { revision, outcome });
            }
        }
        say!(self, "resuming from revision {}", self.revision);
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub async fn run(args: Args, host: Host) -> Result<(), String> {
    let runtime = host.master.runtime_dir.clone();
    let keys = HostKeys::new(&args.host);
    files::ensure_dir(&runtime, 0o755).map_err(|e| format!("host {}: {e}", args.host))?;
    let _lock = files::lock_pid_file(&runtime).map_err(|e| format!("host {}: {e}", args.host))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let identity = json!({
        "boot_id": boot_id(),
        "runtime_dir": runtime.display().to_string(),
        "pid": std::process::id(),
        "started_ns": now.as_nanos().to_string(),
    });
    let mut a = Agent {
        state_file: runtime.join("state.json"),
        saved_file: runtime.join("cairn-agent.json"),
        metrics_file: runtime.join("cairn-agent.prom"),
        args,
        host,
        keys,
        revision: 0,
        managed: BTreeSet::new(),
        results: BTreeMap::new(),
        state: None,
        metrics: Metrics {
            start_time: now.as_secs(),
            ..Metrics::default()
        },
        identity,
        written_metrics: String::new(),
    };
    a.load_saved();
    a.read_state();
    a.write_metrics();

    // The tree replaces state.json by a rename; inotify wakes us for each
    // replacement (and its removal when the tree stops): no polling.
    let inotify = Inotify::init().map_err(|e| format!("inotify: {e}"))?;
    inotify
        .watches()
        .add(
            &runtime,
            WatchMask::MOVED_TO | WatchMask::CREATE | WatchMask::DELETE | WatchMask::CLOSE_WRITE,
        )
        .map_err(|e| format!("inotify on {}: {e}", runtime.display()))?;
    let mut changes = inotify
        .into_event_stream([0u8; 4096])
        .map_err(|e| format!("inotify: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;

    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    loop {
        if !first {
            a.metrics.reconnects += 1;
        }
        first = false;
        let end = session::run(&mut a, &mut changes, &mut term, &mut int).await;
        a.metrics.connected = false;
        a.write_metrics();
        match end {
            End::Stop => {
                say!(a, "stopped");
                return Ok(());
            }
            End::Refused(why) => return Err(why),
            End::Lost { why, synced } => {
                if synced {
                    backoff = BACKOFF_MIN;
                }
                say!(
                    a,
                    "etcd session ended: {why}; again in {} ms (running configs stay)",
                    backoff.as_millis()
                );
            }
        }
        // Wait out the back-off, still following the tree's state.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                _ = term.recv() => { say!(a, "stopped"); return Ok(()); }
                _ = int.recv() => { say!(a, "stopped"); return Ok(()); }
                ev = changes.next() => {
                    if is_state_event(&ev) { a.read_state(); }
                }
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Whether an inotify event is about `state.json`.
pub fn is_state_event(ev: &Option<std::io::Result<inotify::EventOwned>>) -> bool {
    matches!(ev, Some(Ok(e)) if e.name.as_deref().is_some_and(|n| n == "state.json"))
}
