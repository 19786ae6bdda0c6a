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

use crate::config::container::{ContainerConfig, TcpPort, Volume};
use crate::config::error::{ConfigError, Problems};
use crate::config::isolation::Isolation;
use crate::config::master::Master;
use crate::config::process::{Kind, ProcessEntry};
use crate::config::range::{IdMap, map_to_host};
use crate::config::sandbox::Sandbox;
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
    /// Resolve one instance. `c` must have passed `validate::container`.
    pub fn resolve(
        master: &Master,
        s: &Sandbox,
        e: &ProcessEntry,
        c: &ContainerConfig,
        container_file: &str,
        which: Which,
    ) -> Result<InstanceSpec, Problems> {
        let err = |key: &str, msg: String| -> Problems {
            ConfigError::new(container_file, msg)
                .key(key.to_string())
                .into()
        };
        let name = instance_name(&s.name, &e.name, which);
        let (index, leaf) = match which {
            Which::Daemon(i) => (i, format!("{}.{i}", e.name)),
            Which::Command(pid) => (0, format!("cmd.{}.{pid}", e.name)),
        };
        let ids = ids::ids(container_file, c, s)?;
        let builtins = validate::builtins(&s.name, e, &name);
        let lookup = |n: &str| -> Option<String> {
            if let Some(b) = variables::builtin(n) {
                return builtins.get(b).cloned();
            }
            e.variables.get(n).cloned()
        };
        let mut arguments = Vec::with_capacity(c.arguments.len());
        for (i, a) in c.arguments.iter().enumerate() {
            arguments.push(
                variables::substitute(a, &lookup)
                    .map_err(|m| err(&format!("arguments[{i}]"), m))?,
            );
        }
        let mut environ = BTreeMap::new();
        let mut pid_vars = Vec::new();
        for (k, v) in &c.environ {
            if variables::is_pid_placeholder(v) {
                pid_vars.push(k.clone());
                continue;
            }
            environ.insert(
                k.clone(),
                variables::substitute(v, &lookup).map_err(|m| err(&format!("environ.{k}"), m))?,
            );
        }
        let (ports, listen_fdnames) =
            validate::ports(c, e, &builtins).map_err(|m| err("tcp-ports", m))?;
        if !listen_fdnames.is_empty() {
            environ.insert("LISTEN_FDS".into(), listen_fdnames.len().to_string());
            environ.insert("LISTEN_FDNAMES".into(), listen_fdnames.join(":"));
            pid_vars.push("LISTEN_PID".into());
        }
        let tcp_ports = ports
            .into_iter()
            .map(|(port, settings)| PortSpec { port, settings })
            .collect();

        let to_host = |uid: u32, gid: u32| {
            (
                map_to_host(&ids.uid_map, uid).unwrap_or(uid),
                map_to_host(&ids.gid_map, gid).unwrap_or(gid),
            )
        };
        let unknown = |target: &str, v: &str| {
            err(
                &format!("volumes.{target}"),
                format!("unknown virtual path {v}"),
            )
        };
        let mut mounts = Vec::new();
        for (target, vol) in &c.volumes {
            let kind = match vol {
                Volume::Readonly(v) => {
                    let (base, sub) = Sandbox::split_vpath(&s.readonly_paths, v)
                        .or_else(|| Sandbox::split_vpath(&s.writable_paths, v))
                        .ok_or_else(|| unknown(target, v))?;
                    MountKind::Bind {
                        base,
                        sub,
                        writable: false,
                        mkdir: None,
                    }
                }
                Volume::Persistent {
                    path,
                    mkdir,
                    mode,
                    user,
                    group,
                } => {
                    let (hu, hg) = to_host(user.unwrap_or(ids.uid), group.unwrap_or(ids.gid));
                    let (base, sub) = Sandbox::split_vpath(&s.writable_paths, path)
                        .ok_or_else(|| unknown(target, path))?;
                    MountKind::Bind {
                        base,
                        sub,
                        writable: true,
                        mkdir: mkdir.then_some((*mode, hu, hg)),
                    }
                }
                Volume::Tmpfs { size, mode } => MountKind::Tmpfs {
                    size: s.ceilings.tmpfs_size_for(*size),
                    mode: *mode,
                },
                Volume::Statedir {
                    path,
                    mode,
                    user,
                    group,
                } => {
                    let (hu, hg) = to_host(user.unwrap_or(ids.uid), group.unwrap_or(ids.gid));
                    MountKind::Statedir {
                        sub: path.clone(),
                        mode: *mode,
                        uid: hu,
                        gid: hg,
                    }
                }
            };
            mounts.push(MountSpec {
                target: target.clone(),
                kind,
            });
        }
        mounts.sort_by(|a, b| (a.target.len(), &a.target).cmp(&(b.target.len(), &b.target)));

        // A daemon writes to its stdout-stderr-file or the sandbox log; a
        // command run by `cairn cmd` writes to the caller (unless it has a
        // stdout-stderr-file). `interactive` adds the caller's stdin.
        let stdio = if let Some(f) = &c.stdout_stderr_file {
            Stdio::ContainerFile(f.clone())
        } else if c.interactive || matches!(which, Which::Command(_)) {
            Stdio::Inherit
        } else {
            Stdio::HostFile(master.stdio_log_dir.join(format!("{}.log", s.name)))
        };
        let mut host_lines = Vec::new();
        if c.hosts_file.localhost {
            host_lines.push("127.0.0.1 localhost.localdomain localhost".to_string());
        }
        for (h, ip) in &s.additional_hosts {
            host_lines.push(format!("{ip} {h}"));
        }
        let network = match (&s.bridged_network, which) {
            (Some(net), Which::Daemon(i)) => e.ip_addresses.get(i as usize).map(|ip| NetworkSpec {
                bridge: net.bridge.clone(),
                ip: *ip,
                prefix: net.network.1,
                gateway: net.default_gateway,
                after_setup_command: net.after_setup_command.clone(),
            }),
            (Some(net), Which::Command(_)) => e.ip_addresses.first().map(|ip| NetworkSpec {
                bridge: net.bridge.clone(),
                ip: *ip,
                prefix: net.network.1,
                gateway: net.default_gateway,
                after_setup_command: net.after_setup_command.clone(),
            }),
            (None, _) => None,
        };
        if s.bridged_network.is_some() && network.is_none() {
            return Err(err(
                "ip-addresses",
                format!("instance {name} has no ip-address"),
            ));
        }
        Ok(InstanceSpec {
            name,
            sandbox: s.name.clone(),
            process: e.name.clone(),
            index,
            kind: e.kind,
            image: e.image.clone(),
            image_dir: s.image_dir.clone(),
            config_path: e.config.clone(),
            executable: c.executable.clone(),
            arguments,
            environ,
            pid_vars,
            workdir: c.workdir.clone(),
            uid: ids.uid,
            gid: ids.gid,
            groups: ids.groups,
            uid_map: ids.uid_map,
            gid_map: ids.gid_map,
            capabilities: c.capabilities.clone(),
            mounts,
            // Unset limits get the sandbox's ceilings (`ceilings`).
            limits: Limits {
                memory: s.ceilings.memory_for(c),
                cpu_shares: c.cpu_shares,
                pids: s.ceilings.pids_for(c),
                fileno: s.ceilings.fileno_for(c),
            },
            restart_timeout_ms: (s.ceilings.restart_timeout_for(c) * 1000.0).round() as u64,
            kill_timeout_ms: (s.ceilings.kill_timeout_for(c) * 1000.0).round() as u64,
            normal_exit_codes: c.normal_exit_codes.clone(),
            restart_process_only: c.restart_process_only,
            interactive: c.interactive,
            stdio,
            resolv_conf: EtcFile {
                copy_from: c.resolv_conf.copy_from_host.then(|| s.resolv_conf.clone()),
                extra_lines: Vec::new(),
                public_hostname: false,
                mount: c.resolv_conf.mount,
            },
            hosts_file: EtcFile {
                copy_from: c.hosts_file.copy_from_host.then(|| s.hosts_file.clone()),
                extra_lines: host_lines,
                public_hostname: c.hosts_file.public_hostname,
                mount: c.hosts_file.mount,
            },
            tcp_ports,
            listen_fdnames,
            network,
            host: HostSpec {
                state_dir: master.state_dir.join(&s.name).join(&leaf),
                mount_dir: master.mount_dir.clone(),
                devfs_dir: master.devfs_dir.clone(),
                cgroup: master
                    .cgroup_name
                    .as_ref()
                    .map(|_| format!("{}:{leaf}", s.name)),
            },
            isolation: s.isolation,
        })
    }

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
#[path = "spec_tests.rs"]
mod tests;
