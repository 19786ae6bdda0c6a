//! Invisible upgrades (issue 5), end to end: the tree re-executes itself in
//! place (SIGQUIT / `cairn upgrade`), survives a crash (fatal signal) and a
//! `kill -9`, and through all of it no workload restarts, none runs twice,
//! and listening sockets stay open.
//!
//! Every test starts its own `cairn tree` from a private copy of the binary
//! (so "the installed path" is ours to replace), with its own temp dir
//! (configs, busybox image, runtime, state and log dirs) and its own cgroup
//! root. The `World` guard stops the tree and kills whatever is left in that
//! cgroup root when the test ends. Needs root and Debian's busybox-static;
//! skips otherwise (fails under `CI=true`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{
    CgroupGuard, ConfigSet, cairn_bin, cgroup_procs, cgroup_root_dirs, container_prereqs,
    descendants, make_busybox_image,
};

/// The container user (inside the sandbox's allowed range).
const UID: u32 = 1000;
/// Longest wait for many containers to start (debug build, tests in parallel).
const START: Duration = Duration::from_secs(90);
/// Longest wait for one step (an upgrade, a restart) to show in `ps`.
const STEP: Duration = Duration::from_secs(30);

/// Skip (or fail under CI) unless we are root with a static busybox;
/// otherwise build a fresh world.
macro_rules! world {
    () => {{
        let ready = container_prereqs();
        require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
        World::new(&ready.expect("checked above"))
    }};
}

// ---------------------------------------------------------------------------
// What `cairn ps --json` says.

#[derive(Debug, Clone)]
struct Inst {
    state: String,
    /// The knot's host pid.
    pid: Option<i32>,
    workload: Option<i32>,
    restarts: u64,
    hash: String,
    last_exit: Value,
}

#[derive(Debug, Clone)]
struct Ps {
    tree_pid: i32,
    version: String,
    upgrades: u64,
    reloads: u64,
    last_upgrade_ms: Option<f64>,
    inst: BTreeMap<String, Inst>,
}

impl Ps {
    fn parse(v: &Value) -> Option<Ps> {
        let t = &v["tree"];
        let mut inst = BTreeMap::new();
        for i in v["instances"].as_array()? {
            let pid = |k: &str| i[k].as_i64().map(|p| p as i32);
            inst.insert(
                i["name"].as_str()?.to_string(),
                Inst {
                    state: i["state"].as_str().unwrap_or("").to_string(),
                    pid: pid("pid"),
                    workload: pid("workload_pid"),
                    restarts: i["restarts"].as_u64().unwrap_or(u64::MAX),
                    hash: i["config_hash"].as_str().unwrap_or("").to_string(),
                    last_exit: i["last_exit"].clone(),
                },
            );
        }
        Some(Ps {
            tree_pid: t["pid"].as_i64()? as i32,
            version: t["version"].as_str()?.to_string(),
            upgrades: t["upgrades"].as_u64()?,
            reloads: t["reloads"].as_u64()?,
            last_upgrade_ms: t["last_upgrade_ms"].as_f64(),
            inst,
        })
    }

    /// name → (knot pid, workload pid) of every instance.
    fn pids(&self) -> BTreeMap<String, (Option<i32>, Option<i32>)> {
        self.inst
            .iter()
            .map(|(n, i)| (n.clone(), (i.pid, i.workload)))
            .collect()
    }

    fn all_running(&self, n: usize) -> bool {
        self.inst.len() == n
            && self
                .inst
                .values()
                .all(|i| i.state == "running" && i.pid.is_some() && i.workload.is_some())
    }
}

// ---------------------------------------------------------------------------
// Small system helpers (signals go only to pids this test started).

fn kill(pid: i32, sig: i32) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    // SAFETY: kill(2) of a process this test started (the tree, or a
    // workload of one of our instances).
    unsafe { libc::kill(pid, sig) };
}

/// The last field of `NSpid` in /proc/PID/status: 1 for a pid-namespace init.
fn ns_pid(pid: i32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// Whether `pid` is gone or a zombie (it has exited).
fn exited(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| st == "Z" || st == "X"),
        Err(_) => true,
    }
}

/// Start time (clock ticks after boot) of `pid`, from /proc/PID/stat.
fn upg_start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// The sockets `pid` holds ("socket:[INODE]" link targets of its fds).
fn upg_sockets(pid: i32) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(t) = fs::read_link(e.path()) {
                let t = t.display().to_string();
                if t.starts_with("socket:") {
                    out.insert(t);
                }
            }
        }
    }
    out
}

/// What fd `fd` of `pid` is.
fn upg_fd(pid: i32, fd: u32) -> String {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|t| t.display().to_string())
        .unwrap_or_default()
}

/// Whether nothing listens on 127.0.0.1:`port` (we can bind it).
fn upg_port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A TCP port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Connect to `port` on localhost and read the acceptor's whole answer.
fn fetch(port: u16) -> Result<Vec<u8>, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    Ok(buf)
}

/// Run `cmd` to completion, retrying while its binary is "busy": another
/// test thread may have forked while a binary we just wrote was still open
/// for writing (the child closes it when it execs).
fn upg_output(cmd: &mut Command) -> std::process::Output {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r.expect("run a command"),
        }
    }
}

/// `cairn --version` of `bin`: the build id between the parentheses.
fn upg_build_id(bin: &Path) -> String {
    let out = upg_output(Command::new(bin).arg("--version"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = text
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("no build id in {text:?}"));
    assert!(id.len() >= 6, "build id {id:?} too short to patch safely");
    id
}

/// Copy `src` to `dst` with every occurrence of `from` replaced by `to`
/// (same length), executable. Returns how many were replaced.
fn upg_patched_copy(src: &Path, dst: &Path, from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut bytes = fs::read(src).expect("read binary");
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if bytes[i] == from[0] && &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    fs::write(dst, &bytes).expect("write patched binary");
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).expect("chmod");
    n
}

// ---------------------------------------------------------------------------
// One test's world.

struct World {
    /// The running tree (our child), if any. Stopped first on drop.
    tree: Option<Child>,
    /// Kills whatever is left in our cgroup root, then removes it (after
    /// the tree is gone, before the temp dir goes).
    cgroup: CgroupGuard,
    set: ConfigSet,
    /// The installed path: our private copy of the binary.
    exe: PathBuf,
    /// Another link to that copy, for `ps`, `reload`, `upgrade`: immune to
    /// a rebuild of the cargo binary and to our replacing `exe`.
    cli: PathBuf,
    /// Knots (pid, start time) to kill on drop if no tree is left to stop
    /// them (only needed when cgroups are off).
    strays: Vec<(i32, u64)>,
    /// Extra environment for the tree.
    env: Vec<(String, String)>,
    /// A hand-off file the next `start_tree` gives the tree (as fd 9, in
    /// CAIRN_HANDOFF_FD), as a tree that upgrades itself would.
    forged_handoff: Option<PathBuf>,
    /// Entries of `processes/box.yaml`, by name.
    entries: BTreeMap<String, String>,
}

impl World {
    fn new(busybox: &Path) -> World {
        let set = ConfigSet::new();
        let cgroup = CgroupGuard::new();
        make_busybox_image(busybox, &set.p("images/bb"));
        let exe = set.p("bin/cairn");
        fs::create_dir_all(set.p("bin")).expect("mkdir bin");
        fs::copy(cairn_bin(), &exe).expect("copy the cairn binary");
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
        let cli = set.p("bin/cairn-cli");
        if fs::hard_link(&exe, &cli).is_err() {
            fs::copy(&exe, &cli).expect("copy the cairn binary");
        }
        let w = World {
            tree: None,
            cgroup,
            set,
            exe,
            cli,
            strays: Vec::new(),
            env: Vec::new(),
            entries: BTreeMap::new(),
            forged_handoff: None,
        };
        w.master_yaml(&format!("cgroup-name: {}\n", w.cgroup.name));
        w.sandbox("");
        w
    }

    /// (Re)write master.yaml: every dir in the temp dir, plus `extra`
    /// (which gives the cgroup settings).
    fn master_yaml(&self, extra: &str) {
        self.set
            .write_master(&format!("config-log-dir: null\n{extra}"));
    }

    /// Remember the knots in `ps`, to kill them on drop should no tree be
    /// left to stop them.
    fn remember(&mut self, ps: &Ps) {
        for i in ps.inst.values() {
            if let Some(pid) = i.pid
                && let Some(t) = upg_start_time(pid)
            {
                self.strays.push((pid, t));
            }
        }
    }

    /// (Re)write sandbox `box` with `extra` keys. Its min-restart-timeout
    /// of 0 lets the tests restart workloads at once (`restart-timeout: 0`).
    fn sandbox(&self, extra: &str) {
        self.set.write(
            "sandboxes/box.yaml",
            format!(
                "image-dir: {images}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
                 min-restart-timeout: 0\n{extra}",
                images = self.set.s("images"),
            ),
        );
    }

    /// Write the container config `/config/NAME.yaml` in the image.
    fn container(&self, name: &str, yaml: &str) {
        self.set
            .write(&format!("images/bb/config/{name}.yaml"), yaml);
    }

    /// Add (or replace) the Daemon entry `name` (config `/config/NAME.yaml`)
    /// with `instances` copies and the entry keys in `extra`.
    fn entry(&mut self, name: &str, instances: u32, extra: &str) {
        let mut text = format!(
            "{name}:\n  image: bb\n  config: /config/{name}.yaml\n  instances: {instances}\n"
        );
        for line in extra.lines() {
            text.push_str(&format!("  {line}\n"));
        }
        self.entries.insert(name.to_string(), text);
        let all: String = self.entries.values().cloned().collect();
        self.set.write("processes/box.yaml", all);
    }

    /// Entry `name`: `instances` copies of `/bin/sleep 100000`.
    fn sleepers(&mut self, name: &str, instances: u32) {
        self.container(
            name,
            &format!(
                "executable: /bin/sleep\narguments: ['100000']\nuser-id: {UID}\n\
                 group-id: {UID}\nrestart-timeout: 0\nkill-timeout: 2\n"
            ),
        );
        self.entry(name, instances, "");
    }

    fn master(&self) -> String {
        self.set.master()
    }

    /// Start `cairn tree` from the installed path; its log goes to tree.log.
    fn start_tree(&mut self) -> i32 {
        assert!(self.tree.is_none(), "a tree is already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.set.p("tree.log"))
            .expect("tree.log");
        let mut cmd = Command::new(&self.exe);
        cmd.args(["tree", "-c", &self.master(), "--log-stderr"])
            .args(["--log-level", "debug"])
            .env_remove("RUST_BACKTRACE")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("CAIRN_HANDOFF_FD")
            .env_remove("CAIRN_RECOVERED")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let forged = self.forged_handoff.take().map(|p| {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let f = fs::File::open(p).expect("the forged hand-off");
            let fd = f.as_raw_fd();
            cmd.env("CAIRN_HANDOFF_FD", "9");
            // SAFETY: only dup2(2), async-signal-safe, on an fd we hold.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(fd, 9) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            f
        });
        // ETXTBSY: another test thread may have forked while our copy of
        // the binary was open for writing; its child closes it on exec.
        let mut tries = 0;
        let child = loop {
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => break r.expect("start cairn tree"),
            }
        };
        drop(forged);
        let pid = child.id() as i32;
        self.tree = Some(child);
        pid
    }

    fn tree_pid(&self) -> i32 {
        self.tree.as_ref().expect("no tree running").id() as i32
    }

    /// The tree is still our (running) child.
    fn assert_tree_alive(&mut self) {
        let c = self.tree.as_mut().expect("no tree running");
        if let Some(st) = c.try_wait().expect("try_wait") {
            panic!("the tree exited: {st}\n{}", self.log_tail(40));
        }
    }

    fn signal_tree(&self, sig: i32) {
        kill(self.tree_pid(), sig);
    }

    /// SIGKILL the tree and reap it.
    fn kill9_tree(&mut self) {
        let mut c = self.tree.take().expect("no tree running");
        kill(c.id() as i32, libc::SIGKILL);
        c.wait().expect("wait for the killed tree");
    }

    fn ps(&self) -> Option<Ps> {
        let out = upg_output(Command::new(&self.cli).args(["ps", "-c", &self.master(), "--json"]));
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| Ps::parse(&v))
    }

    /// Poll `ps` until `pred` holds; panic (with the log) after `timeout`.
    fn wait(&self, what: &str, timeout: Duration, mut pred: impl FnMut(&Ps) -> bool) -> Ps {
        let t0 = Instant::now();
        let mut last = None;
        loop {
            if let Some(ps) = self.ps() {
                if pred(&ps) {
                    return ps;
                }
                last = Some(ps);
            }
            if t0.elapsed() > timeout {
                let summary = last.map(|p| {
                    let states: BTreeMap<&str, usize> =
                        p.inst.values().fold(BTreeMap::new(), |mut m, i| {
                            *m.entry(i.state.as_str()).or_default() += 1;
                            m
                        });
                    format!(
                        "tree pid {} upgrades {} reloads {} states {states:?}",
                        p.tree_pid, p.upgrades, p.reloads
                    )
                });
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last ps: {summary:?}\n{}",
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait until our current tree reports `n` running instances.
    fn wait_running(&self, n: usize, timeout: Duration) -> Ps {
        let pid = self.tree_pid();
        self.wait(&format!("{n} running instances"), timeout, |p| {
            p.tree_pid == pid && p.all_running(n)
        })
    }

    /// Processes in each instance cgroup (leaf name → pids), read from one
    /// hierarchy; every hierarchy that has our root must agree.
    fn census(&self) -> BTreeMap<String, BTreeSet<i32>> {
        let mut maps = Vec::new();
        for root in cgroup_root_dirs(&self.cgroup.name) {
            let Ok(rd) = fs::read_dir(&root) else {
                continue;
            };
            let mut m = BTreeMap::new();
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    m.insert(name, cgroup_procs(&e.path()).into_iter().collect());
                }
            }
            maps.push((root, m));
        }
        assert!(
            !maps.is_empty(),
            "no cgroup root {} found",
            self.cgroup.name
        );
        for (root, m) in &maps[1..] {
            assert_eq!(
                m,
                &maps[0].1,
                "cgroup hierarchies disagree: {} vs {}",
                root.display(),
                maps[0].0.display()
            );
        }
        maps.swap_remove(0).1
    }

    /// Every instance's leaf holds exactly its knot (the pid-namespace
    /// init, as `ps` says) and its workload, and nothing else is there.
    fn assert_census_matches(&self, census: &BTreeMap<String, BTreeSet<i32>>, ps: &Ps) {
        assert_eq!(
            census.len(),
            ps.inst.len(),
            "cgroup leaves {:?} vs instances {:?}",
            census.keys().collect::<Vec<_>>(),
            ps.inst.keys().collect::<Vec<_>>()
        );
        for (leaf, procs) in census {
            let name = leaf.replacen(':', "/", 1);
            let i = ps
                .inst
                .get(&name)
                .unwrap_or_else(|| panic!("cgroup {leaf} belongs to no instance"));
            let (knot, workload) = (i.pid.expect("knot pid"), i.workload.expect("workload"));
            assert_eq!(
                procs,
                &BTreeSet::from([knot, workload]),
                "{leaf}: expected exactly knot {knot} and workload {workload}"
            );
            assert_eq!(ns_pid(knot), Some(1), "{leaf}: {knot} is not a pid-1 knot");
            assert_ne!(ns_pid(workload), Some(1), "{leaf}: workload is an init");
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.set.p("tree.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        format!(
            "--- tree.log (last {lines} lines) ---\n{}",
            all[from..].join("\n")
        )
    }

    fn log_has(&self, needle: &str) -> bool {
        fs::read_to_string(self.set.p("tree.log"))
            .unwrap_or_default()
            .contains(needle)
    }

    /// How often `needle` occurs in the tree's log.
    fn log_count(&self, needle: &str) -> usize {
        fs::read_to_string(self.set.p("tree.log"))
            .unwrap_or_default()
            .matches(needle)
            .count()
    }

    /// SIGQUIT and wait until `ps` shows upgrade number `k` done with `n`
    /// instances running.
    fn upgrade_to(&self, k: u64, n: usize) -> Ps {
        self.signal_tree(libc::SIGQUIT);
        let pid = self.tree_pid();
        self.wait(&format!("upgrade {k}"), STEP, |p| {
            p.upgrades >= k && p.tree_pid == pid && p.all_running(n)
        })
    }

    /// A second `cairn tree` on the same runtime dir is refused: the pid
    /// file lock is held (across upgrades and crashes too).
    fn assert_second_tree_refused(&self) {
        let out = common::output_within(
            Command::new(&self.cli)
                .args(["tree", "-c", &self.master(), "--log-stderr"])
                .env_remove("NOTIFY_SOCKET"),
            None,
            STEP,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "second tree: {err}");
        assert!(err.contains("another cairn tree"), "second tree: {err}");
    }

    /// Compile tests/helpers/acceptor.c statically into the image.
    fn build_acceptor(&self) -> Result<(), String> {
        common::build_helper(
            "acceptor",
            &["-static"],
            &self.set.p("images/bb/bin/acceptor"),
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(60));
        }
        if let Some(mut c) = self.tree.take() {
            kill(c.id() as i32, libc::SIGTERM);
            let t0 = Instant::now();
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if t0.elapsed() < Duration::from_secs(20) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        for &(pid, t) in &self.strays {
            if upg_start_time(pid) == Some(t) {
                kill(pid, libc::SIGKILL);
            }
        }
        // Then the CgroupGuard field kills and removes what is left.
    }
}

/// Skip (or fail under CI) unless the acceptor can be built into the image.
macro_rules! acceptor {
    ($w:expr) => {{
        let built = $w.build_acceptor();
        require!(built.is_ok(), built.err().unwrap_or_default());
    }};
}

/// A service of `instances` acceptors on 127.0.0.1:PORT (fd 3), allowed by
/// the sandbox.
fn upg_acceptor_service(w: &mut World, port: u16, instances: u32) {
    w.sandbox(&format!("allow-tcp-ports: [{port}]\n"));
    w.container(
        "web",
        &format!(
            "executable: /bin/acceptor\nuser-id: {UID}\ngroup-id: {UID}\n\
             restart-timeout: 0\nkill-timeout: 2\n\
             tcp-ports: {{{port}: {{fd: 3, host: 127.0.0.1}}}}\n"
        ),
    );
    w.entry("web", instances, "");
}

// ---------------------------------------------------------------------------
// The tests.

/// Issue 5, "Done when" 1: ten upgrades in a row with 50 instances leave the
/// same 50 workloads (pids, cgroups), no restart, and the tree's pid.
#[test]
fn ten_upgrades_keep_fifty_workloads_and_the_tree_pid() {
    let mut w = world!();
    w.sleepers("sleeper", 50);
    let tree = w.start_tree();
    let before = w.wait_running(50, START);
    assert_eq!(before.tree_pid, tree);
    assert_eq!(before.upgrades, 0);
    let census0 = w.census();
    w.assert_census_matches(&census0, &before);
    let mut took = Vec::new();
    for k in 1..=10 {
        let ps = w.upgrade_to(k, 50);
        took.extend(ps.last_upgrade_ms);
        assert_eq!(ps.upgrades, k, "one SIGQUIT, one upgrade");
        assert_eq!(ps.tree_pid, tree, "upgrade {k} changed the tree's pid");
        assert_eq!(ps.pids(), before.pids(), "upgrade {k} changed a pid");
        assert!(
            ps.last_upgrade_ms
                .is_some_and(|ms| ms > 0.0 && ms < 30_000.0),
            "last_upgrade_ms: {:?}",
            ps.last_upgrade_ms
        );
        w.assert_tree_alive();
    }
    eprintln!("signal to supervising again, 50 instances (ms): {took:.2?}");
    let after = w.ps().expect("ps");
    for (name, i) in &after.inst {
        assert_eq!(i.restarts, 0, "{name} restarted");
        assert_eq!(i.hash, before.inst[name].hash, "{name}: config hash");
        assert!(i.last_exit.is_null(), "{name} exited: {}", i.last_exit);
    }
    let census = w.census();
    assert_eq!(census, census0, "the processes in the cgroups changed");
    w.assert_census_matches(&census, &after);
    // Nothing outside the cgroups either: the tree's descendants are
    // exactly the 50 knots and 50 workloads.
    let all: BTreeSet<i32> = census.values().flatten().copied().collect();
    assert_eq!(all.len(), 100);
    let desc: BTreeSet<i32> = descendants(tree).into_iter().collect();
    assert_eq!(desc, all, "the tree's descendants are not the instances");
    assert!(w.log_has("upgrade: executing"));
}

/// Issue 5, "Done when" 2: a different binary renamed over the installed
/// path takes effect on upgrade (`ps` shows its build id), with the same
/// workloads. `cairn upgrade` is the command-line way to send SIGQUIT.
#[test]
fn upgrade_to_a_different_binary_takes_effect() {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    let tree = w.start_tree();
    let before = w.wait_running(3, START);
    let id = upg_build_id(&w.exe);
    assert!(
        before.version.contains(&format!("({id})")),
        "ps version {:?} vs --version id {id}",
        before.version
    );
    let new_id: String = if id.chars().all(|c| c == 'f') {
        "e".repeat(id.len())
    } else {
        "f".repeat(id.len())
    };
    let staged = w.set.p("bin/.cairn.new");
    let n = upg_patched_copy(&w.exe, &staged, id.as_bytes(), new_id.as_bytes());
    assert!(n > 0, "build id {id} not found in the binary");
    assert_eq!(upg_build_id(&staged), new_id, "the patched copy runs");
    // Install it the way a package manager does: rename over the path.
    fs::rename(&staged, &w.exe).expect("rename over the installed path");
    let out = upg_output(Command::new(&w.cli).args(["upgrade", "-c", &w.master()]));
    assert!(
        out.status.success(),
        "cairn upgrade: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = w.wait("the new version", STEP, |p| {
        p.upgrades == 1 && p.all_running(3) && p.version.contains(&new_id)
    });
    assert_eq!(after.tree_pid, tree);
    assert_eq!(after.version, format!("0.1.0 ({new_id})"));
    assert_eq!(after.pids(), before.pids(), "workloads changed");
    assert!(after.inst.values().all(|i| i.restarts == 0));
    // The running image is the new file at the installed path.
    let exe = fs::read_link(format!("/proc/{tree}/exe")).expect("readlink exe");
    assert_eq!(exe, w.exe, "the tree runs {}", exe.display());
    w.assert_tree_alive();
    w.assert_second_tree_refused();
}

/// Issue 5, "Done when" 3: after `kill -9` of the tree, a new tree adopts
/// the same 50 workloads (no duplicates: the same processes in the same
/// cgroups, none started) and still restarts an adopted instance when its
/// workload dies.
#[test]
fn kill9_then_new_tree_adopts_the_same_fifty_and_restarts_them_later() {
    let mut w = world!();
    w.sleepers("sleeper", 50);
    w.start_tree();
    let before = w.wait_running(50, START);
    let census0 = w.census();
    w.assert_census_matches(&census0, &before);

    w.kill9_tree();
    assert_eq!(w.census(), census0, "killing the tree killed workloads");
    for (name, i) in &before.inst {
        assert!(!exited(i.pid.unwrap()), "{name}: knot died with the tree");
    }

    let tree2 = w.start_tree();
    let after = w.wait_running(50, START);
    assert_eq!(after.tree_pid, tree2);
    assert_eq!(after.pids(), before.pids(), "not the same knots/workloads");
    for (name, i) in &after.inst {
        assert_eq!(i.restarts, 0, "{name} restarted");
        assert_eq!(i.hash, before.inst[name].hash, "{name}: config hash");
    }
    let census1 = w.census();
    assert_eq!(census1, census0, "the processes in the cgroups changed");
    w.assert_census_matches(&census1, &after);
    let knots = census1
        .values()
        .flatten()
        .filter(|p| ns_pid(**p) == Some(1))
        .count();
    assert_eq!(knots, 50, "knots in the cgroups");
    assert!(
        descendants(tree2).is_empty(),
        "the new tree started processes of its own: {:?}",
        descendants(tree2)
    );

    // An adopted instance (not the new tree's child) dies later: it is
    // noticed (pidfd), its exit status is read from the knot's exit-status
    // file (SIGTERM, 143: without the file the tree could only guess
    // SIGKILL), and it is restarted.
    let victim = "box/sleeper.7";
    let (old_knot, old_wl) = (
        before.inst[victim].pid.unwrap(),
        before.inst[victim].workload.unwrap(),
    );
    kill(old_wl, libc::SIGTERM);
    let ps = w.wait("the adopted instance to restart", STEP, |p| {
        p.all_running(50)
            && p.inst[victim].workload.is_some_and(|x| x != old_wl)
            && p.inst[victim].restarts == 1
    });
    let v = &ps.inst[victim];
    assert_ne!(v.pid, Some(old_knot));
    assert_eq!(v.last_exit["signal"], 15, "last_exit {}", v.last_exit);
    assert_eq!(v.last_exit["status"], 143, "last_exit {}", v.last_exit);
    assert_eq!(v.last_exit["failure"], true, "last_exit {}", v.last_exit);
    for (name, i) in &ps.inst {
        if name != victim {
            assert_eq!((i.pid, i.workload), before.pids()[name], "{name}");
            assert_eq!(i.restarts, 0, "{name}");
        }
    }
    let census2 = w.census();
    w.assert_census_matches(&census2, &ps);
    let leaf = victim.replacen('/', ":", 1);
    let mine: BTreeSet<i32> = descendants(tree2).into_iter().collect();
    assert_eq!(
        mine, census2[&leaf],
        "the new tree runs exactly the restart"
    );
    w.assert_tree_alive();
}

/// Issue 5, "Done when" 4: an instance whose config changed while the tree
/// was being replaced restarts with the new config; the others do not.
#[test]
fn upgrade_restarts_only_the_instances_whose_config_changed() {
    let mut w = world!();
    w.sleepers("keep", 2);
    w.sleepers("change", 2);
    let tree = w.start_tree();
    let before = w.wait_running(4, START);
    // Change the container config of `change` on disk (its environ).
    w.container(
        "change",
        &format!(
            "executable: /bin/sleep\narguments: ['100000']\nuser-id: {UID}\n\
             group-id: {UID}\nrestart-timeout: 0\nkill-timeout: 2\n\
             environ: {{VERSION: '2'}}\n"
        ),
    );
    let changed = ["box/change.0", "box/change.1"];
    w.signal_tree(libc::SIGQUIT);
    let after = w.wait("the upgrade and the rolling restart", STEP, |p| {
        p.upgrades == 1
            && p.all_running(4)
            && changed.iter().all(|n| {
                p.inst[*n].workload != before.inst[*n].workload
                    && p.inst[*n].hash != before.inst[*n].hash
            })
    });
    assert_eq!(after.tree_pid, tree);
    for n in ["box/keep.0", "box/keep.1"] {
        assert_eq!(after.inst[n].pid, before.inst[n].pid, "{n} knot");
        assert_eq!(after.inst[n].workload, before.inst[n].workload, "{n}");
        assert_eq!(after.inst[n].hash, before.inst[n].hash, "{n} hash");
        assert_eq!(after.inst[n].restarts, 0, "{n} restarts");
    }
    for n in changed {
        assert_ne!(after.inst[n].pid, before.inst[n].pid, "{n} knot");
        // The new workload sees the new config.
        let wl = after.inst[n].workload.unwrap();
        let env = fs::read(format!("/proc/{wl}/environ")).expect("environ");
        assert!(
            env.split(|b| *b == 0).any(|v| v == b"VERSION=2"),
            "{n}: {:?}",
            String::from_utf8_lossy(&env)
        );
        // The old one is gone (stopped by the tree, not left running).
        assert!(
            exited(before.inst[n].workload.unwrap()),
            "{n}: old workload"
        );
    }
    let census = w.census();
    w.assert_census_matches(&census, &after);
}

/// Issue 5, "Done when" 5: a client connecting in a loop to a `tcp-ports`
/// service sees no refused or reset connection during 20 upgrades and 5
/// reloads.
#[test]
fn tcp_port_service_answers_every_connection_through_upgrades_and_reloads() {
    let mut w = world!();
    acceptor!(w);
    let port = free_port();
    upg_acceptor_service(&mut w, port, 2);
    let tree = w.start_tree();
    let before = w.wait_running(2, START);
    assert_eq!(fetch(port).as_deref(), Ok(&b"ok\n"[..]), "service answers");
    // One socket, bound by the tree, shared by both workloads at fd 3.
    let sockets = upg_sockets(tree);
    assert_eq!(sockets.len(), 1, "the tree's sockets: {sockets:?}");
    for i in before.inst.values() {
        let fd3 = upg_fd(i.workload.unwrap(), 3);
        assert!(sockets.contains(&fd3), "workload fd 3 is {fd3:?}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failures) = (0u64, Vec::<String>::new());
            while !stop.load(Ordering::Relaxed) {
                match fetch(port) {
                    Ok(b) if b == b"ok\n" => ok += 1,
                    Ok(b) => failures.push(format!("short answer {b:?}")),
                    Err(e) => failures.push(e),
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            (ok, failures)
        })
    };
    let mut upgrades = 0;
    for round in 0..20 {
        upgrades += 1;
        let ps = w.upgrade_to(upgrades, 2);
        assert_eq!(ps.tree_pid, tree);
        if round % 4 == 3 {
            let reloads = ps.reloads;
            let out = upg_output(Command::new(&w.cli).args(["reload", "-c", &w.master()]));
            assert!(out.status.success(), "cairn reload failed");
            w.wait("a reload", STEP, |p| {
                p.reloads > reloads && p.all_running(2)
            });
        }
    }
    // Let the client run a little past the last change.
    let last = fetch(port);
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = client.join().expect("client thread");
    assert!(
        failures.is_empty(),
        "{} of {} connections failed; first: {:?}",
        failures.len(),
        ok as usize + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(last.as_deref(), Ok(&b"ok\n"[..]));
    eprintln!("{ok} connections answered, none failed");
    assert!(ok >= 200, "only {ok} connections in 20 upgrades");
    let after = w.ps().expect("ps");
    assert_eq!(after.upgrades, 20);
    assert_eq!(after.pids(), before.pids(), "a workload restarted");
    assert!(after.inst.values().all(|i| i.restarts == 0));
    // The very same socket: never closed, never re-bound.
    assert_eq!(upg_sockets(tree), sockets, "the tree's sockets changed");
}

/// A listening socket is closed once no instance uses it (the entry is
/// removed and reloaded away), and bound again when it comes back.
#[test]
fn unused_socket_is_closed_and_rebound_when_needed() {
    let mut w = world!();
    acceptor!(w);
    let port = free_port();
    upg_acceptor_service(&mut w, port, 1);
    w.sleepers("other", 1);
    let tree = w.start_tree();
    w.wait_running(2, START);
    assert!(!upg_port_free(port), "nothing listens on {port}");
    w.entries.remove("web");
    w.entry("other", 1, "");
    w.signal_tree(libc::SIGHUP);
    w.wait("web to be stopped", STEP, |p| p.all_running(1));
    assert!(
        upg_sockets(tree).is_empty(),
        "the tree still holds a socket"
    );
    assert!(upg_port_free(port), "port {port} is still bound");
    upg_acceptor_service(&mut w, port, 1);
    w.signal_tree(libc::SIGHUP);
    w.wait("web to be back", STEP, |p| p.all_running(2));
    assert_eq!(fetch(port).as_deref(), Ok(&b"ok\n"[..]));
    assert_eq!(upg_sockets(tree).len(), 1);
}

/// sd_notify: READY=1 (with MAINPID) once every instance runs,
/// RELOADING=1 then READY=1 around a reload, READY=1 with the same MAINPID
/// after an upgrade.
#[test]
fn sd_notify_ready_reload_and_upgrade() {
    use std::os::unix::net::UnixDatagram;
    let mut w = world!();
    w.sleepers("sleeper", 3);
    let path = w.set.p("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(STEP)).expect("timeout");
    w.env
        .push(("NOTIFY_SOCKET".into(), path.display().to_string()));
    let tree = w.start_tree();
    let recv = || {
        let mut buf = vec![0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notify message in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let has = |m: &str, line: &str| m.lines().any(|l| l == line);
    let mainpid = format!("MAINPID={tree}");
    let m = recv();
    assert!(
        has(&m, "READY=1") && has(&m, &mainpid),
        "first message {m:?}"
    );
    let ps = w.ps().expect("ps right after READY=1");
    assert!(ps.all_running(3), "READY=1 before every instance ran");

    let out = upg_output(Command::new(&w.cli).args(["reload", "-c", &w.master()]));
    assert!(out.status.success());
    let m = recv();
    assert!(has(&m, "RELOADING=1"), "reload: {m:?}");
    assert!(
        m.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "reload: {m:?}"
    );
    let m = recv();
    assert!(has(&m, "READY=1"), "after the reload: {m:?}");

    w.signal_tree(libc::SIGQUIT);
    let t0 = Instant::now();
    loop {
        let m = recv();
        if has(&m, "READY=1") {
            assert!(has(&m, &mainpid), "after the upgrade: {m:?}");
            break;
        }
        assert!(t0.elapsed() < STEP, "no READY=1 after the upgrade");
    }
    let ps = w.wait("the upgrade", STEP, |p| p.upgrades == 1 && p.all_running(3));
    assert_eq!(ps.tree_pid, tree);
}

/// Issue 5: a systemd-activated port variable gives the workload the socket
/// at fd 3 with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID set right.
#[test]
fn systemd_activation_sets_listen_variables() {
    let mut w = world!();
    let port = free_port();
    w.sandbox(&format!("allow-tcp-ports: [{port}]\n"));
    w.container(
        "sd",
        &format!(
            "executable: /bin/sh\nuser-id: {UID}\ngroup-id: {UID}\n\
             environ: {{PATH: /bin}}\n\
             variables: {{sock: !TcpPort {{activation: systemd}}}}\n\
             volumes: {{/state: !Statedir {{}}}}\n\
             arguments:\n- -c\n\
             - 'echo \"$LISTEN_FDS $LISTEN_FDNAMES $LISTEN_PID $$\" > /state/env.tmp; \
             readlink /proc/$$/fd/3 >> /state/env.tmp; mv /state/env.tmp /state/env; \
             exec sleep 100000'\n"
        ),
    );
    w.entry("sd", 1, &format!("variables: {{sock: {port}}}"));
    w.start_tree();
    let ps = w.wait_running(1, START);
    let env_file = w.set.p("run/state/box/sd.0/state/env");
    let t0 = Instant::now();
    while !env_file.exists() {
        assert!(t0.elapsed() < STEP, "{} never appeared", env_file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = fs::read_to_string(&env_file).expect("read env");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    let f: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(f.len(), 4, "{text:?}");
    assert_eq!(f[0], "1", "LISTEN_FDS");
    assert_eq!(f[1], "sock", "LISTEN_FDNAMES");
    assert_eq!(f[2], f[3], "LISTEN_PID must be the workload's own pid");
    assert!(lines[1].starts_with("socket:["), "fd 3 is {:?}", lines[1]);
    // The workload's pid as it sees itself is its pid in the namespace.
    let wl = ps.inst["box/sd.0"].workload.expect("workload pid");
    assert_eq!(ns_pid(wl).map(|p| p.to_string()).as_deref(), Some(f[2]));
    // The socket listens (0.0.0.0:PORT): the kernel completes the
    // handshake from the backlog even though nobody accepts.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect to PORT");
}

/// systemd/cairn.service passes `systemd-analyze verify`.
#[test]
fn systemd_unit_verifies() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    let have = analyze.exists() || Path::new("/bin/systemd-analyze").exists();
    require!(
        have,
        "systemd-analyze is not installed (apt-get install systemd)"
    );
    let set = ConfigSet::new();
    let unit =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/cairn.service"))
            .expect("read systemd/cairn.service");
    let bin = cairn_bin();
    let text = unit.replace("/usr/bin/cairn", &bin.display().to_string());
    assert!(text.contains(&format!("ExecStart={} tree", bin.display())));
    assert!(text.contains(&format!("ExecReload={} reload", bin.display())));
    for key in ["Type=notify", "KillMode=process", "NotifyAccess=main"] {
        assert!(text.lines().any(|l| l == key), "unit lacks {key}");
    }
    let path = set.write("cairn.service", text);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
    // systemd-analyze exits 0 on unknown keys and bad values too (it only
    // warns, naming the file): there must be no such warning.
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cairn.service"))
        .collect();
    assert!(warnings.is_empty(), "systemd-analyze warns: {warnings:#?}");
}

/// Crash safety: a fatal signal makes the tree re-execute itself (same pid)
/// and adopt its running instances; none restarts; and it keeps
/// supervising them afterwards.
#[test]
fn fatal_signal_reexecs_the_tree_and_keeps_workloads() {
    let mut w = world!();
    w.sleepers("sleeper", 4);
    let tree = w.start_tree();
    let before = w.wait_running(4, START);
    let state = w.set.p("run/state.json");
    for sig in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
    ] {
        let crashes = w.log_count("restarted after a crash");
        // The old image rewrites state.json only on a change, and nothing
        // changes: a new state.json comes from the new image.
        fs::remove_file(&state).expect("remove state.json");
        w.signal_tree(sig);
        let ps = w.wait(&format!("recovery from signal {sig}"), STEP, |p| {
            p.all_running(4) && w.log_count("restarted after a crash") > crashes
        });
        w.assert_tree_alive();
        assert_eq!(ps.tree_pid, tree, "signal {sig}: the tree's pid changed");
        assert_eq!(ps.pids(), before.pids(), "signal {sig}: workloads changed");
        assert!(ps.inst.values().all(|i| i.restarts == 0), "signal {sig}");
        let census = w.census();
        w.assert_census_matches(&census, &ps);
    }
    w.assert_second_tree_refused();
    // Still supervising: a workload that dies now is restarted.
    let victim = "box/sleeper.2";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("a restart after the crashes", STEP, |p| {
        p.all_running(4) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    assert_eq!(ps.inst[victim].restarts, 1);
    assert_eq!(ps.tree_pid, tree);
}

// ---------------------------------------------------------------------------
// Beyond the list: the corners of adoption and hand-off.

/// Kill the tree one way or the other and make sure it comes back
/// supervising the same `n` instances. `how` is "kill9" (a new tree is
/// started) or "crash" (SIGSEGV: the tree re-executes itself).
fn upg_lose_the_tree(w: &mut World, how: &str, n: usize) -> Ps {
    let before = w.ps().expect("ps");
    match how {
        "kill9" => {
            w.kill9_tree();
            w.start_tree();
        }
        "crash" => {
            fs::remove_file(w.set.p("run/state.json")).expect("remove state.json");
            w.signal_tree(libc::SIGSEGV);
        }
        _ => unreachable!(),
    }
    let after = w.wait_running(n, START);
    assert_eq!(after.pids(), before.pids(), "{how}: instances changed");
    after
}

/// After the tree was lost (kill -9 or a crash), an instance of a service
/// whose instances share one listening socket dies: its replacement must
/// get the port again, while the other instance still holds the socket.
fn upg_shared_port_restart_after(how: &str) {
    let mut w = world!();
    acceptor!(w);
    let port = free_port();
    upg_acceptor_service(&mut w, port, 2);
    w.start_tree();
    w.wait_running(2, START);
    let before = upg_lose_the_tree(&mut w, how, 2);
    let victim = "box/web.0";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("the acceptor to be restarted", STEP, |p| {
        p.all_running(2) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    assert_eq!(ps.inst[victim].restarts, 1);
    for _ in 0..20 {
        assert_eq!(fetch(port).as_deref(), Ok(&b"ok\n"[..]));
    }
    // The new workload really listens on the same port: its fd 3 is the
    // very socket the other instance accepts on. (Stopping the other
    // instance to see who answers is not reliable: a stopped process
    // blocked in accept() still takes the wake-one wakeup.)
    let new = ps.inst[victim].workload.unwrap();
    let other = ps.inst["box/web.1"].workload.unwrap();
    let fd3 = upg_fd(new as i32, 3);
    assert!(fd3.starts_with("socket:["), "web.0 fd 3 is {fd3:?}");
    assert_eq!(
        fd3,
        upg_fd(other as i32, 3),
        "web.0 and web.1 do not share the socket"
    );
}

#[test]
fn kill9_then_a_shared_port_instance_restarts_and_listens() {
    upg_shared_port_restart_after("kill9");
}

#[test]
fn crash_then_a_shared_port_instance_restarts_and_listens() {
    upg_shared_port_restart_after("crash");
}

/// Adopted instances (watched by pidfd, not the tree's children) stay
/// watched across a later upgrade: the pidfds go through the hand-off.
#[test]
fn adopted_instances_stay_watched_across_an_upgrade() {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    w.start_tree();
    w.wait_running(3, START);
    let before = upg_lose_the_tree(&mut w, "kill9", 3);
    let ps = w.upgrade_to(1, 3);
    assert_eq!(ps.pids(), before.pids());
    let victim = "box/sleeper.1";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("the adopted instance to restart", STEP, |p| {
        p.all_running(3) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    assert_eq!(ps.inst[victim].restarts, 1);
    for n in ["box/sleeper.0", "box/sleeper.2"] {
        assert_eq!(ps.inst[n].workload, before.inst[n].workload);
    }
}

/// A config that changed while no tree ran: the new tree adopts every
/// instance, then restarts only those whose config hash differs.
#[test]
fn config_changed_while_no_tree_ran_restarts_only_that_entry() {
    let mut w = world!();
    w.sleepers("keep", 2);
    w.sleepers("change", 1);
    w.start_tree();
    let before = w.wait_running(3, START);
    w.kill9_tree();
    w.container(
        "change",
        &format!(
            "executable: /bin/sleep\narguments: ['100001']\nuser-id: {UID}\n\
             group-id: {UID}\nrestart-timeout: 0\nkill-timeout: 2\n"
        ),
    );
    w.start_tree();
    let n = "box/change.0";
    let ps = w.wait("the changed entry to restart", START, |p| {
        p.all_running(3) && p.inst[n].hash != before.inst[n].hash
    });
    assert_ne!(ps.inst[n].workload, before.inst[n].workload);
    assert!(
        exited(before.inst[n].workload.unwrap()),
        "old one still runs"
    );
    for k in ["box/keep.0", "box/keep.1"] {
        assert_eq!(ps.inst[k].workload, before.inst[k].workload, "{k}");
        assert_eq!(ps.inst[k].restarts, 0, "{k}");
    }
    let census = w.census();
    w.assert_census_matches(&census, &ps);
}

/// Make this test process a child subreaper (on) or not (off): orphans of
/// a killed tree then come to us, and we reap the ones we wait for, as
/// systemd or any init would.
fn upg_subreaper(on: bool) {
    // SAFETY: prctl(2) with integer arguments.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            libc::c_ulong::from(on),
            0,
            0,
            0,
        )
    };
    assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER");
}

/// An instance that died while no tree ran is started again, once; the
/// others are adopted; its death is reported from the knot's exit-status
/// file. The old tree's knots are reparented to this test process (a
/// subreaper while the tree dies), so the test decides: `reap` the dead
/// knot before the new tree starts (as systemd or any init would), or leave
/// it a zombie until the new tree has taken over (as under an init that
/// does not reap).
fn upg_died_while_no_tree_ran(reap: bool) {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    w.start_tree();
    let before = w.wait_running(3, START);
    upg_subreaper(true);
    w.kill9_tree();
    upg_subreaper(false);
    let victim = "box/sleeper.1";
    let knot = before.inst[victim].pid.unwrap();
    kill(before.inst[victim].workload.unwrap(), libc::SIGTERM);
    let reap_knot = || {
        let mut status = 0;
        // SAFETY: waitpid(2) for one process that is now our child.
        let r = unsafe { libc::waitpid(knot, &mut status, 0) };
        assert_eq!(
            r,
            knot,
            "reap the knot: {}",
            std::io::Error::last_os_error()
        );
    };
    if reap {
        reap_knot();
    } else {
        let t0 = Instant::now();
        while !exited(knot) {
            assert!(t0.elapsed() < STEP, "knot {knot} does not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let tree2 = w.start_tree();
    let ps = w.wait("the dead instance to run again", START, |p| {
        p.all_running(3) && p.inst[victim].workload != before.inst[victim].workload
    });
    if !reap {
        reap_knot();
    }
    for k in ["box/sleeper.0", "box/sleeper.2"] {
        assert_eq!(ps.inst[k].workload, before.inst[k].workload, "{k}");
        assert_eq!(ps.inst[k].restarts, 0, "{k}");
    }
    let census = w.census();
    w.assert_census_matches(&census, &ps);
    let leaf = victim.replacen('/', ":", 1);
    let mine: BTreeSet<i32> = descendants(tree2).into_iter().collect();
    assert_eq!(mine, census[&leaf], "the new tree started exactly one");
    let v = &ps.inst[victim];
    assert_eq!(
        v.last_exit["status"], 143,
        "{victim}: last_exit {}",
        v.last_exit
    );
    assert_eq!(
        v.last_exit["signal"], 15,
        "{victim}: last_exit {}",
        v.last_exit
    );
    assert_eq!(v.restarts, 1, "{victim}: the death counts as a restart");
}

#[test]
fn instance_that_died_while_no_tree_ran_is_started_once() {
    upg_died_while_no_tree_ran(false);
}

#[test]
fn instance_reaped_while_no_tree_ran_is_started_once_and_reported() {
    upg_died_while_no_tree_ran(true);
}

/// An upgrade whose exec fails (the installed file is not a program) leaves
/// the old image supervising, fds and all; a good binary then works.
#[test]
fn failed_exec_keeps_the_running_tree() {
    let mut w = world!();
    w.sleepers("sleeper", 2);
    let tree = w.start_tree();
    let before = w.wait_running(2, START);
    let good = w.set.p("bin/cairn.good");
    fs::rename(&w.exe, &good).expect("move the binary away");
    fs::write(&w.exe, b"this is not a program\n").expect("write junk");
    fs::set_permissions(&w.exe, fs::Permissions::from_mode(0o755)).expect("chmod");
    let failed = w.log_count("the running tree goes on");
    w.signal_tree(libc::SIGQUIT);
    let t0 = Instant::now();
    while w.log_count("the running tree goes on") == failed {
        assert!(
            t0.elapsed() < STEP,
            "no exec failure logged\n{}",
            w.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    w.assert_tree_alive();
    // Still supervising: a dead workload is restarted, reloads work.
    let victim = "box/sleeper.0";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("a restart by the old image", STEP, |p| {
        p.all_running(2) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    assert_eq!(ps.upgrades, 0);
    assert_eq!(ps.tree_pid, tree);
    fs::rename(&good, &w.exe).expect("reinstall");
    let ps2 = w.upgrade_to(1, 2);
    assert_eq!(ps2.pids(), ps.pids());
    assert_eq!(ps2.tree_pid, tree);
}

/// With cgroups off, adoption after `kill -9` relies on the knot files in
/// the state dirs alone: the same instances, none started twice, and an
/// adopted one is still restarted when it dies.
#[test]
fn kill9_without_cgroups_adopts_from_the_knot_files() {
    let mut w = world!();
    w.master_yaml("cgroup-name: null\n");
    w.sleepers("sleeper", 3);
    w.start_tree();
    let before = w.wait_running(3, START);
    w.remember(&before);
    w.kill9_tree();
    let tree2 = w.start_tree();
    let after = w.wait_running(3, START);
    assert_eq!(after.pids(), before.pids(), "not the same instances");
    assert!(after.inst.values().all(|i| i.restarts == 0));
    assert!(
        descendants(tree2).is_empty(),
        "the new tree started processes: {:?}",
        descendants(tree2)
    );
    let victim = "box/sleeper.0";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("the adopted instance to restart", STEP, |p| {
        p.all_running(3) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    w.remember(&ps);
    assert_eq!(ps.inst[victim].restarts, 1);
    let knot = fs::read_to_string(w.set.p("run/state/box/sleeper.0/knot")).expect("knot file");
    assert!(
        knot.starts_with(&format!("{} ", ps.inst[victim].pid.unwrap())),
        "knot file {knot:?}"
    );
}

/// Knots (pid-namespace inits) in each leaf of one cgroup hierarchy; a
/// light sample to take while things change.
fn upg_knots_per_leaf(cgroup: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for root in cgroup_root_dirs(cgroup) {
        let Ok(rd) = fs::read_dir(&root) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let knots = cgroup_procs(&e.path())
                    .into_iter()
                    .filter(|p| ns_pid(*p) == Some(1))
                    .count();
                out.insert(e.file_name().to_string_lossy().into_owned(), knots);
            }
        }
        break;
    }
    out
}

/// An upgrade in the middle of a rolling restart (one instance stopping,
/// its replacement pending, the next one waiting its turn) finishes the
/// rollout in the new image: every instance ends up on the new config,
/// replaced once, never two knots for one instance.
#[test]
fn upgrade_during_a_rolling_restart_finishes_it() {
    let mut w = world!();
    let slow = |v: u32| {
        format!(
            "executable: /bin/sh\narguments: ['-c', \"trap '' TERM; exec /bin/sleep 100000\"]\n\
             user-id: {UID}\ngroup-id: {UID}\nrestart-timeout: 0\nkill-timeout: 1.5\n\
             environ: {{V: '{v}'}}\n"
        )
    };
    w.container("slow", &slow(1));
    w.entry("slow", 2, "");
    let tree = w.start_tree();
    let before = w.wait_running(2, START);
    w.container("slow", &slow(2));
    w.signal_tree(libc::SIGHUP);
    w.wait("a replacement under way", STEP, |p| {
        p.inst.values().any(|i| i.state == "stopping")
    });
    w.signal_tree(libc::SIGQUIT);
    let mut most = 0;
    let after = w.wait("the rollout to finish in the new image", STEP, |p| {
        for n in upg_knots_per_leaf(&w.cgroup.name).into_values() {
            most = most.max(n);
        }
        p.upgrades == 1
            && p.all_running(2)
            && p.inst
                .iter()
                .all(|(n, i)| i.workload != before.inst[n].workload)
    });
    assert!(most <= 1, "two knots in one instance cgroup");
    assert_eq!(after.tree_pid, tree);
    for (n, i) in &after.inst {
        let env = fs::read(format!("/proc/{}/environ", i.workload.unwrap())).expect("environ");
        assert!(
            env.split(|b| *b == 0).any(|v| v == b"V=2"),
            "{n}: old config"
        );
        assert!(
            exited(before.inst[n].pid.unwrap()),
            "{n}: old knot still there"
        );
    }
    let census = w.census();
    w.assert_census_matches(&census, &after);
}

/// fds of `pid` (3 and up) that are not close-on-exec, with their targets.
fn upg_inheritable_fds(pid: i32) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return out;
    };
    for e in rd.flatten() {
        let fd: i32 = e.file_name().to_string_lossy().parse().unwrap_or(-1);
        if fd < 3 {
            continue;
        }
        let info = fs::read_to_string(e.path()).unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
            .unwrap_or(0);
        if flags & i64::from(libc::O_CLOEXEC) == 0 {
            let target = fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            out.push(format!("{fd} -> {target}"));
        }
    }
    out
}

/// Invariant 4 holds across an upgrade: the fds the old image kept for
/// the new one (pid file lock, pidfds, ready pipes, listening sockets) are
/// close-on-exec again once the new image owns them. (Whatever the tree
/// inherited from this test harness is left out of the comparison.)
#[test]
fn tree_fds_are_close_on_exec_after_an_upgrade() {
    let mut w = world!();
    acceptor!(w);
    let port = free_port();
    upg_acceptor_service(&mut w, port, 1);
    w.sleepers("sleeper", 1);
    w.start_tree();
    w.wait_running(2, START);
    // Kill -9 and adopt, so the tree also holds pidfds.
    upg_lose_the_tree(&mut w, "kill9", 2);
    let tree = w.tree_pid();
    // Something binds the port again once the adopted instance restarts.
    let inherited = upg_inheritable_fds(tree);
    let victim = "box/web.0";
    let old = w.ps().expect("ps").inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    w.wait("web to restart", STEP, |p| {
        p.all_running(2) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    assert_eq!(upg_inheritable_fds(tree), inherited, "before the upgrade");
    assert_eq!(upg_sockets(tree).len(), 1, "the tree holds the socket");
    w.upgrade_to(1, 2);
    assert_eq!(
        upg_inheritable_fds(tree),
        inherited,
        "fds left inheritable by the upgrade"
    );
}

/// A crash after an upgrade recovers just like a crash before one (the
/// crash path must not trip over anything the upgrade left behind, such
/// as the pid file lock).
#[test]
fn crash_after_an_upgrade_still_recovers() {
    let mut w = world!();
    w.sleepers("sleeper", 2);
    let tree = w.start_tree();
    let before = w.wait_running(2, START);
    w.upgrade_to(1, 2);
    fs::remove_file(w.set.p("run/state.json")).expect("remove state.json");
    let crashes = w.log_count("restarted after a crash");
    w.signal_tree(libc::SIGSEGV);
    let ps = w.wait("recovery after the crash", STEP, |p| {
        p.all_running(2) && w.log_count("restarted after a crash") > crashes
    });
    w.assert_tree_alive();
    assert_eq!(ps.tree_pid, tree);
    assert_eq!(ps.pids(), before.pids());
    w.assert_second_tree_refused();
}

/// The hand-off is JSON whose only "version" is its field names. A new
/// binary that cannot read the old image's hand-off (here: a copy whose
/// field `started_unix_ms` is spelled differently) must fall back to
/// recovery, adopting the same instances, instead of giving up.
#[test]
fn unreadable_hand_off_falls_back_to_adoption() {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    let tree = w.start_tree();
    let before = w.wait_running(3, START);
    let staged = w.set.p("bin/.cairn.new");
    let n = upg_patched_copy(&w.exe, &staged, b"started_unix_ms", b"started_unix_mz");
    assert!(n > 0, "hand-off field name not found in the binary");
    fs::rename(&staged, &w.exe).expect("rename over the installed path");
    fs::remove_file(w.set.p("run/state.json")).expect("remove state.json");
    w.signal_tree(libc::SIGQUIT);
    let ps = w.wait("the new image to supervise again", STEP, |p| {
        p.all_running(3) && w.log_has("recovering from the cgroups")
    });
    w.assert_tree_alive();
    assert_eq!(ps.tree_pid, tree);
    assert_eq!(ps.pids(), before.pids(), "instances changed");
    assert!(ps.inst.values().all(|i| i.restarts == 0));
    let census = w.census();
    w.assert_census_matches(&census, &ps);
    w.assert_second_tree_refused();
}

/// Build tests/helpers/holdknot.c (a ptrace helper that holds the next
/// knot a tree clones) into the test's bin dir.
fn upg_holdknot(w: &World) -> Result<PathBuf, String> {
    let bin = w.set.p("bin/holdknot");
    common::build_helper("holdknot", &[], &bin)?;
    Ok(bin)
}

/// The next line holdknot prints, within `STEP`.
fn upg_line(lines: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    lines
        .recv_timeout(STEP)
        .unwrap_or_else(|_| panic!("holdknot: no `{what}` line"))
}

/// Issue 11, item 1: a knot that the tree has cloned but that no new tree
/// could find yet (no `knot` file, no cgroup leaf) when the tree is killed
/// must never run. The knot of a new instance is held right after its
/// clone (ptrace, tests/helpers/holdknot.c), the tree is killed with -9, a
/// new tree starts (and, finding nothing, starts that instance itself),
/// and then the held knot is let go. Before the fix it went on to set up a
/// second container of the same instance: two knots and two workloads in
/// one cgroup leaf, with `ps` showing nothing wrong. Now it ends at once
/// (the tree that started it is gone), and every leaf holds exactly the
/// knot and workload `ps` names.
#[test]
fn a_knot_that_lost_its_tree_before_it_was_findable_never_runs() {
    use std::io::{BufRead, BufReader, Write};
    let mut w = world!();
    let holdknot = upg_holdknot(&w);
    require!(holdknot.is_ok(), holdknot.clone().err().unwrap_or_default());
    w.sleepers("sleeper", 1);
    w.start_tree();
    w.wait_running(1, START);
    let mut holder = Command::new(holdknot.expect("checked above"))
        .arg(w.tree_pid().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start holdknot");
    let (tx, lines) = std::sync::mpsc::channel();
    let out = holder.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    assert_eq!(upg_line(&lines, "ready"), "ready");
    // A second instance: the tree clones its knot, which is held.
    w.sleepers("sleeper", 2);
    let out = upg_output(Command::new(&w.cli).args(["reload", "-c", &w.master()]));
    assert!(out.status.success(), "reload failed");
    let held: i32 = upg_line(&lines, "held PID")
        .strip_prefix("held ")
        .and_then(|p| p.parse().ok())
        .expect("held PID");
    let held_since = upg_start_time(held).expect("the held knot");
    w.strays.push((held, held_since));
    assert_eq!(ns_pid(held), Some(1), "held {held} is not a knot");

    w.kill9_tree();
    w.start_tree();
    let ps = w.wait_running(2, START);
    // Let the orphaned knot go, and give it time to build a container.
    let mut stdin = holder.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("tell holdknot");
    let said = upg_line(&lines, "released");
    assert!(said == "released" || said == "gone", "holdknot: {said}");
    let _ = holder.wait();
    let gone = || upg_start_time(held) != Some(held_since) || proc_state(held) == Some('Z');
    let t0 = Instant::now();
    while !gone() && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Exactly the knot and workload `ps` names in each leaf: a knot that
    // went on would show here as a second knot and workload.
    let after = w.wait_running(2, STEP);
    assert_eq!(after.pids(), ps.pids(), "instances changed");
    let census = w.census();
    w.assert_census_matches(&census, &after);
    assert!(gone(), "the orphaned knot {held} still runs");
    assert!(
        w.log_has("the tree that started this knot is gone"),
        "{}",
        w.log_tail(30)
    );
}

/// The state letter of /proc/PID/stat (`Z` for a zombie), if it exists.
fn proc_state(pid: i32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].trim_start().chars().next()
}

/// Issue 11, item 4: an adopted instance keeps the stop policy its config
/// gave it, also when no config names it any more. A workload that drains
/// for 7 s on SIGTERM, with `kill-timeout: 20`, runs; the tree is killed
/// with -9 and its entry removed; the new tree adopts the instance and
/// stops it. Before the fix the adopted instance had the default
/// kill-timeout (5 s) and was killed mid-drain; now it drains and exits.
#[test]
fn an_adopted_instance_is_stopped_with_its_own_kill_timeout() {
    let mut w = world!();
    w.container(
        "drainer",
        &format!(
            "executable: /bin/sh\narguments: [-c, \"trap 'sleep 7; echo drained; exit 0' TERM; \
             echo up; sleep 100000 & wait\"]\nuser-id: {UID}\ngroup-id: {UID}\n\
             kill-timeout: 20\n"
        ),
    );
    w.entry("drainer", 1, "");
    w.start_tree();
    let before = w.wait_running(1, START);
    w.remember(&before);
    w.kill9_tree();
    w.entries.clear();
    w.set.write("processes/box.yaml", "{}\n");
    let t0 = Instant::now();
    let tree = w.start_tree();
    w.wait("the adopted instance stopped", STEP, |p| {
        p.tree_pid == tree && p.inst.is_empty()
    });
    let log = fs::read_to_string(w.set.p("log/stdio/box.log")).unwrap_or_default();
    assert!(
        log.contains("drained"),
        "killed before it drained (after {:?}); stdio log:\n{log}\n{}",
        t0.elapsed(),
        w.log_tail(30)
    );
}

/// A hand-off this cairn cannot read (a newer cairn's, after a downgrade)
/// is refused whole: the tree adopts the running instances from the
/// cgroups and state dirs, as after a kill -9, instead of restoring what it
/// half understands. (Before hand-offs had versions, this one was read as
/// far as its keys went: the tree then took fd 9, long closed, for its pid
/// file lock, and exited, leaving every workload unsupervised.)
#[test]
fn a_hand_off_of_an_unknown_version_falls_back_to_adoption() {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    w.start_tree();
    let before = w.wait_running(3, START);
    let census0 = w.census();
    w.kill9_tree();
    let forged = w.set.p("handoff.json");
    fs::write(
        &forged,
        "{\"version\":99,\"lock_fd\":9,\"started_unix_ms\":0,\"upgrades\":1,\
         \"reloads\":0,\"began_ns\":0,\"follow\":0,\"sockets\":[],\"counters\":[],\
         \"unknown_children\":0,\"shutting_down\":false,\"instances_by_sandbox\":{}}\n",
    )
    .expect("write the hand-off");
    w.forged_handoff = Some(forged);
    let tree2 = w.start_tree();
    let after = w.wait_running(3, START);
    assert_eq!(after.tree_pid, tree2);
    assert_eq!(after.pids(), before.pids(), "not the same knots/workloads");
    for (name, i) in &after.inst {
        assert_eq!(i.restarts, 0, "{name} restarted");
    }
    assert_eq!(w.census(), census0, "the processes in the cgroups changed");
    assert!(
        w.log_has("hand-off: version 99 is not one this cairn reads"),
        "{}",
        w.log_tail(30)
    );
    assert!(w.log_has("recovering from the cgroups and state dirs instead"));
}
