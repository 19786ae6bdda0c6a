//! cairn's own files on the host (issue 10, item 2): the runtime, state,
//! mount and log dirs and everything cairn creates in them are root's
//! alone, are never reached through a symlink, and what the tree reads
//! back from them (adoption after `kill -9`, exit records) counts only
//! when nobody else could have written it.
//!
//! The attacks are real: an ordinary local user (uid 65534, made with
//! `setpriv --reuid=65534 --regid=65534 --clear-groups`) tries what it
//! could against a running tree. The temp root is made 0755, like
//! `/var/log` or `/run`, so that user can reach cairn's dirs at all. Where
//! cairn's refusals stand behind the modes (a symlink or a forged file
//! that only root could have planted), root plants them and the test
//! checks cairn does not follow or believe them.
//!
//! Needs root, Debian's busybox-static and setpriv; skips otherwise
//! (fails under `CI=true`).

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{
    CgroupGuard, ConfigSet, cairn, cairn_bin, cgroup_root_dirs, container_prereqs,
    make_busybox_image, output_within, stderr,
};

const UID: u32 = 1000;
const GID: u32 = 1000;
/// The attacker: an ordinary local user.
const NOBODY: u32 = 65534;
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

macro_rules! fixture {
    () => {{
        let ready = container_prereqs();
        require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
        require!(
            Command::new("setpriv")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "no setpriv(1) (util-linux)"
        );
        Fx::new(&ready.expect("checked above"))
    }};
}

/// One test's world: master.yaml (runtime dir `run`, logs in `log`),
/// sandbox `box` with image `bb`, and once started, the tree.
struct Fx {
    tree: Option<Child>,
    cgroup: CgroupGuard,
    set: ConfigSet,
}

impl Fx {
    fn new(busybox: &Path) -> Fx {
        let set = ConfigSet::new();
        // Like /var/log or /run: anyone may look in (tempfile makes 0700).
        fs::set_permissions(set.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let cgroup = CgroupGuard::new();
        make_busybox_image(busybox, &set.p("images/bb"));
        let fx = Fx {
            tree: None,
            cgroup,
            set,
        };
        fx.master("");
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

    fn master(&self, extra: &str) {
        self.set
            .write_master(&format!("cgroup-name: {}\n{extra}", self.cgroup.name));
    }

    /// One Daemon `web` (one instance) running `sh -c SCRIPT` as 1000:1000.
    fn web(&self, script: &str, extra: &str) {
        self.set.write(
            "images/bb/config/web.yaml",
            format!(
                "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sh\n\
                 arguments: [-c, {}]\nenviron: {{PATH: /bin}}\nrestart-timeout: 0.2\n\
                 kill-timeout: 1\n{extra}",
                serde_json::to_string(script).expect("string")
            ),
        );
        self.set.write(
            "processes/box.yaml",
            "web:\n  image: bb\n  config: /config/web.yaml\n  instances: 1\n",
        );
    }

    fn start(&mut self) {
        self.start_with(&["--log-stderr"]);
    }

    /// Start `cairn tree` with `args` (stderr to `tree.log`) and wait for
    /// its first state.
    fn start_with(&mut self, args: &[&str]) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.set.p("tree.log"))
            .expect("tree.log");
        let child = Command::new(cairn_bin())
            .args(["tree", "-c", &self.set.master()])
            .args(args)
            .args(["--log-level", "debug"])
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the tree");
        self.tree = Some(child);
        self.wait_ps("the tree's first state.json", |_| true);
    }

    fn tree_pid(&self) -> i32 {
        self.tree.as_ref().expect("started").id() as i32
    }

    fn log(&self) -> String {
        fs::read_to_string(self.set.p("tree.log")).unwrap_or_default()
    }

    fn try_ps(&self) -> Option<Value> {
        let out = cairn(&["ps", "-c", &self.set.master(), "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    fn wait_ps(&self, what: &str, mut cond: impl FnMut(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(ps) = self.try_ps()
                && cond(&ps)
            {
                return ps;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; tree log:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// `web.0` running; returns (restarts, workload pid).
    fn wait_web(&self, min_restarts: u64) -> (u64, i32) {
        let ps = self.wait_ps(&format!("web.0 running, {min_restarts} restarts"), |ps| {
            web(ps).is_some_and(|i| {
                i["state"] == "running"
                    && i["workload_pid"].is_i64()
                    && i["restarts"].as_u64() >= Some(min_restarts)
            })
        });
        let i = web(&ps).expect("listed");
        (
            i["restarts"].as_u64().expect("restarts"),
            i["workload_pid"].as_i64().expect("pid") as i32,
        )
    }

    /// Kill the workload of web.0 and wait for its replacement.
    fn restart_web(&self) {
        let (n, pid) = self.wait_web(0);
        kill(pid, libc::SIGKILL);
        self.wait_web(n + 1);
    }

    fn stop(&mut self, sig: i32) -> ExitStatus {
        kill(self.tree_pid(), sig);
        let mut child = self.tree.take().expect("started");
        wait_child(&mut child, WAIT)
            .unwrap_or_else(|| panic!("the tree did not exit; log:\n{}", self.log()))
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        if let Some(mut child) = self.tree.take() {
            if matches!(child.try_wait(), Ok(None)) {
                kill(child.id() as i32, libc::SIGTERM);
                if wait_child(&mut child, Duration::from_secs(15)).is_none() {
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
    }
}

fn web(ps: &Value) -> Option<&Value> {
    ps["instances"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == "box/web.0")
}

fn kill(pid: i32, sig: i32) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    // SAFETY: kill(2) of a pid this test started or read from `ps`.
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

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().chars().next()? != 'Z'))
        .unwrap_or(false)
}

/// Run `sh -c SCRIPT` as the local user 65534 (no groups).
fn as_nobody(script: &str) -> Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("setpriv")
}

/// A root-only dir `secret/` holding the root-only file `crontab`: what
/// an attacker would love root to write into.
fn secret(fx: &Fx) -> (PathBuf, PathBuf) {
    let dir = fx.set.p("secret");
    fs::create_dir(&dir).expect("mkdir secret");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    let file = dir.join("crontab");
    fs::write(&file, "original\n").expect("write");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    (dir, file)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// (a) The stdio log.

/// Issue 10, item 2 (a): a local user replaced a sandbox's stdio log with
/// a symlink to a root-only file, and at the next start root appended the
/// workload's output to it.
#[test]
fn local_user_cannot_redirect_the_stdio_log() {
    let mut fx = fixture!();
    let (_, crontab) = secret(&fx);
    fx.web("echo '* * * * * root PWNED'; exec sleep 1000", "");
    fx.start();
    fx.wait_web(0);
    let log = fx.set.p("log/stdio/box.log");
    let attack = as_nobody(&format!("ln -sf {} {}", crontab.display(), log.display()));
    // The next start of the container opens the log again.
    fx.restart_web();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fs::read_to_string(&crontab).expect("crontab"),
        "original\n",
        "root wrote the workload's output into a root-only file (attacker: {:?})",
        attack.status
    );
    assert!(!attack.status.success(), "the local user replaced the log");
    let meta = fs::symlink_metadata(&log).expect("the log");
    assert!(meta.is_file(), "{} is not a regular file", log.display());
    assert!(
        fs::read_to_string(&log).expect("log").contains("PWNED"),
        "the workload's output went elsewhere"
    );
}

/// Even a symlink only root could have planted at the log's name is not
/// followed (O_NOFOLLOW): the instance does not start, the reason names
/// the log, and the link's target is untouched.
#[test]
fn symlink_at_the_stdio_log_is_not_followed() {
    let mut fx = fixture!();
    let (_, crontab) = secret(&fx);
    fx.web("echo '* * * * * root PWNED'; exec sleep 1000", "");
    fs::create_dir_all(fx.set.p("log/stdio")).expect("mkdir");
    symlink(&crontab, fx.set.p("log/stdio/box.log")).expect("symlink");
    fx.start();
    let ps = fx.wait_ps("web.0 to fail its start", |ps| {
        web(ps).is_some_and(|i| i["last_exit"]["error"].is_string())
    });
    let error = web(&ps).expect("listed")["last_exit"]["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(
        error.contains("log/stdio/box.log") && error.contains("symlink"),
        "{error}"
    );
    assert_eq!(fs::read_to_string(&crontab).expect("crontab"), "original\n");
}

// ---------------------------------------------------------------------------
// (b) Adoption.

/// An unrelated process the attacker would like root to kill: the init of
/// a pid namespace of its own (as a knot is), started by us as root.
fn bystander() -> (Child, i32, u64) {
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare sleep");
    let start = Instant::now();
    let pid = loop {
        let kids = fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        if let Some(p) = kids.split_whitespace().next().and_then(|p| p.parse().ok()) {
            break p;
        }
        assert!(start.elapsed() < WAIT, "no sleep under unshare");
        std::thread::sleep(POLL);
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let ticks = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().nth(19))
        .and_then(|t| t.parse().ok())
        .expect("start time");
    (child, pid, ticks)
}

/// kill -9 the tree, start a new one, let it settle and stop it with TERM:
/// the bystander must have outlived all of it, never adopted.
fn recover_and_shut_down(fx: &mut Fx, sleeper: i32, what: &str) {
    assert_eq!(fx.stop(libc::SIGKILL).code(), None);
    fx.start();
    fx.wait_web(0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(fx.stop(libc::SIGTERM).success(), "{}", fx.log());
    let log = fx.log();
    assert!(
        alive(sleeper) && !log.contains(&format!("adopted running knot {sleeper}")),
        "{what}: the tree adopted (and killed) unrelated process {sleeper}; log:\n{log}"
    );
}

/// Issue 10, item 2 (b): a local user forged an instance's `knot` file,
/// and the next tree after a `kill -9` adopted an unrelated process and
/// killed it at shutdown.
#[test]
fn local_user_cannot_forge_a_knot_file() {
    let mut fx = fixture!();
    fx.web("exec sleep 1000", "");
    fx.start();
    fx.wait_web(0);
    let (mut child, pid, ticks) = bystander();
    let ghost = fx.set.p("run/state/box/ghost.0");
    let attack = as_nobody(&format!(
        "mkdir {g} && echo '{pid} {ticks} x' > {g}/knot",
        g = ghost.display()
    ));
    recover_and_shut_down(&mut fx, pid, "forged by a local user");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !attack.status.success(),
        "the local user could write into the state dir"
    );
}

/// The knot files the tree believes are regular files owned by root that
/// nobody else can write, in instance dirs of the same kind, never reached
/// through a symlink: a knot file owned by another user, one anyone can
/// write, one in a dir another user owns, or reached through a symlinked
/// instance dir is ignored (all planted by root here, as only root could
/// now).
#[test]
fn knot_files_count_only_when_root_alone_could_write_them() {
    let mut fx = fixture!();
    fx.web("exec sleep 1000", "");
    fx.start();
    fx.wait_web(0);
    let (mut child, pid, ticks) = bystander();
    let state = fx.set.p("run/state/box");
    let plant = |leaf: &str, file_owner: u32, file_mode: u32, dir_owner: u32| {
        let d = state.join(leaf);
        fs::create_dir(&d).expect("mkdir");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).expect("chmod");
        let k = d.join("knot");
        fs::write(&k, format!("{pid} {ticks} x\n")).expect("write");
        fs::set_permissions(&k, fs::Permissions::from_mode(file_mode)).expect("chmod");
        common::chown(&k, file_owner, file_owner);
        common::chown(&d, dir_owner, dir_owner);
    };
    plant("other.0", NOBODY, 0o644, 0);
    plant("anyone.0", 0, 0o666, 0);
    plant("dirowner.0", 0, 0o644, NOBODY);
    let elsewhere = fx.set.p("elsewhere");
    fs::create_dir(&elsewhere).expect("mkdir");
    fs::write(elsewhere.join("knot"), format!("{pid} {ticks} x\n")).expect("write");
    symlink(&elsewhere, state.join("linked.0")).expect("symlink");
    recover_and_shut_down(&mut fx, pid, "planted");
    let _ = child.kill();
    let _ = child.wait();
    for leaf in ["other.0", "anyone.0", "dirowner.0", "linked.0"] {
        assert!(
            fx.log().contains(&format!("box/{leaf}")),
            "nothing logged about {leaf}:\n{}",
            fx.log()
        );
    }
}

// ---------------------------------------------------------------------------
// (c) The instance dir.

/// Issue 10, item 2 (c): a symlinked instance dir made root write `knot`
/// and `exit-status` into a root-only dir and mount it read-write into a
/// container.
#[test]
fn local_user_cannot_redirect_an_instance_dir() {
    let mut fx = fixture!();
    let (secret_dir, _) = secret(&fx);
    fx.web(
        "echo pwned > /state/marker; exec sleep 1000",
        "volumes:\n  /state: !Statedir {path: /, mode: 0o755, user: 1000, group: 1000}\n",
    );
    fx.start();
    fx.wait_web(0);
    let inst = fx.set.p("run/state/box/web.0");
    let attack = as_nobody(&format!(
        "mv {i} {i}.old && ln -s {s} {i}",
        i = inst.display(),
        s = secret_dir.display()
    ));
    fx.restart_web();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        listing(&secret_dir),
        vec!["crontab".to_string()],
        "root wrote into (and mounted) a root-only dir (attacker: {:?})",
        attack.status
    );
    assert!(
        !attack.status.success(),
        "the local user moved the instance dir"
    );
}

/// A symlink at an instance dir's name (which only root could plant now)
/// is not followed: the instance does not start, the log says why, and
/// nothing is written into or mounted from the link's target.
#[test]
fn symlink_at_an_instance_dir_is_not_followed() {
    let mut fx = fixture!();
    let (secret_dir, _) = secret(&fx);
    fx.web(
        "echo pwned > /state/marker; exec sleep 1000",
        "volumes:\n  /state: !Statedir {path: /, mode: 0o755, user: 1000, group: 1000}\n",
    );
    fs::create_dir_all(fx.set.p("run/state/box")).expect("mkdir");
    symlink(&secret_dir, fx.set.p("run/state/box/web.0")).expect("symlink");
    fx.start();
    let start = Instant::now();
    while !fx.log().contains("run/state/box/web.0") {
        assert!(start.elapsed() < WAIT, "no error naming the instance dir");
        std::thread::sleep(POLL);
    }
    let ps = fx.try_ps().expect("ps");
    assert_ne!(web(&ps).map(|i| &i["state"]), Some(&Value::from("running")));
    assert_eq!(listing(&secret_dir), vec!["crontab".to_string()]);
}

// ---------------------------------------------------------------------------
// (d) Modes and owners.

/// Every dir and file `dir` holds: (path, metadata), symlinks not followed.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) {
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        let meta = fs::symlink_metadata(e.path()).expect("lstat");
        let is_dir = meta.is_dir();
        out.push((e.path(), meta));
        if is_dir {
            walk(&e.path(), out);
        }
    }
}

/// Everything cairn made under the test's runtime and log dirs (state and
/// mount dirs included), and its cgroup dirs, is owned by root and
/// writable by nobody else; nothing there is a symlink.
#[test]
fn everything_cairn_creates_is_root_owned_and_not_writable_by_others() {
    let mut fx = fixture!();
    fx.web("echo hello; exec sleep 1000", "");
    // Not --log-stderr: the tree's own log file is one of cairn's files.
    fx.start_with(&[]);
    fx.wait_web(0);
    fx.restart_web();
    // Written while it runs: knot, workload.pid, state.json,
    // metrics.prom, every log; and a SIGHUP reopens the logs.
    kill(fx.tree_pid(), libc::SIGHUP);
    fx.wait_ps("the reload", |ps| ps["tree"]["reloads"].as_u64() >= Some(2));
    let mut seen = Vec::new();
    for d in ["run", "log"] {
        let meta = fs::metadata(fx.set.p(d)).expect("dir");
        seen.push((fx.set.p(d), meta));
        walk(&fx.set.p(d), &mut seen);
    }
    let mut cgroups = 0;
    for root in cgroup_root_dirs(&fx.cgroup.name) {
        if let Ok(meta) = fs::metadata(&root) {
            seen.push((root.clone(), meta));
            for e in fs::read_dir(&root).expect("read_dir").flatten() {
                let meta = fs::symlink_metadata(e.path()).expect("lstat");
                if meta.is_dir() {
                    cgroups += 1;
                    seen.push((e.path(), meta));
                }
            }
        }
    }
    assert!(cgroups > 0, "no cgroup leaf seen");
    let names: Vec<String> = seen.iter().map(|(p, _)| p.display().to_string()).collect();
    for want in [
        "run/tree.pid",
        "run/state.json",
        "run/metrics.prom",
        "run/state/box/web.0/knot",
        "run/state/box/web.0/workload.pid",
        "run/state/box/web.0/state",
        "run/mnt",
        "log/master.log",
        "log/box.log",
        "log/stdio/box.log",
        "log/config/box.log",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(want)),
            "{want} missing: {names:#?}"
        );
    }
    let bad: Vec<String> = seen
        .iter()
        .filter(|(_, m)| m.uid() != 0 || m.mode() & 0o022 != 0 || m.file_type().is_symlink())
        .map(|(p, m)| format!("{} uid {} mode {:o}", p.display(), m.uid(), m.mode()))
        .collect();
    assert!(bad.is_empty(), "not root's alone: {bad:#?}");
}

// ---------------------------------------------------------------------------
// (e) Refusals.

/// `cairn tree` on `master.yaml` of `fx`: its output, bounded in time.
fn tree_once(fx: &Fx) -> Output {
    output_within(
        Command::new(cairn_bin())
            .args(["tree", "-c", &fx.set.master(), "--log-stderr"])
            .env_remove("RUST_BACKTRACE"),
        None,
        Duration::from_secs(10),
    )
}

fn assert_refused(o: &Output, path: &Path, why: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}:", path.display())) && err.contains(why),
        "the message does not name {} and {why:?}: {err}",
        path.display()
    );
}

/// Issue 10, item 2: cairn refuses (exit 1, nothing started, the message
/// names the path and what is wrong) a runtime dir anyone may write to, or
/// one another user owns; the same for log dirs, for an ancestor that
/// another user can write to (a sticky one like /tmp is fine), and in
/// `cairn cmd`; `cairn check` reports it and `cairn upgrade` refuses.
#[test]
fn unsafe_runtime_and_log_dirs_are_refused() {
    let fx = fixture!();
    fx.web("exec sleep 1000", "");
    let run = fx.set.p("run");
    fs::create_dir(&run).expect("mkdir");

    fs::set_permissions(&run, fs::Permissions::from_mode(0o777)).expect("chmod");
    let o = tree_once(&fx);
    assert_refused(&o, &run, "writable by group and others (mode 0777)");
    assert!(!run.join("tree.pid").exists() && !run.join("state").exists());
    let o = cairn(&["check", "-c", &fx.set.master()]);
    assert_refused(&o, &run, "writable by group and others");
    // An upgrade would exec a tree that refuses: not even asked for.
    let o = cairn(&["upgrade", "-c", &fx.set.master()]);
    assert_refused(&o, &run, "writable by group and others");

    fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).expect("chmod");
    common::chown(&run, NOBODY, NOBODY);
    assert_refused(&tree_once(&fx), &run, "owned by uid 65534, not root");
    common::chown(&run, 0, 0);

    // A log dir.
    let log = fx.set.p("log");
    fs::create_dir(&log).expect("mkdir");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o775)).expect("chmod");
    assert_refused(&tree_once(&fx), &log, "writable by group (mode 0775)");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o755)).expect("chmod");

    // An ancestor another user could rename things in.
    let parent = fx.set.p("shared");
    fs::create_dir(&parent).expect("mkdir");
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).expect("chmod");
    fx.master(&format!("state-dir: {}\n", parent.join("state").display()));
    assert_refused(&tree_once(&fx), &parent, "writable by group and others");
    // `cairn cmd` creates state dirs too.
    fx.set.write(
        "images/bb/config/job.yaml",
        format!("kind: Command\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/true\n"),
    );
    fx.set.write(
        "processes/box.yaml",
        "job:\n  kind: Command\n  image: bb\n  config: /config/job.yaml\n",
    );
    let o = output_within(
        Command::new(cairn_bin()).args(["cmd", "-c", &fx.set.master(), "box", "job"]),
        None,
        Duration::from_secs(10),
    );
    assert_refused(&o, &parent, "writable by group and others");
    assert!(!parent.join("state").exists());
    // Sticky (like /tmp, an ancestor of every test dir): fine.
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o1777)).expect("chmod");
    let o = output_within(
        Command::new(cairn_bin()).args(["cmd", "-c", &fx.set.master(), "box", "job"]),
        None,
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
