//! The container, end to end: `cairn cmd` runs a probe (a busybox shell
//! script) inside a real container and the probe reports what it sees from
//! the inside: ids, capabilities, mounts, processes, fds, environment,
//! limits. Negative tests check that hostile images and configs are refused
//! before anything runs, and that nothing is mounted on the host.
//!
//! Needs root and Debian's busybox-static; skips otherwise (fails under
//! `CI=true`). Every test has its own temp dir (configs, image, runtime,
//! logs, volumes) and its own cgroup root, removed when the test ends.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    CgroupGuard, ConfigSet, cairn_bin, cgroup_leaves, chown, container_prereqs, descendants,
    make_busybox_image, open_pty, output_within, stderr, stdout, wait_output_within,
};

/// The ids probes run as (distinct, so a swap of uid and gid shows).
const UID: u32 = 1234;
const GID: u32 = 1235;
/// Printed by probes first thing: its absence proves nothing ran.
const STARTED: &str = "PROBE-STARTED";
/// Longest a single `cairn cmd` may take before the test gives up on it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Skip (or fail under CI) unless we are root with a static busybox;
/// otherwise build a fresh fixture.
macro_rules! fixture {
    () => {{
        let ready = container_prereqs();
        require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
        Fixture::new(&ready.expect("checked above"))
    }};
}

/// One test's world: `master.yaml`, sandbox `box`, its process config, a
/// busybox image `bb`, host dirs for volumes, and a unique cgroup root.
struct Fixture {
    set: ConfigSet,
    cgroup: CgroupGuard,
    busybox: PathBuf,
    /// (entry name, image) in `processes/box.yaml`.
    entries: Vec<(String, String)>,
}

impl Fixture {
    fn new(busybox: &Path) -> Fixture {
        let set = ConfigSet::new();
        let cgroup = CgroupGuard::new();
        make_busybox_image(busybox, &set.p("images/bb"));
        // A directory in the image the container user owns: only the mount
        // flags can keep it from being written.
        chown(&set.p("images/bb/work"), UID, GID);
        fs::create_dir_all(set.p("srv/data")).unwrap();
        chown(&set.p("srv/data"), UID, GID);
        fs::create_dir_all(set.p("srv/ro")).unwrap();
        set.write("srv/ro/hello.txt", "read-only data\n");
        chown(&set.p("srv/ro"), UID, GID);
        chown(&set.p("srv/ro/hello.txt"), UID, GID);
        set.write("host-hosts", "10.9.8.7 from-host\n");
        set.write("host-resolv.conf", "nameserver 10.9.8.1\n");
        let fx = Fixture {
            set,
            cgroup,
            busybox: busybox.to_path_buf(),
            entries: Vec::new(),
        };
        fx.master(&format!("cgroup-name: {}\n", fx.cgroup.name));
        fx.sandbox("allow-users: [1000-1999]\nallow-groups: [1000-1999]\n");
        fx
    }

    /// (Re)write `master.yaml`: every dir in the temp dir, plus `extra`
    /// (which gives the cgroup settings).
    fn master(&self, extra: &str) {
        self.set
            .write_master(&format!("config-log-dir: null\n{extra}"));
    }

    /// (Re)write sandbox `box`: the fixed part plus `extra` (which must
    /// give allow-users and allow-groups).
    fn sandbox(&self, extra: &str) {
        self.set.write(
            "sandboxes/box.yaml",
            format!(
                "image-dir: {images}\nwritable-paths: {{/data: {data}}}\n\
                 readonly-paths: {{/ro: {ro}}}\nhosts-file: {hosts}\n\
                 resolv-conf: {resolv}\nadditional-hosts: {{db.example: 10.1.2.3}}\n{extra}",
                images = self.set.s("images"),
                data = self.set.s("srv/data"),
                ro = self.set.s("srv/ro"),
                hosts = self.set.s("host-hosts"),
                resolv = self.set.s("host-resolv.conf"),
            ),
        );
    }

    /// Add (or replace) the Command entry `name` running the container
    /// config `yaml` from image `bb`.
    fn command(&mut self, name: &str, yaml: &str) {
        self.command_in(name, "bb", yaml);
    }

    /// Like `command`, with the config in image `image` (which may not exist
    /// as a real directory: the negative tests use that).
    fn command_in(&mut self, name: &str, image: &str, yaml: &str) {
        self.set
            .write(&format!("images/bb/config/{name}.yaml"), yaml);
        self.entries.retain(|(n, _)| n != name);
        self.entries.push((name.to_string(), image.to_string()));
        let mut text = String::new();
        for (n, img) in &self.entries {
            text.push_str(&format!(
                "{n}:\n  kind: Command\n  image: {img}\n  config: /config/{n}.yaml\n"
            ));
        }
        self.set.write("processes/box.yaml", text);
    }

    /// `cairn cmd -c MASTER box NAME ARGS...`, not yet started.
    fn cmd(&self, name: &str, args: &[&str]) -> Command {
        let mut c = Command::new(cairn_bin());
        c.args(["cmd", "-c", &self.set.master(), "box", name])
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .env("TERM", "xterm-cairn-test");
        c
    }

    /// Run entry `name` with `args` (stdin /dev/null), then check that
    /// `cairn cmd` left no cgroup and no state behind.
    fn run(&self, name: &str, args: &[&str]) -> Output {
        let out = output_within(&mut self.cmd(name, args), None, TIMEOUT);
        self.assert_cleaned_up();
        out
    }

    /// Add a probe entry (`sh -c SCRIPT` as UID:GID, PATH=/bin, plus the
    /// top-level keys in `extra`) and run `script` in it.
    fn probe(&mut self, name: &str, extra: &str, script: &str) -> Output {
        self.command(name, &probe(extra));
        self.run(name, &[script])
    }

    /// Start entry `name` with stdin and stdout as pipes.
    fn spawn(&self, name: &str, args: &[&str]) -> Running {
        Running::start(self.cmd(name, args))
    }

    /// No instance cgroup and no instance state dir is left.
    fn assert_cleaned_up(&self) {
        let leaves = cgroup_leaves(&self.cgroup.name);
        assert!(leaves.is_empty(), "instance cgroups left: {leaves:?}");
        let state = self.set.p("run/state/box");
        if let Ok(rd) = fs::read_dir(&state) {
            let left: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            assert!(left.is_empty(), "instance state left: {left:?}");
        }
    }
}

/// A probe container config: `sh -c` as UID:GID with PATH=/bin, plus the
/// top-level keys in `extra`.
fn probe(extra: &str) -> String {
    format!(
        "kind: Command\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sh\n\
         arguments: [-c]\nenviron:\n  PATH: /bin\n{extra}"
    )
}

/// A `cairn cmd` running in the background, its stdout read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    err: mpsc::Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cairn cmd");
        let out = child.stdout.take().expect("stdout");
        let mut errp = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, err) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut errp, &mut s);
            let _ = etx.send(s);
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
            err,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait until the workload prints `line`.
    fn wait_for(&mut self, line: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l == line;
                    self.seen.push(l);
                    if done {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no line {line:?}; saw {:?}", self.seen);
                }
            }
        }
    }

    /// Send `sig` to `cairn cmd` itself (our own child).
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) of the child this test spawned.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    fn write_stdin(&mut self, data: &[u8]) {
        self.child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(data)
            .expect("write stdin");
    }

    /// SIGKILL `cairn cmd` and reap it; its container is left alone.
    fn kill_cmd(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Wait for the end: (status, all stdout lines, stderr, time taken).
    /// Output still open 5 s after the exit (held by a process left
    /// behind) is not waited for.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String, Duration) {
        let start = Instant::now();
        drop(self.child.stdin.take());
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!("cairn cmd did not finish; saw {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        let err = self
            .err
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| "<stderr still open>".into());
        (status, self.seen, err, took)
    }
}

/// `KEY: value` lines of a /proc status file (or probe output).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

/// `key=value` lines of probe output.
fn kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Assert success and return stdout.
fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "cairn cmd failed\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// One line of mountinfo, as the container sees it.
#[derive(Debug, Clone)]
struct Mount {
    root: String,
    point: String,
    opts: BTreeSet<String>,
    fstype: String,
    super_opts: BTreeSet<String>,
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split_whitespace().collect();
            let r: Vec<&str> = right.split_whitespace().collect();
            let set = |s: &str| s.split(',').map(str::to_string).collect();
            Some(Mount {
                root: f.get(3)?.to_string(),
                point: f.get(4)?.to_string(),
                opts: set(f.get(5)?),
                fstype: r.first()?.to_string(),
                super_opts: set(r.get(2).unwrap_or(&"")),
            })
        })
        .collect()
}

/// The last mount on `point` (the one a path lookup sees).
fn mount_at<'a>(mounts: &'a [Mount], point: &str) -> &'a Mount {
    mounts
        .iter()
        .rev()
        .find(|m| m.point == point)
        .unwrap_or_else(|| panic!("nothing mounted on {point}: {mounts:#?}"))
}

fn assert_flags(m: &Mount, want: &[&str], not: &[&str]) {
    for w in want {
        assert!(m.opts.contains(*w), "{} lacks {w}: {m:?}", m.point);
    }
    for n in not {
        assert!(!m.opts.contains(*n), "{} has {n}: {m:?}", m.point);
    }
}

/// The host's mount table as a set of lines (the test process is in the
/// host mount namespace).
fn host_mounts() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_host_mounts_unchanged(before: &BTreeSet<String>) {
    let after = host_mounts();
    let added: Vec<_> = after.difference(before).collect();
    assert!(added.is_empty(), "mounted on the host: {added:?}");
}

/// A refused run: `code`, nothing started, a message holding every one of
/// `needles`, and nothing mounted on the host.
fn assert_refused(out: &Output, code: i32, needles: &[&str], before: &BTreeSet<String>) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{err}",
        stdout(out)
    );
    assert!(
        !stdout(out).contains(STARTED),
        "the workload ran: {}",
        stdout(out)
    );
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in stderr:\n{err}");
    }
    assert_host_mounts_unchanged(before);
}

/// Capability sets of a status file, as hex strings.
fn caps(status: &str) -> BTreeMap<&'static str, String> {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .into_iter()
        .map(|k| (k, field(status, k).unwrap_or("missing").to_string()))
        .collect()
}

// The tests, one file per concern (tests/container/*.rs), all in this one
// test binary.
#[path = "container/ceilings.rs"]
mod ceilings;
#[path = "container/escapes.rs"]
mod escapes;
#[path = "container/injection.rs"]
mod injection;
#[path = "container/lifecycle.rs"]
mod lifecycle;
#[path = "container/mounts.rs"]
mod mounts;
#[path = "container/network.rs"]
mod network;
#[path = "container/privileges.rs"]
mod privileges;
#[path = "container/processes.rs"]
mod processes;
#[path = "container/programs.rs"]
mod programs;
#[path = "container/refused.rs"]
mod refused;
#[path = "container/seccomp.rs"]
mod seccomp;
#[path = "container/volumes.rs"]
mod volumes;
