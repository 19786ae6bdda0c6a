//! The fleet test's world: a real 3-member etcd cluster on loopback and
//! cairn trees, each with its own master, runtime dir, cgroup name and
//! busybox image, and their agents. Everything started here is stopped by
//! its pid in `Drop`.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{CgroupGuard, ConfigSet, cairn, cairn_bin, make_busybox_image};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn-agent"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) of a process this test started, by its pid.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Stop our own child: SIGTERM, then SIGKILL after 10 s.
pub fn stop_child(c: &mut Child, sig: i32) {
    kill(c.id(), sig);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>, ctx: impl Fn() -> String) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > WAIT {
            panic!("timed out waiting for {what}\n{}", ctx());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------

pub struct Etcd {
    pub dir: tempfile::TempDir,
    pub members: Vec<Option<Child>>,
    pub client: Vec<u16>,
    peer: Vec<u16>,
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("cairn-etcd.")
            .tempdir()
            .expect("tempdir");
        let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let peer: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut e = Etcd {
            dir,
            members: vec![None, None, None],
            client,
            peer,
        };
        for i in 0..3 {
            e.start_member(i);
        }
        e.wait_healthy();
        e
    }

    pub fn endpoints(&self) -> String {
        self.client
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start_member(&mut self, i: usize) {
        let cluster = (0..3)
            .map(|j| format!("m{j}=http://127.0.0.1:{}", self.peer[j]))
            .collect::<Vec<_>>()
            .join(",");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))
            .expect("etcd log");
        let c = Command::new("etcd")
            .args(["--name", &format!("m{i}")])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("m{i}.data")))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", self.client[i]),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{}", self.client[i]),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", self.peer[i]),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", self.peer[i]),
                "--initial-cluster",
                &cluster,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                &format!("cairn-fleet-{}", std::process::id()),
                "--listen-metrics-urls",
                "",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.members[i] = Some(c);
    }

    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].take() {
            stop_child(&mut c, libc::SIGTERM);
        }
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints()))
            .args(["--command-timeout=5s", "--dial-timeout=2s"])
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn put(&self, key: &str, value: &str) {
        self.ok(&["put", key, value]);
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.ok(&["get", "--print-value-only", key]);
        let v = out.strip_suffix('\n').unwrap_or(&out);
        (!v.is_empty()).then(|| v.to_string())
    }

    pub fn revision(&self) -> i64 {
        let out = self.ok(&["get", "/", "-w", "json"]);
        let v: Value = serde_json::from_str(&out).expect("etcdctl json");
        v["header"]["revision"].as_i64().expect("revision")
    }

    pub fn wait_healthy(&self) {
        wait_for(
            "etcd to answer",
            || {
                self.ctl(&["put", "/cairn-test/ping", "1"])
                    .status
                    .success()
                    .then_some(())
            },
            || self.logs(),
        );
    }

    pub fn logs(&self) -> String {
        (0..3)
            .map(|i| {
                let t = fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(5).collect();
                format!("etcd m{i}: {}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in self.members.iter_mut() {
            if let Some(mut c) = m.take() {
                stop_child(&mut c, libc::SIGKILL);
            }
        }
    }
}

// ---------------------------------------------------------------------------

/// One host: a cairn tree on its own temp dir and cgroup name, with
/// sandboxes `box` and `sched`, and its agent.
pub struct Host {
    pub name: String,
    pub tree: Option<Child>,
    pub agent: Option<Child>,
    pub set: ConfigSet,
    /// Held for its `Drop`: removes the tree's cgroup root.
    pub _cgroup: CgroupGuard,
}

pub const APP: &str = "kind: Daemon\nuser-id: 1000\ngroup-id: 1000\nexecutable: /bin/sh\n\
                       arguments: [-c, 'exec sleep 100000']\nenviron:\n  PATH: /bin\n";

impl Host {
    pub fn new(name: &str, busybox: &Path) -> Host {
        let set = ConfigSet::new();
        let cgroup = CgroupGuard::new();
        make_busybox_image(busybox, &set.p("images/bb"));
        set.write("images/bb/config/app.yaml", APP);
        set.write_master(&format!(
            "cgroup-name: {}\nconfig-log-dir: null\n",
            cgroup.name
        ));
        for sb in ["box", "sched"] {
            set.write(
                &format!("sandboxes/{sb}.yaml"),
                format!(
                    "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
                     min-restart-timeout: 0\n",
                    set.s("images")
                ),
            );
        }
        Host {
            name: name.to_string(),
            tree: None,
            agent: None,
            set,
            _cgroup: cgroup,
        }
    }

    pub fn master(&self) -> String {
        self.set.master()
    }

    fn log_to(&self, name: &str) -> fs::File {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.set.p(name))
            .expect("log file")
    }

    pub fn start_tree(&mut self) {
        let c = Command::new(cairn_bin())
            .args(["tree", "-c", &self.master(), "--log-stderr"])
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log_to("tree.log"))
            .spawn()
            .expect("spawn tree");
        self.tree = Some(c);
        wait_for("the tree's first state", || self.try_ps(), || self.logs());
    }

    pub fn agent_cmd(&self, etcd: &Etcd, host: &str) -> Command {
        let mut c = Command::new(agent_bin());
        c.args(["-c", &self.master(), "--etcd", &etcd.endpoints()])
            .args(["--host", host, "--lease-ttl", "3", "--wait-timeout", "60"])
            .arg("--cairn")
            .arg(cairn_bin())
            .stdin(Stdio::null());
        c
    }

    pub fn start_agent(&mut self, etcd: &Etcd) {
        let c = self
            .agent_cmd(etcd, &self.name)
            .stdout(self.log_to("agent.log"))
            .stderr(self.log_to("agent.log"))
            .spawn()
            .expect("spawn agent");
        self.agent = Some(c);
    }

    pub fn stop_agent(&mut self, sig: i32) {
        if let Some(mut c) = self.agent.take() {
            stop_child(&mut c, sig);
        }
    }

    pub fn try_ps(&self) -> Option<Value> {
        let out = cairn(&["ps", "-c", &self.master(), "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Running instances of `sandbox`: name → knot pid.
    pub fn running(&self, sandbox: &str) -> Vec<(String, i64)> {
        let Some(ps) = self.try_ps() else {
            return Vec::new();
        };
        ps["instances"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|i| i["sandbox"] == sandbox && i["state"] == "running")
                    .map(|i| {
                        (
                            i["name"].as_str().unwrap_or("").to_string(),
                            i["pid"].as_i64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn metric(&self, name: &str) -> Option<String> {
        let t = fs::read_to_string(self.set.p("run/cairn-agent.prom")).ok()?;
        t.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    }

    pub fn logs(&self) -> String {
        format!(
            "{} agent log:\n{}\n{} tree log (tail):\n{}",
            self.name,
            fs::read_to_string(self.set.p("agent.log")).unwrap_or_default(),
            self.name,
            fs::read_to_string(self.set.p("tree.log"))
                .unwrap_or_default()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            stop_child(&mut c, libc::SIGKILL);
        }
        if let Some(mut c) = self.tree.take() {
            stop_child(&mut c, libc::SIGTERM);
        }
    }
}

/// A process config: `app` with `n` instances (plus `extra` keys).
pub fn app(n: u32, extra: &str) -> String {
    format!("app:\n  image: bb\n  config: /config/app.yaml\n  instances: {n}\n{extra}")
}
