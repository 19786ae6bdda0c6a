//! A start cannot hang forever (issue 10, item 9).
//!
//! A knot stuck while it builds its container is killed once master.yaml's
//! `setup-timeout` has passed; the instance backs off with the reason in
//! `cairn ps` and the logs, and readiness to systemd does not wait for it.
//! The specific hang of a FIFO given as a sandbox's `resolv-conf` (the knot
//! blocked opening it) is gone: the start fails at once, naming the key.
//!
//! Each test runs the real tree as root on its own temp dir, busybox image
//! and cgroup root, with a `NOTIFY_SOCKET` datagram socket it owns. Needs
//! root and Debian's busybox-static; skips otherwise (fails under
//! `CI=true`).

mod common;

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{
    CgroupGuard, ConfigSet, cairn, cairn_bin, cgroup_procs, cgroup_root_dirs, container_prereqs,
    descendants, make_busybox_image, stderr,
};

const UID: u32 = 1000;
/// The setup deadline these tests set in master.yaml.
const SETUP_TIMEOUT: &str = "1";
/// What the tree may take beyond a deadline before a test gives up (a
/// loaded 2-core machine runs other suites at the same time).
const MARGIN: Duration = Duration::from_secs(8);
const POLL: Duration = Duration::from_millis(20);

/// One test's world: configs, image, cgroup root, notify socket, and the
/// tree once started. Drop stops the tree (TERM, then KILL), then the
/// cgroup guard sweeps what is left, then the temp dir goes.
struct Fx {
    tree: Option<Child>,
    notify: UnixDatagram,
    cgroup: CgroupGuard,
    set: ConfigSet,
}

macro_rules! fixture {
    ($master:expr) => {{
        let ready = container_prereqs();
        require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
        Fx::new(&ready.expect("checked above"), $master)
    }};
}

impl Fx {
    /// master.yaml (plus `extra`), image `bb` and sandbox `box` (plus
    /// `sandbox_extra`) running one healthy `web`.
    fn new(busybox: &Path, extra: &str) -> Fx {
        let set = ConfigSet::new();
        let cgroup = CgroupGuard::new();
        make_busybox_image(busybox, &set.p("images/bb"));
        set.write_master(&format!(
            "cgroup-name: {}\nconfig-log-dir: null\n{extra}",
            cgroup.name
        ));
        let notify = UnixDatagram::bind(set.p("notify.sock")).expect("bind notify socket");
        let fx = Fx {
            tree: None,
            notify,
            cgroup,
            set,
        };
        fx.sandbox("box", "");
        fx.container("web", &sleeper(""));
        fx.set.write("processes/box.yaml", entry("web", ""));
        fx
    }

    fn sandbox(&self, name: &str, extra: &str) {
        self.set.write(
            &format!("sandboxes/{name}.yaml"),
            format!(
                "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n{extra}",
                self.set.s("images")
            ),
        );
    }

    fn container(&self, name: &str, yaml: &str) {
        self.set
            .write(&format!("images/bb/config/{name}.yaml"), yaml);
    }

    /// Start the tree, through `wrapper` (a command line ending where the
    /// tree's own arguments go), with `NOTIFY_SOCKET` set.
    fn start(&mut self, wrapper: &[&str]) {
        let log = fs::File::create(self.set.p("tree.log")).expect("tree.log");
        let (prog, pre) = match wrapper.split_first() {
            Some((p, rest)) => (p.to_string(), rest.to_vec()),
            None => (cairn_bin().display().to_string(), Vec::new()),
        };
        let mut cmd = Command::new(prog);
        cmd.args(pre);
        if !wrapper.is_empty() {
            cmd.arg(cairn_bin());
        }
        cmd.args(["tree", "-c", &self.set.master()])
            .args(["--log-stderr", "--log-level", "debug"])
            .env("NOTIFY_SOCKET", self.set.p("notify.sock"))
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.tree = Some(cmd.spawn().expect("spawn the tree"));
    }

    fn tree_pid(&self) -> i32 {
        self.tree.as_ref().expect("started").id() as i32
    }

    fn log(&self) -> String {
        fs::read_to_string(self.set.p("tree.log")).unwrap_or_default()
    }

    fn try_ps(&self) -> Option<Value> {
        let out = cairn(&["ps", "-c", &self.set.master(), "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Poll `ps --json` until `cond` holds, for at most `within`.
    fn wait_ps(&self, what: &str, within: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        let mut last = None;
        loop {
            if let Some(ps) = self.try_ps() {
                if cond(&ps) {
                    return ps;
                }
                last = Some(ps);
            }
            if start.elapsed() > within {
                panic!(
                    "no {what} within {within:?}; last ps:\n{}\ntree log:\n{}",
                    last.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
                        .unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The next datagram on the notify socket, if one comes within `within`.
    fn notification(&self, within: Duration) -> Option<String> {
        self.notify
            .set_read_timeout(Some(within))
            .expect("socket timeout");
        let mut buf = [0u8; 4096];
        let n = self.notify.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// SIGTERM to the tree; it must exit 0.
    fn stop(&mut self) {
        let mut child = self.tree.take().expect("started");
        kill(child.id() as i32, libc::SIGTERM);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                self.tree = Some(child);
                panic!("the tree did not stop; log:\n{}", self.log());
            }
            std::thread::sleep(POLL);
        };
        assert!(status.success(), "tree exit {status:?}\n{}", self.log());
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        if let Some(mut child) = self.tree.take() {
            if matches!(child.try_wait(), Ok(None)) {
                kill(child.id() as i32, libc::SIGTERM);
                let start = Instant::now();
                while matches!(child.try_wait(), Ok(None)) {
                    if start.elapsed() > Duration::from_secs(15) {
                        let _ = child.kill();
                        break;
                    }
                    std::thread::sleep(POLL);
                }
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- tree log ---\n{}", self.log());
        }
    }
}

fn kill(pid: i32, sig: i32) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    // SAFETY: kill(2) of the tree this test started.
    unsafe { libc::kill(pid, sig) };
}

/// A process entry of one instance of `/config/NAME.yaml` in image `bb`.
fn entry(name: &str, extra: &str) -> String {
    format!("{name}:\n  image: bb\n  config: /config/{name}.yaml\n  instances: 1\n{extra}")
}

/// `sleep 1000` as uid 1000, plus the top-level keys `extra`.
fn sleeper(extra: &str) -> String {
    format!(
        "kind: Daemon\nuser-id: {UID}\ngroup-id: {UID}\nexecutable: /bin/sleep\n\
         arguments: ['1000']\nkill-timeout: 1\n{extra}"
    )
}

fn inst<'a>(ps: &'a Value, name: &str) -> Option<&'a Value> {
    ps["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
}

fn state<'a>(ps: &'a Value, name: &str) -> &'a str {
    inst(ps, name)
        .and_then(|i| i["state"].as_str())
        .unwrap_or("")
}

fn have(tool: &str) -> bool {
    ["/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"]
        .iter()
        .any(|d| Path::new(&format!("{d}{tool}")).is_file())
}

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// A knot stuck in setup: sandbox `hang` has a bridged network whose
/// `after-setup-command` never returns (the knot waits for it before it
/// builds the root), the same shape as a hung network file system under an
/// image. Before the deadline existed, `hang/stuck.0` stayed `starting`
/// forever and the tree never sent READY=1.
#[test]
fn stuck_setup_is_killed_at_the_deadline_and_readiness_does_not_wait() {
    let mut fx = fixture!(&format!("setup-timeout: {SETUP_TIMEOUT}\n"));
    require!(
        have("unshare") && have("ip"),
        "util-linux unshare and iproute2 ip needed"
    );
    fx.sandbox(
        "hang",
        "bridged-network:\n  bridge: br-cairn\n  network: 10.71.0.0/16\n  \
         after-setup-command: [/bin/sleep, '3599']\n",
    );
    // restart-timeout 5: the back-off after the kill lasts long enough to
    // be seen.
    fx.container("stuck", &sleeper("restart-timeout: 5\n"));
    fx.set.write(
        "processes/hang.yaml",
        entry("stuck", "  ip-addresses: [10.71.0.2]\n"),
    );
    // The tree runs in a network namespace of this test, with the bridge.
    fx.start(&[
        "unshare",
        "--net",
        "--",
        "/bin/sh",
        "-c",
        "set -e; ip link set lo up; ip link add br-cairn type bridge; \
         ip link set br-cairn up; exec \"$@\"",
        "sh",
    ]);
    let started = Instant::now();
    let tree = fx.tree_pid();
    // The hanging step runs: the knot waits on its after-setup-command.
    let mut hung = None;
    while hung.is_none() && started.elapsed() < MARGIN {
        hung = descendants(tree)
            .into_iter()
            .find(|&p| cmdline(p).contains("sleep 3599"));
        std::thread::sleep(Duration::from_millis(5));
    }
    let hung = hung.unwrap_or_else(|| panic!("no after-setup-command ran\n{}", fx.log()));

    // READY=1 comes although hang/stuck.0 never got past its setup.
    let deadline = Duration::from_secs(1) + MARGIN;
    let msg = fx.notification(deadline).unwrap_or_else(|| {
        panic!(
            "no READY=1 within {deadline:?} (setup-timeout {SETUP_TIMEOUT} s); ps:\n{}\nlog:\n{}",
            fx.try_ps().map(|v| v.to_string()).unwrap_or_default(),
            fx.log()
        )
    });
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(msg.contains(&format!("MAINPID={tree}")), "{msg}");
    let ready_after = started.elapsed();
    assert!(
        ready_after >= Duration::from_millis(900),
        "READY=1 after {ready_after:?}: before the stuck instance's deadline"
    );

    // The knot was killed and the instance backs off, saying why; the
    // healthy sibling runs untouched.
    let why = format!("setup took longer than {SETUP_TIMEOUT} s; killed");
    let ps = fx.wait_ps("hang/stuck.0 in backoff", MARGIN, |ps| {
        state(ps, "hang/stuck.0") == "backoff"
    });
    let stuck = inst(&ps, "hang/stuck.0").expect("listed");
    let last = &stuck["last_exit"];
    assert_eq!(last["error"].as_str(), Some(why.as_str()), "{stuck}");
    assert_eq!(last["failure"], true, "{stuck}");
    assert_eq!(last["signal"], libc::SIGKILL, "{stuck}");
    assert_eq!(last["status"], 128 + libc::SIGKILL, "{stuck}");
    assert_eq!(stuck["error"].as_str(), Some(why.as_str()), "{stuck}");
    assert!(stuck["pid"].is_null(), "{stuck}");
    assert!(stuck["next_start"].is_string(), "{stuck}");
    let web = inst(&ps, "box/web.0").expect("listed");
    assert_eq!(web["state"], "running", "{web}");
    assert_eq!(web["restarts"], 0, "{web}");
    let text = cairn(&["ps", "-c", &fx.set.master()]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(&format!("error: {why}")),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Both logs say why.
    let line = format!("hang/stuck.0: {why}");
    assert!(fx.log().contains(&line), "tree log lacks {line:?}");
    let sandbox_log = fs::read_to_string(fx.set.p("log/hang.log")).unwrap_or_default();
    assert!(sandbox_log.contains(&line), "{sandbox_log}");

    // Nothing of the killed container is left: its pid namespace took the
    // hanging command with it, and its cgroup leaf is empty.
    assert!(!alive(hung), "after-setup-command {hung} outlived its knot");
    for dir in cgroup_root_dirs(&fx.cgroup.name) {
        let leaf = dir.join("hang:stuck.0");
        assert!(
            cgroup_procs(&leaf).is_empty(),
            "{} is not empty",
            leaf.display()
        );
    }
    let metrics = fs::read_to_string(fx.set.p("run/metrics.prom")).unwrap_or_default();
    assert!(
        metrics.contains("cairn_failures_total{sandbox=\"hang\",process=\"stuck\"} 1"),
        "{metrics}"
    );
    fx.stop();
}

/// A FIFO as a sandbox's `resolv-conf`: the knot used to block opening it
/// (no writer ever comes) and the instance stayed `starting`. Now the
/// start fails at once, naming the key and the path, long before the
/// default setup-timeout of 30 s; `cairn check` flags it too.
#[test]
fn fifo_resolv_conf_fails_the_start_at_once() {
    let mut fx = fixture!("");
    let fifo = fx.set.p("resolv.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: mkfifo(3) on a path in this test's temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let hosts_dir = fx.set.p("hosts.d");
    fs::create_dir_all(&hosts_dir).expect("mkdir");
    fx.sandbox("box", &format!("resolv-conf: {}\n", fifo.display()));
    fx.container("web", &sleeper("restart-timeout: 5\n"));
    fx.start(&[]);

    let ps = fx.wait_ps("a refused start", Duration::from_secs(5), |ps| {
        inst(ps, "box/web.0")
            .and_then(|i| i["last_exit"]["error"].as_str())
            .is_some()
    });
    let web = inst(&ps, "box/web.0").expect("listed");
    let err = web["last_exit"]["error"].as_str().expect("checked");
    for want in [
        "resolv-conf",
        &fifo.display().to_string(),
        "not a regular file",
    ] {
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }
    assert_eq!(web["last_exit"]["failure"], true, "{web}");
    // Nobody holds the FIFO open for reading: a writer finds no reader.
    let w = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    assert_eq!(
        w.as_ref().err().and_then(|e| e.raw_os_error()),
        Some(libc::ENXIO),
        "something still has the FIFO open for reading: {w:?}"
    );
    fx.stop();

    // `cairn check` names the sandbox file, the key and the path, for both
    // keys.
    fx.sandbox(
        "box",
        &format!(
            "resolv-conf: {}\nhosts-file: {}\n",
            fifo.display(),
            hosts_dir.display()
        ),
    );
    let out = cairn(&["check", "-c", &fx.set.master()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = fx.set.s("sandboxes/box.yaml");
    for (key, path) in [("resolv-conf", &fifo), ("hosts-file", &hosts_dir)] {
        assert!(
            err.lines().any(|l| l.starts_with(&file)
                && l.contains(&format!("{key}: {}", path.display()))
                && l.contains("not a regular file")),
            "no line for {key}:\n{err}"
        );
    }
}
