//! `InstanceSpec`: one instance fully resolved, everything the knot needs
//! to build and run its container, and nothing it would have to look up.
//! Its hash is the instance's config version: reload and upgrade restart an
//! instance exactly when this hash changes.
//!
//! Hash stability rule: a field added in a later version must serialize to
//! nothing when it has its default (`skip_serializing_if`), so upgrading
//! cairn does not change every hash and restart every workload.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod resolve;

use crate::config::container::{ContainerConfig, TcpPort, Volume};
use crate::config::error::{ConfigError, Problems};
use crate::config::isolation::Isolation;
use crate::config::master::Master;
use crate::config::probe::{
    DEFAULT_HEALTH_FAILURES, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT, Probe,
};
use crate::config::process::{Kind, ProcessEntry};
use crate::config::range::{IdMap, map_to_host};
use crate::config::sandbox::Sandbox;
use crate::config::stdio_log::StdioLog;
use crate::config::{ids, validate, variables};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// Bind of `sub` (relative, resolved without symlinks) under the host dir
    /// `base`; `mkdir` = create it first with (mode, host uid, host gid).
    Bind {
        base: PathBuf,
        sub: String,
        writable: bool,
        mkdir: Option<(u32, u32, u32)>,
    },
    Tmpfs {
        size: u64,
        mode: u32,
    },
    /// A subdir of the instance state dir, created with (mode, host uid, host gid).
    Statedir {
        sub: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub target: String,
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stdio {
    /// Keep the caller's terminal (interactive commands).
    Inherit,
    /// Append to a host file (the sandbox's stdio log).
    HostFile(PathBuf),
    /// Append to a file inside the container (`stdout-stderr-file`).
    ContainerFile(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcFile {
    /// Host file to copy from, when copying.
    pub copy_from: Option<PathBuf>,
    /// Extra lines after the copy.
    pub extra_lines: Vec<String>,
    /// Add the host's name with its address (hosts only).
    pub public_hostname: bool,
    /// `None` = mount over the image's file when it is a regular file.
    pub mount: Option<bool>,
}

impl EtcFile {
    /// Whether cairn writes this file at all: something to copy or add.
    pub fn wanted(&self) -> bool {
        self.copy_from.is_some() || !self.extra_lines.is_empty() || self.public_hostname
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub port: u16,
    pub settings: TcpPort,
}

impl PortSpec {
    /// How to listen on this port.
    pub fn listen(&self) -> crate::sys::socket::Listen {
        let s = &self.settings;
        crate::sys::socket::Listen {
            host: s.host,
            port: self.port,
            backlog: s.listen_backlog,
            reuse_addr: s.reuse_addr,
            reuse_port: s.reuse_port,
            nonblock: s.set_non_block,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub bridge: String,
    pub ip: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub after_setup_command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: Option<u64>,
    pub cpu_shares: u64,
    /// `None`: the default limit, applied when the pids controller is on.
    pub pids: Option<u64>,
    pub fileno: u64,
}

/// Where the instance lives on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// The instance's own state dir.
    pub state_dir: PathBuf,
    /// Where the root is assembled (in the knot's own mount namespace).
    pub mount_dir: PathBuf,
    pub devfs_dir: Option<PathBuf>,
    /// The cgroup leaf name (under the tree's cgroup root), if cgroups are on.
    pub cgroup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub name: String,
    pub sandbox: String,
    pub process: String,
    pub index: u32,
    pub kind: Kind,
    pub image: String,
    /// The sandbox's image-dir; the image is `image` under it (opened
    /// without following symlinks).
    pub image_dir: PathBuf,
    pub config_path: String,
    pub executable: String,
    pub arguments: Vec<String>,
    /// The whole environment, except the variables in `pid_vars`,
    /// `CAIRN_NAME`/`LITHOS_NAME` (= `name`) and `CAIRN_CONFIG`/
    /// `LITHOS_CONFIG` (= `config_path`), which the knot adds from the
    /// fields they copy, and `TERM` (the knot sets `TERM` from its caller
    /// unless environ does: the caller's terminal is not part of the
    /// config, so not of the hash).
    pub environ: BTreeMap<String, String>,
    /// Environment variables set to the workload's pid (as it sees itself).
    pub pid_vars: Vec<String>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    pub capabilities: Vec<String>,
    /// Sorted: shorter targets first, so parents are mounted before children.
    pub mounts: Vec<MountSpec>,
    pub limits: Limits,
    pub restart_timeout_ms: u64,
    pub kill_timeout_ms: u64,
    pub normal_exit_codes: Vec<i32>,
    pub restart_process_only: bool,
    pub interactive: bool,
    pub stdio: Stdio,
    pub resolv_conf: EtcFile,
    pub hosts_file: EtcFile,
    pub tcp_ports: Vec<PortSpec>,
    /// Names for `LISTEN_FDNAMES` when systemd activation is used.
    pub listen_fdnames: Vec<String>,
    pub network: Option<NetworkSpec>,
    pub host: HostSpec,
    /// The sandbox's seccomp, allow-user-namespaces and sysfs (nothing in
    /// the hash at their defaults).
    #[serde(default, skip_serializing_if = "Isolation::is_default")]
    pub isolation: Isolation,
    /// How a stop reaches the workload (nothing in the hash at its
    /// defaults).
    #[serde(default, skip_serializing_if = "Service::is_default")]
    pub service: Service,
    /// How the sandbox's stdio log is capped and prefixed, with
    /// `Stdio::HostFile` (nothing in the hash at its defaults, and always
    /// the defaults with any other `stdio`).
    #[serde(default, skip_serializing_if = "StdioLog::is_default")]
    pub stdio_log: StdioLog,
    /// The encrypted secrets and what decrypts them (nothing in the hash
    /// without secrets). Only ciphertext: the knot decrypts.
    #[serde(default, skip_serializing_if = "Secrets::is_empty")]
    pub secrets: Secrets,
}

/// An instance's secrets, still encrypted (lithos's v2 values, see
/// `crypt`), and what the knot needs to decrypt them: the key's host path
/// and the namespaces the instance may read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Secrets {
    /// The sandbox's `secrets-private-key` (a host file, root's alone).
    pub key: Option<PathBuf>,
    /// The sandbox's `secrets-namespaces` (or `""`) and the entry's
    /// `extra-secrets-namespaces`.
    pub namespaces: Vec<String>,
    /// Environment variable → its values (the first that decrypts wins):
    /// `secret-environ` and the file `secret-environ-file` names.
    pub environ: BTreeMap<String, Vec<String>>,
    /// `secret-files`: file name → its values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, Vec<String>>,
    /// `secret-files-dir`: where the files' tmpfs is mounted, and the host
    /// uid and gid that own them (the workload's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_dir: Option<SecretFilesDir>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFilesDir {
    pub path: String,
    pub uid: u32,
    pub gid: u32,
}

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.environ.is_empty() && self.files.is_empty()
    }
}

/// How the instance's service tells it is ready, and how it is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// What a stop sends the workload (`stop-signal`): the knot, and
    /// cairn-init after it, pass a TERM on as this signal.
    #[serde(default = "term", skip_serializing_if = "is_term")]
    pub stop_signal: i32,
    /// How the service tells it is ready (`ready`); `None`: once its
    /// program runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
    /// Exec → ready, at most (`ready-timeout`), when there is a probe.
    #[serde(
        default = "default_ready_timeout_ms",
        skip_serializing_if = "is_default_ready_timeout"
    )]
    pub ready_timeout_ms: u64,
    /// `health-check` and its numbers, probed while the instance runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// `watchdog-timeout` (with `Ready::Notify`): a running workload
    /// that sends no `WATCHDOG=1` for this long is restarted; 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub watchdog_ms: u64,
}

/// A health check, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `Ready::Tcp`, `Ready::Http` or `Ready::Exec`.
    pub probe: Ready,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Failures in a row that restart the instance.
    pub failures: u32,
}

/// Where a `ready: !Notify` workload finds its notify socket
/// (`NOTIFY_SOCKET`): a read-only bind of the tree's socket onto a file of
/// the container's `/dev`, which cairn makes itself (so every image has
/// it; with master.yaml's `devfs-dir`, that dir must hold the file).
pub const NOTIFY_SOCKET_PATH: &str = "/dev/cairn-notify";

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A readiness probe, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ready {
    /// The workload writes a newline to this fd.
    Fd(u32),
    /// A TCP connect to this port in the container's network succeeds.
    Tcp(u16),
    /// `GET path` on this port answers 2xx or 3xx.
    Http { port: u16, path: String },
    /// `READY=1` on the instance's notify socket (sd_notify).
    Notify,
    /// This command, run inside the instance (`cairn exec`'s way), exits 0.
    Exec(Vec<String>),
}

fn default_ready_timeout_ms() -> u64 {
    (crate::config::probe::DEFAULT_READY_TIMEOUT * 1000.0) as u64
}

fn is_default_ready_timeout(ms: &u64) -> bool {
    *ms == default_ready_timeout_ms()
}

fn term() -> i32 {
    libc::SIGTERM
}

fn is_term(s: &i32) -> bool {
    *s == libc::SIGTERM
}

impl Default for Service {
    fn default() -> Service {
        Service {
            stop_signal: libc::SIGTERM,
            ready: None,
            ready_timeout_ms: default_ready_timeout_ms(),
            health: None,
            watchdog_ms: 0,
        }
    }
}

impl Service {
    pub fn is_default(&self) -> bool {
        *self == Service::default()
    }
}

/// Which instance of an entry to resolve.
#[derive(Debug, Clone, Copy)]
pub enum Which {
    /// Instance N of a supervised entry: `SANDBOX/PROCESS.N`.
    Daemon(u32),
    /// A one-off command run by `cairn cmd` (pid of the caller):
    /// `SANDBOX/cmd.PROCESS.PID`.
    Command(u32),
}

pub fn instance_name(sandbox: &str, process: &str, which: Which) -> String {
    match which {
        Which::Daemon(i) => format!("{sandbox}/{process}.{i}"),
        Which::Command(pid) => format!("{sandbox}/cmd.{process}.{pid}"),
    }
}

impl InstanceSpec {
    /// Whether this is a `placeholder` (no config was resolved for it).
    pub fn is_placeholder(&self) -> bool {
        self.executable.is_empty()
    }

    /// A spec that only names an instance: shown as `failed` when its
    /// config cannot be read; never run (the tree refuses to start a knot
    /// from one).
    pub fn placeholder(sandbox: &str, process: &str, index: u32) -> InstanceSpec {
        InstanceSpec {
            name: instance_name(sandbox, process, Which::Daemon(index)),
            sandbox: sandbox.to_string(),
            process: process.to_string(),
            index,
            kind: Kind::Daemon,
            image: String::new(),
            image_dir: PathBuf::new(),
            config_path: String::new(),
            executable: String::new(),
            arguments: Vec::new(),
            environ: BTreeMap::new(),
            pid_vars: Vec::new(),
            workdir: "/".into(),
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            capabilities: Vec::new(),
            mounts: Vec::new(),
            limits: Limits {
                memory: None,
                cpu_shares: 1024,
                pids: None,
                fileno: 1024,
            },
            restart_timeout_ms: 1000,
            kill_timeout_ms: 5000,
            normal_exit_codes: Vec::new(),
            restart_process_only: false,
            interactive: false,
            stdio: Stdio::Inherit,
            resolv_conf: EtcFile {
                copy_from: None,
                extra_lines: Vec::new(),
                public_hostname: false,
                mount: None,
            },
            hosts_file: EtcFile {
                copy_from: None,
                extra_lines: Vec::new(),
                public_hostname: false,
                mount: None,
            },
            tcp_ports: Vec::new(),
            listen_fdnames: Vec::new(),
            network: None,
            host: HostSpec {
                state_dir: PathBuf::new(),
                mount_dir: PathBuf::new(),
                devfs_dir: None,
                cgroup: None,
            },
            isolation: Isolation::default(),
            stdio_log: StdioLog::default(),
            service: Service::default(),
            secrets: Secrets::default(),
        }
    }

    /// Whether a port is opened by the knot inside the container's own
    /// network namespace: a port of a `bridged-network` instance that is
    /// not `external`. The tree opens every other port, in its own
    /// namespace.
    pub fn port_in_container(&self, p: &PortSpec) -> bool {
        self.network.is_some() && !p.settings.external
    }

    /// The ports the knot opens in the container's namespace, with the fd
    /// each goes to.
    pub fn container_ports(&self) -> Vec<(u32, crate::sys::socket::Listen)> {
        self.tcp_ports
            .iter()
            .filter(|p| self.port_in_container(p))
            .map(|p| (p.settings.fd, p.listen()))
            .collect()
    }

    /// The environment of a command joined into this instance (`cairn
    /// exec`, an `!Exec` probe): `environ`, and `TERM` (`term`) unless
    /// `environ` sets it; not a variable that `secret-environ` sets (only
    /// the knot decrypts: the joined command gets neither the secret nor
    /// the plain value the secret replaces in the workload's).
    pub fn joined_environ(&self, term: &str) -> Vec<String> {
        let mut env: Vec<String> = self
            .environ
            .iter()
            .filter(|(k, _)| !self.secrets.environ.contains_key(*k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !self.environ.contains_key("TERM") && !self.secrets.environ.contains_key("TERM") {
            env.push(format!("TERM={term}"));
        }
        env
    }

    /// The stable content hash (16 hex digits) of this spec.
    pub fn hash(&self) -> String {
        // serde_json of a struct is deterministic: fields in declaration
        // order, maps are BTreeMaps. Serializing our own types cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("{:016x}", fnv1a64(&bytes))
    }
}

/// FNV-1a, 64 bit: stable across Rust versions and platforms, unlike
/// `DefaultHasher`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
pub(crate) mod tests;
