//! `cairn tree` end to end: the real binary supervising real containers.
//! Each test starts its own tree on its own temp dir (configs, busybox
//! image, runtime and log dirs) and its own cgroup root, and checks what an
//! operator sees: `cairn ps --json`, `/proc`, the runtime files, the logs
//! and exit codes.
//!
//! Needs root and Debian's busybox-static; skips otherwise (fails under
//! `CI=true`). Waits poll `cairn ps --json` (or `/proc`) with a deadline;
//! no test relies on a long fixed sleep. The fixture's `Drop` stops the tree
//! it started (SIGTERM to that pid, SIGKILL if it hangs), then kills
//! whatever is left in the test's own cgroup root and removes it.
//!
//! This file holds the fixture and the helpers the tests share; the tests
//! are in tests/tree/, one file per concern.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::{
    CgroupGuard, ConfigSet, cairn, cairn_bin, cgroup_leaves, cgroup_procs, cgroup_root_dirs,
    container_prereqs, descendants, make_busybox_image, output_within, stderr, stdout,
};

/// The ids workloads run as.
const UID: u32 = 1000;
const GID: u32 = 1000;
/// Longest any single wait may take before the test gives up.
const WAIT: Duration = Duration::from_secs(20);
/// How often waits look again.
const POLL: Duration = Duration::from_millis(20);

/// Skip (or fail under CI) unless we are root with a static busybox;
/// otherwise build a fresh fixture.
macro_rules! fixture {
    () => {{
        let ready = container_prereqs();
        require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
        Fx::new(&ready.expect("checked above"))
    }};
}

// ---------------------------------------------------------------------------
// The fixture.

/// One test's world: master.yaml, sandbox `box` (image-dir with the busybox
/// image `bb`, uids and gids 1000-1999, min-restart-timeout 0), its process
/// config, and, once started, the tree. Fields drop in order: the tree is
/// stopped first (in `Drop::drop`), then the cgroup root is swept, then the
/// temp dir goes.
struct Fx {
    /// What we spawned: the tree, or `unshare` running it.
    tree: Option<Child>,
    /// The tree's pid as this (host) pid namespace sees it.
    tree_pid: Option<i32>,
    cgroup: CgroupGuard,
    set: ConfigSet,
}

impl Fx {
    fn new(busybox: &Path) -> Fx {
        let set = ConfigSet::new();
        let cgroup = CgroupGuard::new();
        make_busybox_image(busybox, &set.p("images/bb"));
        let fx = Fx {
            tree: None,
            tree_pid: None,
            cgroup,
            set,
        };
        fx.master("config-log-dir: null\n");
        // min-restart-timeout 0: the tests restart workloads faster than
        // a default sandbox allows (1 s).
        fx.set.write(
            "sandboxes/box.yaml",
            format!(
                "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
                 min-restart-timeout: 0\n",
                fx.set.s("images"),
            ),
        );
        fx
    }

    /// (Re)write master.yaml: the test's dirs and cgroup root, plus `extra`.
    fn master(&self, extra: &str) {
        self.set
            .write_master(&format!("cgroup-name: {}\n{extra}", self.cgroup.name));
    }

    fn master_path(&self) -> String {
        self.set.master()
    }

    /// Write the container config `/config/NAME.yaml` of image `bb`.
    fn container(&self, name: &str, yaml: &str) -> PathBuf {
        self.set
            .write(&format!("images/bb/config/{name}.yaml"), yaml)
    }

    /// Write `processes/box.yaml`: one Daemon entry per (name, instances),
    /// each running `/config/NAME.yaml` of image `bb`.
    fn processes(&self, entries: &[(&str, u32)]) {
        self.set
            .write("processes/box.yaml", processes_yaml(entries));
    }

    /// Start `cairn tree` and wait until it has written its first state.
    fn start(&mut self) {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(["tree", "-c", &self.master_path()]).args([
            "--log-stderr",
            "--log-level",
            "debug",
        ]);
        self.spawn_tree(cmd);
        self.tree_pid = Some(self.tree.as_ref().expect("spawned").id() as i32);
        self.wait_ps("the tree's first state.json", |_| true);
    }

    /// Start `cairn tree` as pid 1 of a new pid namespace (`unshare --pid
    /// --fork --mount-proc`); returns its host pid.
    fn start_as_pid1(&mut self) -> i32 {
        self.start_as_pid1_with(&["--pid", "--fork", "--mount-proc"])
    }

    /// `start_as_pid1`, with these `unshare` options.
    fn start_as_pid1_with(&mut self, unshare: &[&str]) -> i32 {
        let mut cmd = Command::new("unshare");
        cmd.args(unshare)
            .arg(cairn_bin())
            .args(["tree", "-c", &self.master_path()])
            .args(["--log-stderr", "--log-level", "debug"]);
        self.spawn_tree(cmd);
        let unshare_pid = self.tree.as_ref().expect("spawned").id() as i32;
        let tree = wait_for(Duration::from_secs(5), "unshare's child", || {
            children(unshare_pid).first().copied()
        });
        self.tree_pid = Some(tree);
        tree
    }

    /// Spawn `cmd` (which runs a tree) with stderr appended to `tree.log`.
    fn spawn_tree(&mut self, mut cmd: Command) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.set.p("tree.log"))
            .expect("tree.log");
        let child = cmd
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the tree");
        self.tree = Some(child);
    }

    fn tree_pid(&self) -> i32 {
        self.tree_pid.expect("tree started")
    }

    /// The tree's own log (stderr, `--log-level debug`).
    fn log(&self) -> String {
        fs::read_to_string(self.set.p("tree.log")).unwrap_or_default()
    }

    /// `cairn ps --json`, or `None` when it fails (no tree yet).
    fn try_ps(&self) -> Option<Value> {
        let out = cairn(&["ps", "-c", &self.master_path(), "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn ps(&self) -> Value {
        self.try_ps()
            .unwrap_or_else(|| panic!("cairn ps failed; tree log:\n{}", self.log()))
    }

    /// Poll `cairn ps --json` until `cond` holds; return that answer.
    fn wait_ps(&self, what: &str, mut cond: impl FnMut(&Value) -> bool) -> Value {
        let start = Instant::now();
        let mut last = None;
        loop {
            if let Some(ps) = self.try_ps() {
                if cond(&ps) {
                    return ps;
                }
                last = Some(ps);
            }
            if start.elapsed() > WAIT {
                panic!(
                    "timed out waiting for {what}; last ps:\n{}\ntree log:\n{}",
                    last.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
                        .unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Send `sig` to the tree and wait for what we spawned to exit.
    fn stop_tree(&mut self, sig: i32) -> (ExitStatus, Duration) {
        let start = Instant::now();
        kill(self.tree_pid(), sig);
        let mut child = self.tree.take().expect("tree started");
        match wait_child(&mut child, WAIT) {
            Some(status) => (status, start.elapsed()),
            None => {
                self.tree = Some(child);
                panic!("the tree did not exit; log:\n{}", self.log());
            }
        }
    }

    /// Value of one metrics.prom series for process `process` of sandbox
    /// `box` ("" = the sum over every process: metrics.prom has no total
    /// rows).
    fn metric(&self, name: &str, process: &str) -> Option<u64> {
        let text = fs::read_to_string(self.set.p("run/metrics.prom")).ok()?;
        let rows = text.lines().filter_map(|l| {
            let (labels, v) = l.strip_prefix(name)?.strip_prefix('{')?.split_once("} ")?;
            let ours =
                process.is_empty() || labels == format!("sandbox=\"box\",process=\"{process}\"");
            ours.then(|| v.trim().parse::<u64>().ok()).flatten()
        });
        let all: Vec<u64> = rows.collect();
        (!all.is_empty()).then(|| all.iter().sum())
    }

    /// Wait until metrics.prom shows `want` for each (series, process).
    /// (state.json and metrics.prom are replaced one after the other, so
    /// right after a `ps` answer the metrics may still be a turn behind.)
    fn expect_metrics(&self, want: &[(&str, &str, u64)]) {
        self.expect_metrics_by(want, |got, want| got == want);
    }

    /// Like `expect_metrics`, with "at least".
    fn expect_metrics_at_least(&self, want: &[(&str, &str, u64)]) {
        self.expect_metrics_by(want, |got, want| got >= want);
    }

    fn expect_metrics_by(&self, want: &[(&str, &str, u64)], ok: fn(u64, u64) -> bool) {
        let start = Instant::now();
        while !want
            .iter()
            .all(|(m, p, v)| self.metric(m, p).is_some_and(|got| ok(got, *v)))
        {
            if start.elapsed() > Duration::from_secs(5) {
                panic!(
                    "metrics never showed {want:?}:\n{}",
                    fs::read_to_string(self.set.p("run/metrics.prom")).unwrap_or_default()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// `cairn switch -c MASTER box FILE` with `content` written to FILE.
    fn switch(&self, file: &str, content: &str) -> std::process::Output {
        let path = self.set.write(file, content);
        cairn(&[
            "switch",
            "-c",
            &self.master_path(),
            "box",
            path.to_str().expect("utf-8 path"),
        ])
    }

    /// Every cgroup root dir of this test that exists.
    fn cgroup_roots(&self) -> Vec<PathBuf> {
        cgroup_root_dirs(&self.cgroup.name)
            .into_iter()
            .filter(|d| d.is_dir())
            .collect()
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        if let Some(mut child) = self.tree.take() {
            if matches!(child.try_wait(), Ok(None)) {
                if let Some(pid) = self.tree_pid {
                    kill(pid, libc::SIGTERM);
                }
                if wait_child(&mut child, Duration::from_secs(15)).is_none() {
                    if let Some(pid) = self.tree_pid {
                        kill(pid, libc::SIGKILL);
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                }
            } else {
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("--- tree log ---\n{}", self.log());
        }
        // Then `cgroup` drops: it kills what is left in this test's cgroup
        // root and removes it; then the temp dir goes.
    }
}

// ---------------------------------------------------------------------------
// Configs.

fn processes_yaml(entries: &[(&str, u32)]) -> String {
    entries
        .iter()
        .map(|(name, n)| {
            format!("{name}:\n  image: bb\n  config: /config/{name}.yaml\n  instances: {n}\n")
        })
        .collect()
}

/// A Daemon running `sh -c SCRIPT` as UID:GID with PATH=/bin and the extra
/// environment `env`, plus the top-level keys in `extra`.
fn sh_env(script: &str, env: &[(&str, &str)], extra: &str) -> String {
    let mut environ = String::from("environ:\n  PATH: /bin\n");
    for (k, v) in env {
        environ.push_str(&format!("  {k}: {}\n", json(v)));
    }
    format!(
        "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sh\n\
         arguments: [-c, {}]\n{environ}{extra}",
        json(script)
    )
}

fn sh(script: &str, extra: &str) -> String {
    sh_env(script, &[], extra)
}

/// `sleep 1000`, which dies on TERM at once.
fn sleeper(extra: &str) -> String {
    format!(
        "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sleep\n\
         arguments: ['1000']\nkill-timeout: 1\n{extra}"
    )
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn json(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

// ---------------------------------------------------------------------------
// Reading `ps --json`.

fn insts(ps: &Value) -> &Vec<Value> {
    ps["instances"].as_array().expect("instances is an array")
}

fn inst<'a>(ps: &'a Value, name: &str) -> Option<&'a Value> {
    insts(ps).iter().find(|i| i["name"] == name)
}

fn state<'a>(ps: &'a Value, name: &str) -> Option<&'a str> {
    inst(ps, name).and_then(|i| i["state"].as_str())
}

fn pid_of(i: &Value, key: &str) -> Option<i32> {
    i[key].as_i64().map(|p| p as i32)
}

/// (knot pid, workload pid) of a running instance.
fn pids(ps: &Value, name: &str) -> (i32, i32) {
    let i = inst(ps, name).unwrap_or_else(|| panic!("no {name} in {ps}"));
    (
        pid_of(i, "pid").unwrap_or_else(|| panic!("{name} has no pid: {i}")),
        pid_of(i, "workload_pid").unwrap_or_else(|| panic!("{name} has no workload_pid: {i}")),
    )
}

/// Every named instance is `running` with a knot and a workload pid.
fn all_running(ps: &Value, names: &[&str]) -> bool {
    names.iter().all(|n| {
        inst(ps, n).is_some_and(|i| {
            i["state"] == "running" && i["pid"].is_i64() && i["workload_pid"].is_i64()
        })
    })
}

fn names(prefix: &str, n: u32) -> Vec<String> {
    (0..n).map(|i| format!("box/{prefix}.{i}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Ask the running tree to reload and wait until it has.
fn reload_and_wait(fx: &Fx) -> Value {
    let before = reloads(&fx.ps());
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    fx.wait_ps("the reload", |ps| reloads(ps) > before)
}

fn reloads(ps: &Value) -> u64 {
    ps["tree"]["reloads"].as_u64().expect("tree.reloads")
}

// ---------------------------------------------------------------------------
// Processes.

fn kill(pid: i32, sig: i32) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    // SAFETY: kill(2) of a pid this test started or found in its own cgroup.
    unsafe { libc::kill(pid, sig) };
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The state letter of `/proc/PID/stat` (R, S, Z, ...), if the pid exists.
fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The pid exists and is not a zombie.
fn alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X')
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The `NSpid:` line of /proc/PID/status: its pid in each nested namespace.
fn nspids(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `tool` is installed in one of the usual bin dirs.
fn have(tool: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

/// Poll `f` until it gives a value.
fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Seconds since the epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ`.
fn epoch(s: &str) -> i64 {
    let b = s.as_bytes();
    assert!(
        s.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z',
        "not RFC 3339 UTC: {s:?}"
    );
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("addr").port()
}

/// A client thread that runs `request` again and again until told to
/// stop, counting what it answered Ok and everything else; `setup` runs
/// first in that thread (say, joining a network namespace).
struct Hammer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Hammer {
    fn start(
        setup: impl FnOnce() + Send + 'static,
        request: impl Fn() -> Result<(), String> + Send + 'static,
    ) -> Hammer {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let ok = std::sync::Arc::new(AtomicU64::new(0));
        let failed = std::sync::Arc::new(AtomicU64::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            setup();
            let mut errors = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match request() {
                    Ok(()) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        if errors.len() < 5 {
                            errors.push(e);
                        }
                    }
                }
            }
            errors
        });
        Hammer {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    /// Stop; (answers, failures, the first errors).
    fn finish(mut self) -> (u64, u64, Vec<String>) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        let errors = self
            .thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[path = "tree/bridged.rs"]
mod bridged;
#[path = "tree/cgroups.rs"]
mod cgroups;
#[path = "tree/clean.rs"]
mod clean;
#[path = "tree/cli.rs"]
mod cli;
#[path = "tree/config_changes.rs"]
mod config_changes;
#[path = "tree/exec.rs"]
mod exec;
#[path = "tree/exec_attack.rs"]
mod exec_attack;
#[path = "tree/exec_probes.rs"]
mod exec_probes;
#[path = "tree/faults.rs"]
mod faults;
#[path = "tree/hostile_configs.rs"]
mod hostile_configs;
#[path = "tree/injection.rs"]
mod injection;
#[path = "tree/logs.rs"]
mod logs;
#[path = "tree/metrics.rs"]
mod metrics;
#[path = "tree/nginx.rs"]
mod nginx;
#[path = "tree/notify.rs"]
mod notify;
#[path = "tree/pid1.rs"]
mod pid1;
#[path = "tree/ps_json.rs"]
mod ps_json;
#[path = "tree/ps_watch.rs"]
mod ps_watch;
#[path = "tree/readiness.rs"]
mod readiness;
#[path = "tree/refused.rs"]
mod refused;
#[path = "tree/restarts.rs"]
mod restarts;
#[path = "tree/rollouts.rs"]
mod rollouts;
#[path = "tree/secrets.rs"]
mod secrets;
#[path = "tree/stdio_log.rs"]
mod stdio_log;
#[path = "tree/stopping.rs"]
mod stopping;
#[path = "tree/syslog_journal.rs"]
mod syslog_journal;
#[path = "tree/wait.rs"]
mod wait;
