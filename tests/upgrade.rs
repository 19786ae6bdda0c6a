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
//!
//! This file holds the world and the helpers the tests share; the tests
//! are in tests/upgrade/, one file per concern.

mod common;
#[path = "upgrade/ps.rs"]
mod ps;

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

use ps::Ps;

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

/// A TCP port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
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

#[path = "upgrade/hand_off.rs"]
mod hand_off;
#[path = "upgrade/in_place.rs"]
mod in_place;
#[path = "upgrade/package.rs"]
mod package;
#[path = "upgrade/probes.rs"]
mod probes;
#[path = "upgrade/recovery.rs"]
mod recovery;
#[path = "upgrade/sockets.rs"]
mod sockets;
#[path = "upgrade/systemd.rs"]
mod systemd;
