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

    /// Value of one metrics.prom series for process `process` ("" = total).
    fn metric(&self, name: &str, process: &str) -> Option<u64> {
        let text = fs::read_to_string(self.set.p("run/metrics.prom")).ok()?;
        let sandbox = if process.is_empty() { "" } else { "box" };
        let key = format!("{name}{{sandbox=\"{sandbox}\",process=\"{process}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
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

/// A workload that ignores SIGTERM (its children too: SIG_IGN is inherited).
fn stubborn(extra: &str) -> String {
    sh("trap '' TERM; while :; do sleep 1; done", extra)
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn json(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// Billion laughs: 9^12 nodes once expanded.
fn alias_bomb() -> String {
    let mut bomb = format!(
        "executable: /bin/sleep\nuser-id: {UID}\n_a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    );
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("_a{i}: &a{i} [{refs}]\n"));
    }
    bomb
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

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
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

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// 1. Start.

#[test]
fn starts_every_instance() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 3)]);
    fx.start();
    let web = names("web", 3);
    let ps = fx.wait_ps("3 instances running", |ps| all_running(ps, &refs(&web)));
    assert_eq!(insts(&ps).len(), 3, "{ps}");
    let tree_kids = descendants(fx.tree_pid());
    let roots = fx.cgroup_roots();
    assert!(!roots.is_empty(), "no cgroup root for {}", fx.cgroup.name);
    let mut seen = BTreeSet::new();
    for (n, name) in web.iter().enumerate() {
        let i = inst(&ps, name).expect("listed");
        assert_eq!(i["sandbox"], "box");
        assert_eq!(i["process"], "web");
        assert_eq!(i["index"], n);
        assert_eq!(i["restarts"], 0);
        assert_eq!(i["image"], "bb");
        let leaf = format!("box:web.{n}");
        assert_eq!(i["cgroup"], leaf.as_str());
        let (knot, work) = pids(&ps, name);
        assert!(seen.insert(knot) && seen.insert(work), "pids repeat: {ps}");
        // The workload is real, runs as the configured user, and sits
        // below its knot, which sits below the tree.
        let status = fs::read_to_string(format!("/proc/{work}/status"))
            .unwrap_or_else(|e| panic!("/proc/{work}/status: {e}"));
        assert!(
            status.lines().any(|l| l.starts_with("Uid:\t1000\t")),
            "{status}"
        );
        // Under the default system call filter (compiled once by the tree).
        assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
        assert!(tree_kids.contains(&knot), "knot {knot} is not the tree's");
        assert!(descendants(knot).contains(&work));
        // The knot is pid 1 of the container, the workload its child.
        assert_eq!(nspids(knot).last(), Some(&1), "{name}: knot is not pid 1");
        assert_eq!(ppid(work), Some(knot));
        // Its cgroups are the instance leaf in every hierarchy cairn uses.
        let cg = fs::read_to_string(format!("/proc/{work}/cgroup")).expect("cgroup");
        let suffix = format!("/{}/{leaf}", fx.cgroup.name);
        for ctl in [":memory:", ":pids:", ":cpu:"] {
            assert!(
                cg.lines().any(|l| l.contains(ctl) && l.ends_with(&suffix)),
                "{ctl} of {name} is not {suffix}:\n{cg}"
            );
        }
        for l in cg.lines().filter(|l| l.contains(&fx.cgroup.name)) {
            assert!(l.ends_with(&suffix), "{name}: {l}");
        }
        assert!(
            roots
                .iter()
                .any(|r| cgroup_procs(&r.join(&leaf)).contains(&work)),
            "{work} not in any {leaf}/cgroup.procs"
        );
    }
    fx.expect_metrics(&[("cairn_running", "web", 3), ("cairn_started_total", "", 3)]);
}

// ---------------------------------------------------------------------------
// 2. Replacement after SIGKILL.

#[test]
fn killed_workload_is_replaced_within_restart_timeout() {
    let mut fx = fixture!();
    fx.container("web", &sleeper("restart-timeout: 0.5\n"));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let ran_from = Instant::now();
    let (knot, work) = pids(&ps, "box/web.0");
    // Past restart-timeout since its start: the replacement is due at once.
    std::thread::sleep(Duration::from_millis(600).saturating_sub(ran_from.elapsed()));
    kill(work, libc::SIGKILL);
    let killed = Instant::now();
    let ps = fx.wait_ps("a new web.0", |ps| {
        all_running(ps, &["box/web.0"]) && pids(ps, "box/web.0").0 != knot
    });
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "replaced after {took:?}; restart-timeout is 0.5 s"
    );
    let i = inst(&ps, "box/web.0").expect("listed");
    assert_eq!(i["restarts"], 1, "{i}");
    let last = &i["last_exit"];
    assert_eq!(last["status"], 137, "{i}");
    assert_eq!(last["signal"], 9, "{i}");
    assert_eq!(last["failure"], true, "{i}");
    assert_eq!(last["oom_killed"], false, "{i}");
    assert!(last["error"].is_null(), "{i}");
    assert!(!alive(knot) && !alive(work));
    fx.expect_metrics(&[
        ("cairn_started_total", "web", 2),
        ("cairn_deaths_total", "web", 1),
        ("cairn_failures_total", "web", 1),
        ("cairn_failures_total", "", 1),
        ("cairn_running", "web", 1),
    ]);
    let sandbox_log = fs::read_to_string(fx.set.p("log/box.log")).expect("sandbox log");
    assert!(
        sandbox_log.contains("box/web.0: exited with status 137 (failure)"),
        "{sandbox_log}"
    );
    assert_eq!(sandbox_log.matches("box/web.0: started").count(), 2);
}

// ---------------------------------------------------------------------------
// 3. Crash-loop back-off.

/// Start times (seconds since boot) printed by each start of a workload
/// (see `stamp`), read from the sandbox's stdio log.
fn starts_in_log(fx: &Fx, tag: &str) -> Vec<f64> {
    fs::read_to_string(fx.set.p("log/stdio/box.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(tag))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .map(|ms| ms / 1000.0)
        .collect()
}

/// Prints `TAG SECONDS` when it starts, then runs `then`. SECONDS is when
/// its knot (pid 1 of the container) was forked, in seconds since boot
/// (field 22 of /proc/1/stat, in 10 ms ticks: USER_HZ is 100): the time the tree's restart
/// timer governs, free of the jitter of building the container.
fn stamp(tag: &str, then: &str) -> String {
    format!("set -- $(cat /proc/1/stat); echo \"{tag} $((${{22}} * 10))\"; {then}")
}

#[test]
fn crash_loop_backs_off_while_siblings_run() {
    let mut fx = fixture!();
    fx.container(
        "crash",
        &sh(&stamp("crash-start", "exit 1"), "restart-timeout: 0.1\n"),
    );
    fx.container("steady", &sleeper(""));
    fx.processes(&[("crash", 1), ("steady", 2)]);
    fx.start();
    let steady = names("steady", 2);
    let ps = fx.wait_ps("steady running", |ps| all_running(ps, &refs(&steady)));
    let before: Vec<(i32, i32)> = steady.iter().map(|n| pids(&ps, n)).collect();
    let starts = wait_for(Duration::from_secs(8), "5 starts of crash.0", || {
        let s = starts_in_log(&fx, "crash-start ");
        (s.len() >= 5).then_some(s)
    });
    // restart-timeout × 2^(n-1): 0.1, 0.2, 0.4, 0.8 s between starts.
    // The stamps have 10 ms steps, and the tree's timer starts when it
    // decides to start, a little before the fork (more so on a busy host):
    // hence some slack below the exact delays.
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    for (n, (gap, want)) in gaps.iter().zip([0.1, 0.2, 0.4, 0.8]).enumerate() {
        assert!(
            *gap >= want - 0.05 && *gap <= want * 1.5 + 0.15,
            "gap {n} is {gap:.2} s, want ~{want} s; all gaps {gaps:?}"
        );
    }
    let total = starts[4] - starts[0];
    assert!(total >= 1.5 - 0.05, "5 starts in {total:.2} s, want 1.5 s");
    // (The first gaps are too short to compare against that jitter.)
    for w in gaps[1..].windows(2).take(2) {
        assert!(w[1] > w[0] * 1.4, "gaps do not grow: {gaps:?}");
    }
    // After the fifth quick death it waits 1.6 s: ps says so.
    let ps = fx.wait_ps("crash.0 in backoff after 4 restarts", |ps| {
        state(ps, "box/crash.0") == Some("backoff")
            && inst(ps, "box/crash.0").is_some_and(|i| i["restarts"] == 4)
    });
    let i = inst(&ps, "box/crash.0").expect("listed");
    let next = i["next_start"].as_str().unwrap_or_else(|| panic!("{i}"));
    let now = now_epoch();
    assert!(
        (now - 1..=now + 3).contains(&epoch(next)),
        "next_start {next} is not ~1.6 s from now ({now})"
    );
    assert!(i["pid"].is_null() && i["workload_pid"].is_null(), "{i}");
    assert_eq!(i["last_exit"]["status"], 1, "{i}");
    assert_eq!(i["last_exit"]["failure"], true, "{i}");
    // The siblings never noticed.
    for (n, name) in steady.iter().enumerate() {
        assert_eq!(pids(&ps, name), before[n], "{name} was restarted");
        assert_eq!(inst(&ps, name).expect("listed")["restarts"], 0);
    }
    fx.expect_metrics(&[
        ("cairn_failures_total", "crash", 5),
        ("cairn_deaths_total", "crash", 5),
        ("cairn_started_total", "crash", 5),
        ("cairn_deaths_total", "steady", 0),
        ("cairn_running", "steady", 2),
        ("cairn_running", "crash", 0),
    ]);
}

#[test]
fn normal_exit_code_is_no_failure_and_does_not_back_off() {
    let mut fx = fixture!();
    fx.container(
        "batch",
        &sh(
            &stamp("batch-start", "exit 3"),
            "restart-timeout: 0.2\nnormal-exit-codes: [3]\n",
        ),
    );
    fx.processes(&[("batch", 1)]);
    fx.start();
    let starts = wait_for(Duration::from_secs(8), "5 starts of batch.0", || {
        let s = starts_in_log(&fx, "batch-start ");
        (s.len() >= 5).then_some(s)
    });
    // Always restart-timeout apart: no exponential growth (slack as in
    // `crash_loop_backs_off_while_siblings_run`).
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    for gap in &gaps {
        assert!((0.15..=0.45).contains(gap), "gaps {gaps:?}, want ~0.2 s");
    }
    let total = starts[4] - starts[0];
    assert!(total >= 0.8 - 0.05, "5 starts in {total:.2} s, want 0.8 s");
    let ps = fx.ps();
    let i = inst(&ps, "box/batch.0").expect("listed");
    assert_eq!(i["last_exit"]["status"], 3, "{i}");
    assert_eq!(i["last_exit"]["failure"], false, "{i}");
    fx.expect_metrics_at_least(&[("cairn_deaths_total", "batch", 4)]);
    assert_eq!(fx.metric("cairn_failures_total", "batch"), Some(0));
}

/// Issue 10: a container config cannot start a restart storm. Under a
/// sandbox without ceiling keys, `restart-timeout: 0` with
/// `normal-exit-codes: [0]` (once 3,357 starts of 5 instances in 10 s) is
/// refused and never started, and a config that leaves restart-timeout out
/// starts at most once a second.
#[test]
fn restart_storm_is_refused_under_the_default_sandbox() {
    let mut fx = fixture!();
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n",
            fx.set.s("images"),
        ),
    );
    let storm = fx.container(
        "storm",
        &sh("exit 0", "restart-timeout: 0\nnormal-exit-codes: [0]\n"),
    );
    fx.container(
        "quick",
        &sh(&stamp("quick-start", "exit 0"), "normal-exit-codes: [0]\n"),
    );
    fx.processes(&[("storm", 5), ("quick", 1)]);
    fx.start();
    let starts = wait_for(Duration::from_secs(10), "3 starts of quick.0", || {
        let s = starts_in_log(&fx, "quick-start ");
        (s.len() >= 3).then_some(s)
    });
    // The default min-restart-timeout of 1 s applies to the unset key
    // (slack for the 10 ms stamps, as in the tests above).
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= 0.95),
        "gaps {gaps:?}, want >= 1 s"
    );
    let ps = fx.ps();
    let want = format!(
        "{}:8: restart-timeout: 0 is below the sandbox's min-restart-timeout 1 ({}",
        storm.display(),
        fx.set.s("sandboxes/box.yaml")
    );
    for name in names("storm", 5) {
        let i = inst(&ps, &name).unwrap_or_else(|| panic!("no {name} in {ps}"));
        assert_eq!(i["state"], "failed", "{i}");
        assert_eq!(i["restarts"], 0, "{i}");
        let err = i["error"].as_str().unwrap_or_else(|| panic!("{i}"));
        assert!(err.contains(&want), "{name}: {err}\nwant {want}");
    }
    assert_eq!(fx.metric("cairn_started_total", "storm").unwrap_or(0), 0);
}

// ---------------------------------------------------------------------------
// 4. switch 3 → 5 → 1.

#[test]
fn switch_scales_exactly_the_right_instances() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 3)]);
    fx.start();
    let three = names("web", 3);
    let ps = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&three)));
    let first: BTreeMap<String, (i32, i32)> =
        three.iter().map(|n| (n.clone(), pids(&ps, n))).collect();

    let five_yaml = processes_yaml(&[("web", 5)]);
    let out = fx.switch("five.yaml", &five_yaml);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("installed"), "{}", stdout(&out));
    assert_eq!(
        fs::read_to_string(fx.set.p("processes/box.yaml")).expect("installed"),
        five_yaml
    );
    let five = names("web", 5);
    let ps = fx.wait_ps("5 running", |ps| {
        insts(ps).len() == 5 && all_running(ps, &refs(&five))
    });
    for (name, p) in &first {
        assert_eq!(pids(&ps, name), *p, "{name} was restarted by scaling up");
    }
    let old: BTreeSet<i32> = first.values().flat_map(|(k, w)| [*k, *w]).collect();
    let mut removed = Vec::new();
    for name in &five[3..] {
        let (k, w) = pids(&ps, name);
        assert!(!old.contains(&k) && !old.contains(&w), "{name} reuses pids");
        assert_eq!(inst(&ps, name).expect("listed")["restarts"], 0);
        removed.extend([k, w]);
    }
    for name in &five[1..3] {
        let (k, w) = pids(&ps, name);
        removed.extend([k, w]);
    }

    let out = fx.switch("one.yaml", &processes_yaml(&[("web", 1)]));
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = fx.wait_ps("only web.0", |ps| {
        insts(ps).len() == 1 && all_running(ps, &["box/web.0"])
    });
    let (k0, w0) = pids(&ps, "box/web.0");
    assert_eq!((k0, w0), first["box/web.0"], "web.0 was restarted");
    for pid in &removed {
        assert!(!alive(*pid), "pid {pid} of a removed instance lives on");
    }
    // Exactly one leaf is left in every hierarchy, holding only web.0.
    for root in fx.cgroup_roots() {
        assert!(
            cgroup_procs(&root).is_empty(),
            "{} holds pids",
            root.display()
        );
    }
    let leaves = cgroup_leaves(&fx.cgroup.name);
    assert!(!leaves.is_empty());
    let mut in_cgroups = BTreeSet::new();
    for leaf in &leaves {
        assert_eq!(
            leaf.file_name().and_then(|n| n.to_str()),
            Some("box:web.0"),
            "leaf left behind: {}",
            leaf.display()
        );
        in_cgroups.extend(cgroup_procs(leaf));
    }
    let mine: BTreeSet<i32> = std::iter::once(k0).chain(descendants(k0)).collect();
    assert!(
        in_cgroups.is_subset(&mine),
        "cgroups hold {in_cgroups:?}, web.0 is {mine:?}"
    );
    let log = fx.log();
    for n in 1..5 {
        assert!(
            log.contains(&format!("box/web.{n}: stopping (removed")),
            "{log}"
        );
    }
}

// ---------------------------------------------------------------------------
// 5. switch refuses an invalid file.

#[test]
fn switch_refuses_an_invalid_file_and_changes_nothing() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.container("root", &sleeper("").replace("user-id: 1000", "user-id: 0"));
    fx.processes(&[("web", 2)]);
    fx.start();
    let web = names("web", 2);
    let before = fx.wait_ps("2 running", |ps| all_running(ps, &refs(&web)));
    let installed = fs::read(fx.set.p("processes/box.yaml")).expect("processes");
    let cases = [
        (
            "syntax.yaml",
            "web:\n  image: bb: x\n  config: /config/web.yaml\n".to_string(),
            "YAML syntax error",
        ),
        (
            "unknown-key.yaml",
            "web:\n  image: bb\n  colour: red\n  config: /config/web.yaml\n".to_string(),
            "web.colour: unknown key",
        ),
        (
            "negative.yaml",
            "web:\n  image: bb\n  config: /config/web.yaml\n  instances: -1\n".to_string(),
            "is not a number",
        ),
        (
            "missing.yaml",
            "web:\n  image: bb\n  config: /config/nope.yaml\n".to_string(),
            "no such file in the image",
        ),
        ("root.yaml", processes_yaml(&[("root", 1)]), "user-id"),
    ];
    for (file, content, needle) in &cases {
        let out = fx.switch(file, content);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{file} was accepted: {err}");
        assert!(err.contains(needle), "{file}: want {needle:?} in:\n{err}");
        let named = if *file == "missing.yaml" || *file == "root.yaml" {
            // The problem is in the container config the entry names.
            fx.set.s("images/bb/config")
        } else {
            fx.set.s(file)
        };
        assert!(
            err.contains(&named),
            "{file}: message must name {named}:\n{err}"
        );
        assert!(err.contains("was not installed"), "{err}");
        assert_eq!(
            fs::read(fx.set.p("processes/box.yaml")).expect("processes"),
            installed,
            "{file} changed the installed config"
        );
    }
    let good = fx.set.write("good.yaml", processes_yaml(&[("web", 2)]));
    let out = cairn(&[
        "switch",
        "-c",
        &fx.master_path(),
        "nosuch",
        good.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no sandbox named \"nosuch\""),
        "{}",
        stderr(&out)
    );
    // A SIGHUP would have been handled within milliseconds.
    std::thread::sleep(Duration::from_millis(300));
    let after = fx.ps();
    assert_eq!(reloads(&after), reloads(&before), "the tree reloaded");
    for name in &web {
        assert_eq!(pids(&after, name), pids(&before, name), "{name} restarted");
        assert_eq!(inst(&after, name).expect("listed")["restarts"], 0);
    }
    assert!(after["config_errors"].as_array().expect("array").is_empty());
}

// ---------------------------------------------------------------------------
// 6. A config broken on disk, then reload.

#[test]
fn config_broken_on_disk_keeps_everything_running() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.container("api", &sleeper(""));
    fx.processes(&[("web", 2), ("api", 1)]);
    fx.start();
    let all = ["box/web.0", "box/web.1", "box/api.0"];
    let ps0 = fx.wait_ps("all running", |ps| all_running(ps, &all));
    let snapshot = |ps: &Value| -> Vec<(i32, i32)> { all.iter().map(|n| pids(ps, n)).collect() };
    let good = fs::read_to_string(fx.set.p("processes/box.yaml")).expect("processes");
    let reload = |fx: &Fx| {
        let out = cairn(&["reload", "-c", &fx.master_path()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("tree pid {}", fx.tree_pid())),
            "{}",
            stdout(&out)
        );
    };

    // The process config: invalid YAML on line 2.
    fx.set.write(
        "processes/box.yaml",
        "web:\n  image: bb: x\n  config: /config/web.yaml\n",
    );
    reload(&fx);
    let r0 = reloads(&ps0);
    let ps = fx.wait_ps("the error in ps", |ps| {
        reloads(ps) == r0 + 1 && !ps["config_errors"].as_array().expect("array").is_empty()
    });
    let errors = ps["config_errors"].to_string();
    let where_ = format!("{}:2:", fx.set.s("processes/box.yaml"));
    assert!(errors.contains(&where_), "want {where_} in {errors}");
    assert!(errors.contains("YAML syntax error"), "{errors}");
    assert_eq!(snapshot(&ps), snapshot(&ps0), "something restarted");
    assert!(all_running(&ps, &all));
    assert!(
        fx.log().contains(&format!("config: {where_}")),
        "{}",
        fx.log()
    );

    // The container config inside the image: the entry keeps its instances.
    fx.set.write("processes/box.yaml", &good);
    fx.container("web", "executable: [\nuser-id: 1000\n");
    reload(&fx);
    let ps = fx.wait_ps("the container config error in ps", |ps| {
        reloads(ps) == r0 + 2 && ps["config_errors"].to_string().contains("web.yaml")
    });
    let errors = ps["config_errors"].to_string();
    let where_ = format!("{}:2:", fx.set.s("images/bb/config/web.yaml"));
    assert!(errors.contains(&where_), "want {where_} in {errors}");
    assert_eq!(snapshot(&ps), snapshot(&ps0), "something restarted");

    // master.yaml itself. The commands need it to find the tree, so they
    // refuse, naming the problem; a plain SIGHUP still reaches the tree,
    // which keeps everything and reports the error in state.json.
    fx.container("web", &sleeper(""));
    let master = fs::read_to_string(fx.set.p("master.yaml")).expect("master");
    fx.set
        .write("master.yaml", format!("{master}no-such-key: 1\n"));
    let where_ = format!("{}:6: no-such-key", fx.master_path());
    for cmd in ["reload", "ps"] {
        let out = cairn(&[cmd, "-c", &fx.master_path()]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(stderr(&out).contains(&where_), "{cmd}: {}", stderr(&out));
    }
    kill(fx.tree_pid(), libc::SIGHUP);
    let state_file = fx.set.p("run/state.json");
    let st = wait_for(
        Duration::from_secs(5),
        "the master error in state.json",
        || {
            let v: Value = serde_json::from_slice(&fs::read(&state_file).ok()?).ok()?;
            (reloads(&v) == r0 + 3 && v["config_errors"].to_string().contains(&where_)).then_some(v)
        },
    );
    for (n, (knot, _)) in all.iter().zip(snapshot(&ps0)) {
        let i = inst(&st, n).expect("listed");
        assert_eq!(
            (&i["state"], &i["pid"]),
            (&"running".into(), &knot.into()),
            "{n}"
        );
    }

    // Repaired: the errors go, and since nothing really changed, nothing
    // restarts.
    fx.set.write("master.yaml", &master);
    reload(&fx);
    let ps = fx.wait_ps("no config errors", |ps| {
        reloads(ps) == r0 + 4 && ps["config_errors"].as_array().expect("array").is_empty()
    });
    assert_eq!(snapshot(&ps), snapshot(&ps0), "something restarted");
    for n in all {
        assert_eq!(inst(&ps, n).expect("listed")["restarts"], 0);
    }
}

// ---------------------------------------------------------------------------
// 7. kill-timeout.

#[test]
fn workload_ignoring_term_is_killed_after_kill_timeout() {
    let mut fx = fixture!();
    fx.container("stubborn", &stubborn("kill-timeout: 0.5\n"));
    fx.container("calm", &sleeper(""));
    fx.processes(&[("stubborn", 1), ("calm", 1)]);
    fx.start();
    let ps = fx.wait_ps("both running", |ps| {
        all_running(ps, &["box/stubborn.0", "box/calm.0"])
    });
    let (knot, work) = pids(&ps, "box/stubborn.0");
    let calm = pids(&ps, "box/calm.0");
    let out = fx.switch("calm-only.yaml", &processes_yaml(&[("calm", 1)]));
    assert!(out.status.success(), "{}", stderr(&out));
    let asked = Instant::now();
    let mut saw_stopping = false;
    while alive(knot) {
        assert!(asked.elapsed() < WAIT, "the knot never died");
        if !saw_stopping && asked.elapsed() > Duration::from_millis(150) {
            let ps = fx.ps();
            if alive(knot) {
                assert_eq!(state(&ps, "box/stubborn.0"), Some("stopping"), "{ps}");
                saw_stopping = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone = asked.elapsed();
    assert!(
        gone >= Duration::from_millis(400) && gone <= Duration::from_millis(1200),
        "the knot died {gone:?} after the switch; kill-timeout is 0.5 s"
    );
    assert!(saw_stopping, "never saw stubborn.0 in stopping");
    assert!(!alive(work));
    let ps = fx.wait_ps("stubborn.0 gone", |ps| inst(ps, "box/stubborn.0").is_none());
    assert_eq!(pids(&ps, "box/calm.0"), calm);
    assert!(
        fx.log()
            .contains("box/stubborn.0: still running after kill-timeout; killing"),
        "{}",
        fx.log()
    );
    // Stopped by the tree: not a failure.
    fx.expect_metrics(&[
        ("cairn_deaths_total", "stubborn", 1),
        ("cairn_failures_total", "stubborn", 0),
    ]);
}

// ---------------------------------------------------------------------------
// 8. Shutdown.

#[test]
fn sigterm_stops_everything_and_cleans_up() {
    let mut fx = fixture!();
    fx.container("stubborn", &stubborn("kill-timeout: 0.5\n"));
    fx.container("web", &sleeper(""));
    fx.processes(&[("stubborn", 1), ("web", 2)]);
    fx.start();
    let all = ["box/stubborn.0", "box/web.0", "box/web.1"];
    let ps = fx.wait_ps("all running", |ps| all_running(ps, &all));
    let mut ours: BTreeSet<i32> = all
        .iter()
        .flat_map(|n| {
            let (k, w) = pids(&ps, n);
            [k, w]
        })
        .collect();
    for leaf in cgroup_leaves(&fx.cgroup.name) {
        ours.extend(cgroup_procs(&leaf));
    }
    assert!(fx.set.p("run/tree.pid").exists());
    let (status, took) = fx.stop_tree(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", fx.log());
    assert!(
        took >= Duration::from_millis(400) && took <= Duration::from_secs(2),
        "the tree took {took:?}; stubborn's kill-timeout is 0.5 s"
    );
    for pid in &ours {
        assert!(!alive(*pid), "pid {pid} survived the tree");
    }
    for f in ["run/tree.pid", "run/state.json", "run/metrics.prom"] {
        assert!(!fx.set.p(f).exists(), "{f} is left");
    }
    for root in cgroup_root_dirs(&fx.cgroup.name) {
        assert!(!root.exists(), "cgroup {} is left", root.display());
    }
    let left: Vec<PathBuf> = fs::read_dir(fx.set.p("run/state/box"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "instance state dirs left: {left:?}");
    let log = fx.log();
    assert!(log.contains("all instances stopped; exiting"), "{log}");
    // Nothing runs now, and the commands say so.
    let out = cairn(&["ps", "-c", &fx.master_path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no cairn tree runs"),
        "{}",
        stderr(&out)
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no cairn tree runs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn second_stop_signal_kills_at_once() {
    let mut fx = fixture!();
    fx.container("stubborn", &stubborn("kill-timeout: 30\n"));
    fx.processes(&[("stubborn", 1)]);
    fx.start();
    let ps = fx.wait_ps("running", |ps| all_running(ps, &["box/stubborn.0"]));
    let (knot, _) = pids(&ps, "box/stubborn.0");
    kill(fx.tree_pid(), libc::SIGINT);
    fx.wait_ps("stopping", |ps| {
        state(ps, "box/stubborn.0") == Some("stopping")
    });
    let (status, took) = fx.stop_tree(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(!alive(knot));
    assert!(fx.log().contains("second stop signal"), "{}", fx.log());
}

// ---------------------------------------------------------------------------
// 9. Hostile container configs.

fn mknod_char(path: &Path, major: u32, minor: u32) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: mknod(2) on a path in this test's temp dir.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o644,
            libc::makedev(major, minor),
        )
    };
    assert_eq!(r, 0, "mknod {}", path.display());
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: mkfifo(3) on a path in this test's temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn hostile_container_configs_fail_alone() {
    let mut fx = fixture!();
    fx.container("good", &sleeper(""));
    fx.container("bomb", &alias_bomb());
    // /dev/zero inside the image (symlinks resolve in the image's root).
    mknod_char(&fx.set.p("images/bb/dev/zero"), 1, 5);
    symlink("/dev/zero", fx.set.p("images/bb/config/zero.yaml")).expect("symlink");
    // An escape attempt lands on the same node inside the image.
    symlink(
        "../../../../../../../../../dev/zero",
        fx.set.p("images/bb/config/escape.yaml"),
    )
    .expect("symlink");
    mkfifo(&fx.set.p("images/bb/config/fifo.yaml"));
    let mut huge = format!("executable: /bin/sleep\nuser-id: {UID}\nenviron:\n");
    while huge.len() < 3 << 20 {
        huge.push_str(&format!("  VAR_{}: \"{}\"\n", huge.len(), "x".repeat(100)));
    }
    fx.container("huge", &huge);
    fx.processes(&[
        ("good", 1),
        ("bomb", 2),
        ("zero", 1),
        ("escape", 1),
        ("fifo", 1),
        ("huge", 1),
    ]);
    let started = Instant::now();
    fx.start();
    let bad = [
        ("box/bomb.0", "bomb.yaml", "YAML nodes"),
        ("box/bomb.1", "bomb.yaml", "YAML nodes"),
        ("box/zero.0", "zero.yaml", "regular"),
        // Lands on the same node inside the image; the exact reason is
        // checked in `dotdot_symlinks_resolve_despite_concurrent_renames`.
        ("box/escape.0", "escape.yaml", ""),
        ("box/fifo.0", "fifo.yaml", "regular"),
        ("box/huge.0", "huge.yaml", "large"),
    ];
    let ps = fx.wait_ps("good running, the rest failed", |ps| {
        all_running(ps, &["box/good.0"])
            && bad.iter().all(|(n, _, _)| state(ps, n) == Some("failed"))
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    for (name, file, why) in bad {
        let i = inst(&ps, name).expect("listed");
        let err = i["error"].as_str().unwrap_or_else(|| panic!("{i}"));
        assert!(err.contains(file) && err.contains(why), "{name}: {err}");
        assert!(i["pid"].is_null() && i["workload_pid"].is_null(), "{i}");
    }
    let errors = ps["config_errors"].to_string();
    for (_, file, _) in bad {
        assert!(errors.contains(file), "{file} not in {errors}");
    }
    // ps answers at once, in both forms.
    for args in [vec!["ps", "-c"], vec!["ps", "--json", "-c"]] {
        let t = Instant::now();
        let mut cmd = Command::new(cairn_bin());
        cmd.args(&args).arg(fx.master_path());
        let out = output_within(&mut cmd, None, Duration::from_secs(5));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "ps took {:?}",
            t.elapsed()
        );
        assert!(stdout(&out).contains("box/zero.0"));
    }
    // The tree itself still answers a reload, and a repaired config runs.
    let good = pids(&ps, "box/good.0");
    fx.container("bomb", &sleeper(""));
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = fx.wait_ps("the repaired bomb entry running", |ps| {
        all_running(ps, &["box/bomb.0", "box/bomb.1"])
    });
    assert_eq!(pids(&ps, "box/good.0"), good, "good.0 was restarted");
    assert_eq!(state(&ps, "box/fifo.0"), Some("failed"));
}

/// A `..` in a symlink of the image (legal, and common) makes openat2's
/// RESOLVE_IN_ROOT check the kernel's rename and mount sequence counters;
/// any rename anywhere on the host meanwhile (every tree replaces its
/// state.json by rename) makes it fail with EAGAIN, which the man page says
/// to retry. A config read must not fail for that.
#[test]
fn dotdot_symlinks_resolve_despite_concurrent_renames() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut fx = fixture!();
    fx.set.write("images/bb/etc/web.yaml", sleeper(""));
    symlink("../etc/web.yaml", fx.set.p("images/bb/config/web.yaml")).expect("symlink");
    mknod_char(&fx.set.p("images/bb/dev/zero"), 1, 5);
    symlink(
        "../../../../../../../../../dev/zero",
        fx.set.p("images/bb/config/escape.yaml"),
    )
    .expect("symlink");
    fx.processes(&[("web", 1), ("escape", 1)]);
    // Renames elsewhere on the host, as busy hosts have.
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = stop.clone();
        let (a, b) = (fx.set.p("storm-a"), fx.set.p("storm-b"));
        fs::write(&a, "x").expect("write");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::rename(&a, &b);
                let _ = fs::rename(&b, &a);
            }
        })
    };
    fx.start();
    let mut problems = Vec::new();
    let mut ps = fx.wait_ps("web running, escape failed", |ps| {
        state(ps, "box/escape.0") == Some("failed")
            && matches!(state(ps, "box/web.0"), Some("running" | "failed"))
    });
    for round in 0..20 {
        let web = inst(&ps, "box/web.0")
            .map(|i| i.to_string())
            .unwrap_or_default();
        let escape = inst(&ps, "box/escape.0")
            .map(|i| i.to_string())
            .unwrap_or_default();
        if state(&ps, "box/web.0") != Some("running") || !escape.contains("regular") {
            problems.push(format!("round {round}: web {web}\nescape {escape}"));
        }
        let errors = ps["config_errors"].to_string();
        if errors.contains("temporarily unavailable") {
            problems.push(format!("round {round}: {errors}"));
        }
        let before = reloads(&ps);
        let out = cairn(&["reload", "-c", &fx.master_path()]);
        assert!(out.status.success(), "{}", stderr(&out));
        ps = fx.wait_ps("the reload", |ps| reloads(ps) > before);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = storm.join();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The config reader must not open what is not a regular file: opening a
/// device node can have effects (a tape rewinds, a watchdog arms), and
/// opening a FIFO wakes the writer blocked on it. Here a writer blocks in
/// open(2) on a FIFO in the image; it must still be blocked once the tree
/// has marked the entry failed.
#[test]
fn config_reader_does_not_open_special_files() {
    let mut fx = fixture!();
    let fifo = fx.set.p("images/bb/config/fifo.yaml");
    mkfifo(&fifo);
    fx.container("good", &sleeper(""));
    fx.processes(&[("good", 1), ("fifo", 1)]);
    let (tx, rx) = std::sync::mpsc::channel();
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        // Blocks until somebody opens the FIFO for reading.
        let r = fs::OpenOptions::new().write(true).open(&writer_path);
        let _ = tx.send(r.is_ok());
    });
    fx.start();
    fx.wait_ps("fifo.0 failed", |ps| {
        state(ps, "box/fifo.0") == Some("failed")
    });
    let opened = rx.recv_timeout(Duration::from_millis(500)).is_ok();
    if !opened {
        // Release the writer ourselves.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
    }
    let _ = writer.join();
    assert!(!opened, "the tree's config reader opened the FIFO");
}

// ---------------------------------------------------------------------------
// 10. The tree as PID 1.

fn have(tool: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

#[test]
fn tree_as_pid1_reaps_orphans_and_exits_on_term() {
    let mut fx = fixture!();
    require!(
        have("unshare") && have("nsenter"),
        "util-linux unshare and nsenter needed"
    );
    // The workload leaves an orphan behind in its container.
    fx.container(
        "orphaner",
        &sh("(sh -c 'sleep 0.3; exit 0' &); sleep 1000", ""),
    );
    fx.processes(&[("orphaner", 1)]);
    let tree = fx.start_as_pid1();
    assert_eq!(nspids(tree).last(), Some(&1), "the tree is not pid 1");
    // state.json holds the tree's own (namespace) pids: read it directly
    // rather than through a host `cairn ps`.
    let state_file = fx.set.p("run/state.json");
    wait_for(WAIT, "orphaner.0 running", || {
        let v: Value = serde_json::from_slice(&fs::read(&state_file).ok()?).ok()?;
        (v["tree"]["pid"] == 1 && state(&v, "box/orphaner.0") == Some("running")).then_some(())
    });
    let knot = wait_for(Duration::from_secs(5), "the knot", || {
        children(tree).into_iter().find(|&c| nspids(c).len() == 3)
    });
    // The orphan inside the container is reparented to the knot (its
    // pid 1) and reaped there: no zombie stays anywhere below the tree.
    // (The workload's own command line holds the same text: match the
    // start, and wait until the orphan's parent, a subshell, is gone.)
    let orphan = wait_for(
        Duration::from_secs(5),
        "the orphan, adopted by the knot",
        || {
            descendants(knot).into_iter().find(|&p| {
                cmdline(p).starts_with("sh -c sleep 0.3; exit 0") && ppid(p) == Some(knot)
            })
        },
    );
    let start = Instant::now();
    wait_for(Duration::from_secs(5), "the orphan reaped", || {
        let zombies: Vec<i32> = descendants(tree)
            .into_iter()
            .filter(|&p| proc_state(p) == Some('Z'))
            .collect();
        if start.elapsed() > Duration::from_secs(4) {
            let all: Vec<(i32, Option<char>, String, Option<i32>)> = descendants(tree)
                .into_iter()
                .map(|p| (p, proc_state(p), comm(p), ppid(p)))
                .collect();
            panic!(
                "orphan {orphan}: {:?}; below the tree: {all:?}",
                proc_state(orphan)
            );
        }
        (proc_state(orphan).is_none() && zombies.is_empty()).then_some(())
    });
    // An orphan in the tree's own namespace is reparented to the tree.
    let out = output_within(
        Command::new("nsenter")
            .args(["--target", &tree.to_string(), "--pid", "--"])
            .args(["/bin/sh", "-c", "(sleep 0.5 >/dev/null 2>&1 &); exit 0"]),
        None,
        Duration::from_secs(5),
    );
    assert!(out.status.success(), "nsenter: {}", stderr(&out));
    let stray = wait_for(
        Duration::from_secs(2),
        "the stray sleep under the tree",
        || children(tree).into_iter().find(|&c| comm(c) == "sleep"),
    );
    assert_eq!(ppid(stray), Some(tree));
    wait_for(Duration::from_secs(5), "the stray sleep reaped", || {
        proc_state(stray).is_none().then_some(())
    });
    assert!(
        children(tree).iter().all(|&c| proc_state(c) != Some('Z')),
        "zombie children of the tree"
    );
    // TERM to the tree (pid 1 inside) stops everything; exit 0.
    let (status, _) = fx.stop_tree(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", fx.log());
    assert!(!alive(knot) && !alive(tree));
    assert!(!state_file.exists());
    for root in cgroup_root_dirs(&fx.cgroup.name) {
        assert!(!root.exists(), "cgroup {} is left", root.display());
    }
}

/// `cairn_unknown_children_total` counts reaped strays (PID 1 duty).
/// A tree that is pid 1 of its own pid namespace but still sees the
/// host's /proc (`unshare --pid --fork`, no `--mount-proc`) starts its
/// instances: a knot checks its parent against the tree's pid as that
/// /proc numbers it, not the tree's own `getpid()` (1), or every knot
/// would take the tree for gone and refuse to start (seen before the fix).
#[test]
fn tree_in_a_pid_namespace_with_the_hosts_proc_starts_instances() {
    require!(have("unshare"), "unshare (util-linux) is not installed");
    let mut fx = fixture!();
    fx.container("s", &sleeper(""));
    fx.processes(&[("s", 2)]);
    fx.start_as_pid1_with(&["--pid", "--fork"]);
    // (Workload pids are not shown here: they are host pids, which the
    // tree's own pid namespace cannot name.)
    let all = names("s", 2);
    fx.wait_ps("both running", |ps| {
        all.iter().all(|n| {
            state(ps, n) == Some("running") && inst(ps, n).is_some_and(|i| i["pid"].is_i64())
        })
    });
    assert!(
        !fx.log().contains("the tree that started this knot is gone"),
        "{}",
        fx.log()
    );
}

/// The tree never sleeps waiting for a cgroup leaf it cannot remove yet
/// (issue 18, item 6): something still holds the leaf of a removed
/// instance (here a cgroup below it, in every hierarchy, so `rmdir`
/// answers EBUSY the same way on cgroup v1 and v2). The instance is gone
/// from `ps` at once, the leaf stays while it is held, and once it is let
/// go the tree removes it on its own. Before, the tree slept up to 0.2 s
/// retrying, then gave up for good: the leaf stayed after it was let go.
#[test]
fn a_busy_cgroup_leaf_is_removed_later_without_stalling_the_tree() {
    let mut fx = fixture!();
    fx.container("s", &sleeper(""));
    fx.processes(&[("s", 2)]);
    fx.start();
    let all = names("s", 2);
    fx.wait_ps("both running", |ps| all_running(ps, &refs(&all)));
    let leaves: Vec<PathBuf> = fx
        .cgroup_roots()
        .iter()
        .map(|r| r.join("box:s.1"))
        .collect();
    assert!(!leaves.is_empty());
    let held: Vec<PathBuf> = leaves.iter().map(|l| l.join("held")).collect();
    for h in &held {
        fs::create_dir(h).expect("mkdir a cgroup below the leaf");
    }
    fx.processes(&[("s", 1)]);
    let before = reloads(&fx.ps());
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    fx.wait_ps("s.1 removed", |ps| {
        reloads(ps) > before && inst(ps, "box/s.1").is_none()
    });
    // Held for longer than the old code tried.
    std::thread::sleep(Duration::from_millis(800));
    assert!(leaves.iter().all(|l| l.is_dir()), "the held leaf went");
    for h in &held {
        fs::remove_dir(h).expect("rmdir the cgroup below the leaf");
    }
    wait_for(
        Duration::from_secs(5),
        "the leaf removed by the tree",
        || leaves.iter().all(|l| !l.exists()).then_some(()),
    );
    assert!(!fx.log().contains("cgroup cleanup"), "{}", fx.log());
    // And the other instance never noticed.
    let ps = fx.ps();
    assert!(all_running(&ps, &["box/s.0"]), "{ps}");
}

#[test]
fn unknown_children_are_counted_in_metrics() {
    let mut fx = fixture!();
    require!(
        have("unshare") && have("nsenter"),
        "util-linux unshare and nsenter needed"
    );
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    let tree = fx.start_as_pid1();
    wait_for(WAIT, "metrics.prom", || {
        (fx.metric("cairn_running", "web") == Some(1)).then_some(())
    });
    let out = output_within(
        Command::new("nsenter")
            .args(["--target", &tree.to_string(), "--pid", "--"])
            .args(["/bin/sh", "-c", "(sleep 0.1 >/dev/null 2>&1 &); exit 0"]),
        None,
        Duration::from_secs(5),
    );
    assert!(out.status.success(), "nsenter: {}", stderr(&out));
    let counted = |fx: &Fx| {
        fs::read_to_string(fx.set.p("run/metrics.prom"))
            .is_ok_and(|t| t.contains("cairn_unknown_children_total 1\n"))
    };
    let start = Instant::now();
    while !counted(&fx) && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(POLL);
    }
    if !counted(&fx) {
        // Was it reaped but not written? Any other change flushes it.
        kill(tree, libc::SIGHUP);
        let start = Instant::now();
        while !counted(&fx) && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(POLL);
        }
        panic!(
            "the stray was not counted within 3 s; after a SIGHUP the count {}",
            if counted(&fx) {
                "appeared"
            } else {
                "still is missing"
            }
        );
    }
}

/// Run from another pid namespace, `cairn reload` must not signal a pid
/// that means something else there. The tree runs as pid 1 of namespace B,
/// nested in namespace A whose pid 1 is a shell that records any SIGHUP;
/// `cairn reload` runs in A.
#[test]
fn reload_from_another_pid_namespace_does_not_signal_the_wrong_process() {
    let mut fx = fixture!();
    require!(have("unshare"), "util-linux unshare needed");
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    let script = format!(
        r#"trap 'echo hup >> {mark}' HUP
unshare --pid --fork --mount-proc {cairn} tree -c {master} --log-stderr 2>> {log} &
u=$!
i=0
while [ ! -e {state} ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done
{cairn} reload -c {master} > {out} 2>&1; echo "rc=$?" >> {out}
sleep 0.3
t=$(cat /proc/$u/task/$u/children)
kill -TERM $t
wait $u
"#,
        mark = fx.set.s("hup-at-pid1"),
        cairn = cairn_bin().display(),
        master = fx.master_path(),
        log = fx.set.s("tree.log"),
        state = fx.set.s("run/state.json"),
        out = fx.set.s("reload.out"),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "/bin/sh", "-c", &script]);
    fx.spawn_tree(cmd);
    let outer = fx.tree.as_ref().expect("spawned").id() as i32;
    // Our handle for cleanup: namespace A's pid 1 (killing it ends all).
    fx.tree_pid = Some(wait_for(Duration::from_secs(5), "A's pid 1", || {
        children(outer).first().copied()
    }));
    let mut child = fx.tree.take().expect("spawned");
    let status = wait_child(&mut child, WAIT);
    fx.tree = Some(child);
    assert!(status.is_some(), "the script did not finish");
    let out = fs::read_to_string(fx.set.p("reload.out")).unwrap_or_default();
    assert!(
        !fx.set.p("hup-at-pid1").exists(),
        "cairn reload sent SIGHUP to pid 1 of its own namespace (not the tree):\n{out}"
    );
}

// ---------------------------------------------------------------------------
// Logs and systemd.

#[test]
fn tree_logs_to_its_log_file_and_sandbox_log() {
    let mut fx = fixture!();
    fx.master("config-log-dir: null\nlog-level: info\n");
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    // No --log-stderr: the tree logs to DEFAULT-LOG-DIR/master.log.
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["tree", "-c", &fx.master_path()]);
    fx.spawn_tree(cmd);
    fx.tree_pid = Some(fx.tree.as_ref().expect("spawned").id() as i32);
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let (knot, _) = pids(&ps, "box/web.0");
    let started = format!("box/web.0: started (knot pid {knot}, config ");
    let tree_log = fx.set.p("log/master.log");
    wait_for(Duration::from_secs(5), "the tree log", || {
        let text = fs::read_to_string(&tree_log).ok()?;
        (text.contains(&format!("starting (pid {}", fx.tree_pid())) && text.contains(&started))
            .then_some(())
    });
    let sandbox_log = fs::read_to_string(fx.set.p("log/box.log")).expect("sandbox log");
    assert!(sandbox_log.contains(&started), "{sandbox_log}");
    // Every line starts with an RFC 3339 time.
    for line in sandbox_log.lines() {
        epoch(&line[..20]);
    }
    assert!(fx.log().is_empty(), "stderr: {}", fx.log());
}

#[test]
fn notifies_systemd_when_ready_and_around_reloads() {
    use std::os::unix::net::UnixDatagram;
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 2)]);
    let sock_path = fx.set.p("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let recv = || {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["tree", "-c", &fx.master_path()])
        .args(["--log-stderr", "--log-level", "debug"])
        .env("NOTIFY_SOCKET", &sock_path);
    fx.spawn_tree(cmd);
    let tree = fx.tree.as_ref().expect("spawned").id() as i32;
    fx.tree_pid = Some(tree);
    let msg = recv();
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(msg.contains(&format!("MAINPID={tree}")), "{msg}");
    // Ready means every instance of the first load has started.
    let ps = fx.ps();
    assert!(
        insts(&ps).iter().all(|i| i["state"] != "starting") && insts(&ps).len() == 2,
        "{ps}"
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let msg = recv();
    assert!(msg.contains("RELOADING=1"), "{msg}");
    assert!(msg.contains("MONOTONIC_USEC="), "{msg}");
    let msg = recv();
    assert!(msg.contains("READY=1"), "{msg}");
    // The socket is the tree's, not the workloads'.
    let (_, work) = pids(&fx.ps(), "box/web.0");
    let environ = fs::read(format!("/proc/{work}/environ")).expect("environ");
    assert!(
        !String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"),
        "the workload sees NOTIFY_SOCKET"
    );
}

// ---------------------------------------------------------------------------
// 11. One tree per runtime dir.

#[test]
fn second_tree_on_the_same_runtime_dir_refuses() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("running", |ps| all_running(ps, &["box/web.0"]));
    let first = fx.tree_pid();
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["tree", "-c", &fx.master_path(), "--log-stderr"]);
    let out = output_within(&mut cmd, None, Duration::from_secs(10));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("pid {first}")), "{err}");
    assert!(err.contains(&fx.set.s("run")), "{err}");
    assert_eq!(
        fs::read_to_string(fx.set.p("run/tree.pid"))
            .expect("pid file")
            .trim(),
        first.to_string()
    );
    let after = fx.ps();
    assert_eq!(after["tree"]["pid"], first);
    assert_eq!(pids(&after, "box/web.0"), pids(&ps, "box/web.0"));
    assert!(alive(first));
}

// ---------------------------------------------------------------------------
// 12. The JSON contract.

fn assert_type(v: &Value, key: &str, kinds: &[&str]) {
    let got = match &v[key] {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() || n.is_i64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    // An integral float prints as an int; an int is a fine number too.
    let ok = kinds.contains(&got) || (got == "int" && kinds.contains(&"float"));
    assert!(
        v.as_object().is_some_and(|o| o.contains_key(key)) && ok,
        "{key}: {got}, want one of {kinds:?} in {v}"
    );
}

#[test]
fn ps_json_matches_the_contract() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.container("crash", &sh("exit 2", "restart-timeout: 30\n"));
    fx.container("broken", "executable: [\n");
    fx.processes(&[("web", 1), ("crash", 1), ("broken", 1)]);
    fx.start();
    let ps = fx.wait_ps("one of each state", |ps| {
        all_running(ps, &["box/web.0"])
            && state(ps, "box/crash.0") == Some("backoff")
            && state(ps, "box/broken.0") == Some("failed")
    });
    let top: BTreeSet<&str> = ps
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, BTreeSet::from(["tree", "instances", "config_errors"]));
    let tree = &ps["tree"];
    assert_type(tree, "pid", &["int"]);
    assert_eq!(tree["pid"], fx.tree_pid());
    assert_type(tree, "version", &["string"]);
    assert!(
        tree["version"]
            .as_str()
            .is_some_and(|v| v.starts_with(env!("CARGO_PKG_VERSION")))
    );
    assert_type(tree, "started", &["string"]);
    epoch(tree["started"].as_str().expect("string"));
    assert_type(tree, "upgrades", &["int"]);
    assert_type(tree, "reloads", &["int"]);
    // The first load counts as one.
    assert_eq!(
        (&tree["upgrades"], &tree["reloads"]),
        (&0.into(), &1.into())
    );
    assert_type(tree, "config", &["string"]);
    assert_eq!(tree["config"], fx.master_path().as_str());
    if tree
        .as_object()
        .is_some_and(|o| o.contains_key("last_upgrade_ms"))
    {
        assert_type(tree, "last_upgrade_ms", &["float", "null"]);
    }
    assert!(
        ps["config_errors"]
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
    );
    assert_eq!(insts(&ps).len(), 3);
    let states = ["starting", "running", "stopping", "backoff", "failed"];
    for i in insts(&ps) {
        for k in [
            "name",
            "sandbox",
            "process",
            "state",
            "since",
            "image",
            "config_hash",
        ] {
            assert_type(i, k, &["string"]);
        }
        for k in ["index", "restarts"] {
            assert_type(i, k, &["int"]);
        }
        for k in ["pid", "workload_pid", "memory_bytes"] {
            assert_type(i, k, &["int", "null"]);
        }
        assert_type(i, "cpu_seconds", &["float", "null"]);
        for k in ["next_start", "error", "cgroup"] {
            assert_type(i, k, &["string", "null"]);
        }
        assert_type(i, "last_exit", &["object", "null"]);
        assert!(states.contains(&i["state"].as_str().expect("string")));
        epoch(i["since"].as_str().expect("string"));
        let name = format!(
            "{}/{}.{}",
            i["sandbox"].as_str().expect("string"),
            i["process"].as_str().expect("string"),
            i["index"]
        );
        assert_eq!(i["name"], name.as_str());
    }
    let web = inst(&ps, "box/web.0").expect("listed");
    for k in ["pid", "workload_pid", "memory_bytes"] {
        assert_type(web, k, &["int"]);
    }
    assert_type(web, "cpu_seconds", &["float"]);
    assert_eq!(web["cgroup"], "box:web.0");
    assert!(web["last_exit"].is_null() && web["next_start"].is_null());
    let crash = inst(&ps, "box/crash.0").expect("listed");
    assert_type(crash, "next_start", &["string"]);
    epoch(crash["next_start"].as_str().expect("string"));
    let last = &crash["last_exit"];
    assert_type(last, "status", &["int"]);
    assert_eq!(last["status"], 2);
    assert_type(last, "signal", &["int", "null"]);
    assert_type(last, "oom_killed", &["bool"]);
    assert_type(last, "failure", &["bool"]);
    assert_type(last, "at", &["string"]);
    epoch(last["at"].as_str().expect("string"));
    assert_type(last, "error", &["string", "null"]);
    let broken = inst(&ps, "box/broken.0").expect("listed");
    assert_type(broken, "error", &["string"]);
    assert!(broken["pid"].is_null());
    // The text form: a header line, a column header, a row per instance.
    let out = cairn(&["ps", "-c", &fx.master_path()]);
    assert!(out.status.success());
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("tree pid {} version ", fx.tree_pid())),
        "{text}"
    );
    assert!(text.contains("config error: "), "{text}");
    let header = lines
        .iter()
        .find(|l| l.starts_with("INSTANCE"))
        .unwrap_or_else(|| panic!("{text}"));
    for col in [
        "STATE",
        "PID",
        "WORKLOAD",
        "RST",
        "CPU(s)",
        "MEM(MiB)",
        "SINCE",
        "LAST EXIT",
    ] {
        assert!(header.contains(col), "{header}");
    }
    for (name, st) in [
        ("box/web.0", "running"),
        ("box/crash.0", "backoff"),
        ("box/broken.0", "failed"),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(name) && l.contains(st)),
            "{name} {st}: {text}"
        );
    }
    // metrics.prom: every series, with HELP and TYPE.
    let metrics = fs::read_to_string(fx.set.p("run/metrics.prom")).expect("metrics");
    for (name, kind) in [
        ("cairn_started_total", "counter"),
        ("cairn_deaths_total", "counter"),
        ("cairn_failures_total", "counter"),
        ("cairn_running", "gauge"),
        ("cairn_unknown_children_total", "counter"),
    ] {
        assert!(metrics.contains(&format!("# HELP {name} ")), "{metrics}");
        assert!(
            metrics.contains(&format!("# TYPE {name} {kind}\n")),
            "{metrics}"
        );
    }
}

// ---------------------------------------------------------------------------
// 13. Rolling restart.

/// A workload that takes 0.2 s to stop, so a rollout is slow enough to
/// watch.
fn versioned(version: &str) -> String {
    sh_env(
        "trap 'sleep 0.2; exit 0' TERM; sleep 1000 & wait",
        &[("VERSION", version)],
        "kill-timeout: 5\n",
    )
}

#[test]
fn broken_new_config_stops_the_rollout_at_one_instance() {
    let mut fx = fixture!();
    fx.container("web", &versioned("1"));
    fx.processes(&[("web", 3)]);
    fx.start();
    let web = names("web", 3);
    let ps0 = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&web)));
    // Valid config, but the program does not exist: it cannot come up.
    fx.container(
        "web",
        &sleeper("restart-timeout: 0.1\n").replace("/bin/sleep", "/bin/no-such-program"),
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The first instance is replaced and crash-loops; the rollout waits.
    let ps = fx.wait_ps("web.0 failing with the new config", |ps| {
        inst(ps, "box/web.0").is_some_and(|i| i["last_exit"]["status"] == 127)
    });
    let new_hash = inst(&ps, "box/web.0").expect("listed")["config_hash"].clone();
    // Give it time to move on, if it wrongly would (a few back-offs).
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        let ps = fx.ps();
        for name in &web[1..] {
            assert_eq!(pids(&ps, name), pids(&ps0, name), "{name} was touched");
            assert_eq!(state(&ps, name), Some("running"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ps = fx.ps();
    let i = inst(&ps, "box/web.0").expect("listed");
    assert_eq!(i["config_hash"], new_hash);
    assert!(
        i["last_exit"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("/bin/no-such-program")),
        "{i}"
    );
    // Repaired: the rollout goes on through every instance.
    fx.container("web", &versioned("2"));
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = fx.wait_ps("all on the repaired config", |ps| {
        all_running(ps, &refs(&web)) && web[1..].iter().all(|n| pids(ps, n) != pids(&ps0, n))
    });
    for name in &web {
        let (_, w) = pids(&ps, name);
        let env = fs::read(format!("/proc/{w}/environ")).expect("environ");
        assert!(
            String::from_utf8_lossy(&env).contains("VERSION=2"),
            "{name}"
        );
    }
}

#[test]
fn changed_config_rolls_one_instance_at_a_time() {
    let mut fx = fixture!();
    fx.master(&format!("config-log-dir: {}\n", fx.set.s("log/config")));
    fx.container("web", &versioned("1"));
    fx.processes(&[("web", 3)]);
    fx.start();
    let web = names("web", 3);
    let ps0 = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&web)));
    let old: BTreeMap<&str, ((i32, i32), String)> = web
        .iter()
        .map(|n| {
            let hash = inst(&ps0, n).expect("listed")["config_hash"]
                .as_str()
                .expect("hash")
                .to_string();
            (n.as_str(), (pids(&ps0, n), hash))
        })
        .collect();
    fx.container("web", &versioned("2"));
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state_file = fx.set.p("run/state.json");
    let start = Instant::now();
    let mut samples = 0;
    let mut worst = 0;
    let ps = loop {
        assert!(start.elapsed() < WAIT, "rollout did not finish");
        // state.json is replaced atomically: never a torn file.
        let raw = fs::read(&state_file).expect("state.json");
        serde_json::from_slice::<Value>(&raw).expect("state.json parses");
        let ps = fx.ps();
        samples += 1;
        let down = web
            .iter()
            .filter(|n| state(&ps, n) != Some("running"))
            .count();
        worst = worst.max(down);
        assert!(down <= 1, "{down} instances down at once: {ps}");
        let done = web.iter().all(|n| {
            let i = inst(&ps, n).expect("listed");
            i["state"] == "running" && i["config_hash"] != old[n.as_str()].1.as_str()
        });
        if done {
            break ps;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        worst == 1 && samples > 3,
        "never saw the rollout ({samples} samples)"
    );
    for n in &web {
        let (k, w) = pids(&ps, n);
        let (ok, ow) = old[n.as_str()].0;
        assert!(k != ok && w != ow, "{n} kept its pids");
        assert!(!alive(ok) && !alive(ow));
        assert_eq!(
            fs::read_to_string(format!("/proc/{w}/environ"))
                .map(|e| e.contains("VERSION=2"))
                .ok(),
            Some(true),
            "{n} runs the old config"
        );
    }
    // The log shows the order: each replacement started before the next
    // instance was touched.
    let log = fx.log();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in log:\n{log}"))
    };
    let mut prev_started = 0;
    for (n, name) in web.iter().enumerate() {
        let changed = at(&format!("{name}: config changed"));
        assert!(
            changed >= prev_started,
            "{name} was touched too early:\n{log}"
        );
        let new_hash = inst(&ps, name).expect("listed")["config_hash"]
            .as_str()
            .expect("hash")
            .to_string();
        prev_started = at(&format!(
            "{name}: started (knot pid {}, config {new_hash})",
            pids(&ps, name).0
        ));
        assert!(prev_started > changed, "{n}");
    }
    // The config log has both versions of every instance.
    let config_log = fs::read_to_string(fx.set.p("log/config/box.log")).expect("config log");
    for (name, (_, hash)) in &old {
        assert!(
            config_log.contains(&format!(" {name} {hash} ")),
            "{config_log}"
        );
    }
    assert_eq!(config_log.lines().count(), 6, "{config_log}");
    fx.expect_metrics(&[
        ("cairn_started_total", "web", 6),
        ("cairn_deaths_total", "web", 3),
        ("cairn_failures_total", "web", 0),
    ]);
}

// ---------------------------------------------------------------------------
// Exit codes that need no tree.

#[test]
fn usage_errors_exit_2_and_missing_tree_exits_1() {
    for args in [
        vec!["tree", "--bogus"],
        vec!["ps", "--bogus"],
        vec!["switch", "box"],
        vec!["reload", "extra"],
        vec!["tree", "--log-level", "loud"],
    ] {
        let out = cairn(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let set = ConfigSet::new();
    set.write("master.yaml", format!("runtime-dir: {}\n", set.s("run")));
    for cmd in ["ps", "reload", "upgrade"] {
        let out = cairn(&[cmd, "-c", &set.master()]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            stderr(&out).contains("no cairn tree runs"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    // A master config that does not load: exit 1 naming it.
    let missing = set.s("nope.yaml");
    for cmd in ["tree", "ps", "reload"] {
        let out = cairn(&[cmd, "-c", &missing]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(stderr(&out).contains(&missing), "{cmd}: {}", stderr(&out));
    }
}

/// Once a supervised workload runs, pid 1 of its container is cairn-init,
/// a few pages run from a sealed memfd (not the forked supervisor): its
/// resident memory is tiny, it calls itself `cairn`, it is not dumpable,
/// and the workload can reach neither its exe, root nor environ.
#[test]
fn pid1_of_a_supervised_container_is_cairn_init() {
    let mut fx = fixture!();
    fx.container(
        "probe",
        &sh(
            "sleep 0.3; cat /proc/1/exe >/dev/null 2>&1 && echo 'open exe' || echo 'closed exe'; \
             ls /proc/1/root/ >/dev/null 2>&1 && echo 'open root' || echo 'closed root'; \
             cat /proc/1/environ >/dev/null 2>&1 && echo 'open environ' || echo 'closed environ'; \
             echo \"comm $(cat /proc/1/comm)\"; sleep 1000",
            "",
        ),
    );
    fx.processes(&[("probe", 1)]);
    fx.start();
    let ps = fx.wait_ps("probe running", |ps| all_running(ps, &["box/probe.0"]));
    let (knot, _) = pids(&ps, "box/probe.0");
    // Running cairn-init: the knot's exe became the memfd.
    wait_for(Duration::from_secs(5), "pid 1 to become cairn-init", || {
        fs::read_link(format!("/proc/{knot}/exe"))
            .ok()
            .map(|p| p.display().to_string())
            .filter(|p| p.contains("memfd:cairn-init"))
    });
    let status = fs::read_to_string(format!("/proc/{knot}/status")).expect("status");
    let rss: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS");
    assert!(rss <= 64, "cairn-init uses {rss} kB");
    assert_eq!(
        fs::read_to_string(format!("/proc/{knot}/comm"))
            .expect("comm")
            .trim(),
        "cairn"
    );
    let text = wait_for(Duration::from_secs(5), "the probe's findings", || {
        let t = fs::read_to_string(fx.set.p("log/stdio/box.log")).ok()?;
        t.contains("comm ").then_some(t)
    });
    for f in ["exe", "root", "environ"] {
        assert!(
            text.contains(&format!("closed {f}")),
            "/proc/1/{f} is reachable:\n{text}"
        );
    }
    assert!(text.contains("comm cairn"), "{text}");
}

// ---------------------------------------------------------------------------
// bridged-network under the tree.

/// The host ends (`cn<knot pid>`) attached to `bridge` in the network
/// namespace of `pid`.
fn bridge_ports(pid: i32, bridge: &str) -> BTreeSet<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-o", "link", "show", "master", bridge])
        .output()
        .expect("nsenter ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn bridged_daemons_get_their_addresses_and_a_new_pair_on_restart() {
    let mut fx = fixture!();
    require!(
        have("unshare") && have("nsenter") && have("ip"),
        "util-linux unshare, nsenter and iproute2 ip needed"
    );
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
             min-restart-timeout: 0\n\
             bridged-network:\n  bridge: br-cairn\n  network: 10.71.0.0/16\n",
            fx.set.s("images"),
        ),
    );
    fx.container(
        "web",
        &sh(
            "ip -o -4 addr show dev eth0; exec sleep 1000",
            "kill-timeout: 1\nrestart-timeout: 0.2\n",
        ),
    );
    fx.set.write(
        "processes/box.yaml",
        "web:\n  image: bb\n  config: /config/web.yaml\n  instances: 2\n  \
         ip-addresses: [10.71.0.2, 10.71.0.3]\n",
    );
    // The tree runs in a network namespace of this test, with the bridge.
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--",
        "/bin/sh",
        "-c",
        "set -e; ip link set lo up; ip link add br-cairn type bridge; \
         ip link set br-cairn up; exec \"$@\"",
        "sh",
    ])
    .arg(cairn_bin())
    .args(["tree", "-c", &fx.master_path(), "--log-stderr"]);
    fx.spawn_tree(cmd);
    let tree = fx.tree.as_ref().expect("spawned").id() as i32;
    fx.tree_pid = Some(tree);
    let names = ["box/web.0", "box/web.1"];
    let ps = fx.wait_ps("both running", |ps| all_running(ps, &names));
    let knots: Vec<i32> = names.iter().map(|n| pids(&ps, n).0).collect();
    // Each workload saw its own address on eth0.
    wait_for(WAIT, "both addresses in the stdio log", || {
        let t = fs::read_to_string(fx.set.p("log/stdio/box.log")).ok()?;
        (t.contains("inet 10.71.0.2/16") && t.contains("inet 10.71.0.3/16")).then_some(())
    });
    let want: BTreeSet<String> = knots.iter().map(|k| format!("cn{k}")).collect();
    assert_eq!(bridge_ports(tree, "br-cairn"), want, "{}", fx.log());
    // A replaced instance gets a new pair; the old one goes with its
    // network namespace.
    let (_, work) = pids(&ps, "box/web.0");
    std::thread::sleep(Duration::from_millis(250));
    kill(work, libc::SIGKILL);
    let ps = fx.wait_ps("a new web.0", |ps| {
        all_running(ps, &names) && pids(ps, "box/web.0").0 != knots[0]
    });
    let want: BTreeSet<String> = [pids(&ps, "box/web.0").0, knots[1]]
        .iter()
        .map(|k| format!("cn{k}"))
        .collect();
    wait_for(WAIT, "the bridge holds the new pair only", || {
        (bridge_ports(tree, "br-cairn") == want).then_some(())
    });
    let (status, _) = fx.stop_tree(libc::SIGTERM);
    assert!(status.success(), "tree exit {status:?}\n{}", fx.log());
}

// ---------------------------------------------------------------------------
// cgroup limits across restarts and config changes.

/// The memory limit of the test's single instance leaf, in bytes.
fn memory_limit(fx: &Fx) -> Option<(PathBuf, u64)> {
    cgroup_leaves(&fx.cgroup.name).into_iter().find_map(|leaf| {
        ["memory.limit_in_bytes", "memory.max"]
            .iter()
            .find_map(|f| {
                let v = fs::read_to_string(leaf.join(f)).ok()?.trim().parse().ok()?;
                Some((leaf.clone(), v))
            })
    })
}

#[test]
fn restart_keeps_the_cgroup_limits_and_a_changed_config_rewrites_them() {
    let mut fx = fixture!();
    fx.container(
        "web",
        &sleeper("memory-limit: 64Mi\nrestart-timeout: 0.2\n"),
    );
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let (leaf, limit) = memory_limit(&fx).expect("a memory leaf with a limit");
    assert_eq!(limit, 64 << 20);
    // A restart with the same config joins the same leaf, limit in place.
    let (knot, work) = pids(&ps, "box/web.0");
    std::thread::sleep(Duration::from_millis(250));
    kill(work, libc::SIGKILL);
    let ps = fx.wait_ps("a new web.0", |ps| {
        all_running(ps, &["box/web.0"]) && pids(ps, "box/web.0").0 != knot
    });
    let (knot, work) = pids(&ps, "box/web.0");
    assert_eq!(memory_limit(&fx), Some((leaf.clone(), 64 << 20)));
    let procs = cgroup_procs(&leaf);
    assert!(
        procs.contains(&knot) && procs.contains(&work),
        "{procs:?} lacks knot {knot} or workload {work}"
    );
    // A changed config restarts the instance with the new limit written.
    let hash = inst(&ps, "box/web.0").expect("listed")["config_hash"].clone();
    fx.container(
        "web",
        &sleeper("memory-limit: 32Mi\nrestart-timeout: 0.2\n"),
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    fx.wait_ps("web.0 on the new config", |ps| {
        all_running(ps, &["box/web.0"])
            && inst(ps, "box/web.0").is_some_and(|i| i["config_hash"] != hash)
    });
    assert_eq!(memory_limit(&fx), Some((leaf, 32 << 20)));
}

#[path = "tree/faults.rs"]
mod faults;
#[path = "tree/injection.rs"]
mod injection;
#[path = "tree/refused.rs"]
mod refused;
