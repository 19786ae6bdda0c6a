//! The container config, shipped inside the image (untrusted).
//!
//! `parse` turns bytes into a `ContainerConfig` whose strings may still hold
//! `@{variables}`; `validate::container` checks it against the sandbox and
//! the process entry. `validate::parse_and_validate` is the one pure function the
//! supervisor runs in a short-lived child (DESIGN.md invariant 3).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, Problems};
use super::probe::{Probe, ServiceKeys, read_service_keys};
use super::process::Kind;
use super::range::{IdMap, read_id_maps};
use super::reader::{Fields, Value, check, finish_one, opt_bool};
use super::values::{read_capabilities, read_ip, read_stop_signal};
use super::variables::{VarType, read_var_type};
pub use super::volume::Volume;
use super::volume::read_volume;
use super::{container_path, read_used_container_path, yaml};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpPort {
    pub fd: u32,
    pub host: IpAddr,
    pub listen_backlog: u32,
    pub reuse_addr: bool,
    pub reuse_port: bool,
    pub set_non_block: bool,
    pub external: bool,
}

impl TcpPort {
    /// The port a `!TcpPort {activation: systemd}` variable opens.
    pub fn systemd(fd: u32) -> TcpPort {
        TcpPort {
            fd,
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen_backlog: 128,
            reuse_addr: true,
            reuse_port: false,
            set_non_block: false,
            external: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvConf {
    /// `None`: mount when the image has a regular `/etc/resolv.conf`.
    pub mount: Option<bool>,
    pub copy_from_host: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsFile {
    pub mount: Option<bool>,
    pub copy_from_host: bool,
    /// Add `127.0.0.1 localhost`; default: `!copy_from_host`.
    pub localhost: bool,
    /// Add the host's name; default: `!copy_from_host`.
    pub public_hostname: bool,
}

const DEFAULT_RESOLV: ResolvConf = ResolvConf {
    mount: None,
    copy_from_host: true,
};

const DEFAULT_HOSTS: HostsFile = HostsFile {
    mount: None,
    copy_from_host: true,
    localhost: false,
    public_hostname: false,
};

/// Limits of numeric keys (beyond them a value is surely a mistake or an
/// attack on our arithmetic).
pub const MAX_FILENO: u64 = 1 << 20;
pub const MAX_PIDS: u64 = 1 << 22;
pub const MIN_MEMORY: u64 = 1 << 20;
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;
/// lithos's defaults of the keys a sandbox ceiling bounds (a config that
/// leaves them out gets them, brought within the ceiling).
pub const DEFAULT_FILENO: u64 = 1024;
pub const DEFAULT_RESTART_TIMEOUT: f64 = 1.0;
pub const DEFAULT_KILL_TIMEOUT: f64 = 5.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub kind: Kind,
    pub variables: BTreeMap<String, VarType>,
    pub volumes: BTreeMap<String, Volume>,
    pub user_id: Option<u32>,
    pub group_id: Option<u32>,
    pub additional_groups: Vec<u32>,
    pub memory_limit: Option<u64>,
    pub cpu_shares: u64,
    /// `None` = not given: the sandbox's `max-pids-limit` (see `ceilings`).
    pub pids_limit: Option<u64>,
    /// `None` (for these three too): not given; the sandbox's ceiling
    /// decides (see `ceilings`).
    pub fileno_limit: Option<u64>,
    pub restart_timeout: Option<f64>,
    pub kill_timeout: Option<f64>,
    /// The signal a stop sends the workload (`stop-signal`, default TERM).
    #[serde(default = "term")]
    pub stop_signal: i32,
    /// How the service tells it is ready (`ready`); `None`: ready once
    /// its program runs.
    #[serde(default)]
    pub ready: Option<Probe>,
    /// `ready-timeout`, seconds (`None`: the default).
    #[serde(default)]
    pub ready_timeout: Option<f64>,
    /// `health-check`: probed while the instance runs.
    #[serde(default)]
    pub health_check: Option<Probe>,
    /// `health-interval`, `health-timeout` (seconds) and `health-failures`
    /// (`None`: the defaults).
    #[serde(default)]
    pub health_interval: Option<f64>,
    #[serde(default)]
    pub health_timeout: Option<f64>,
    #[serde(default)]
    pub health_failures: Option<u32>,
    /// `watchdog-timeout`, seconds (`None`: no watchdog); only with
    /// `ready: !Notify` (`validate`).
    #[serde(default)]
    pub watchdog_timeout: Option<f64>,
    pub executable: String,
    pub arguments: Vec<String>,
    pub environ: BTreeMap<String, String>,
    /// `secret-environ`: name → encrypted values (see `secrets`).
    pub secret_environ: BTreeMap<String, Vec<String>>,
    /// `secret-environ-file`: a file in the image with more of them.
    pub secret_environ_file: Option<String>,
    /// `secret-files` and `secret-files-dir` (cairn additions): file name
    /// → encrypted values, and where their tmpfs is mounted.
    #[serde(default)]
    pub secret_files: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub secret_files_dir: Option<String>,
    /// What `secret-environ-file` holds, once `load` has read it.
    #[serde(default)]
    pub secret_environ_from_file: Option<super::secrets::SecretEnvironFile>,
    pub workdir: String,
    pub resolv_conf: ResolvConf,
    pub hosts_file: HostsFile,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    pub stdout_stderr_file: Option<String>,
    pub interactive: bool,
    pub restart_process_only: bool,
    pub normal_exit_codes: Vec<i32>,
    /// Port key (may hold `@{var}`) → settings.
    pub tcp_ports: BTreeMap<String, TcpPort>,
    pub capabilities: Vec<String>,
    /// The line of each key that checks against the sandbox may name (the
    /// limits and volume fields, e.g. `volumes./tmp.size`), under its
    /// dashed spelling. A key is here exactly when the config gives it.
    #[serde(default)]
    pub lines: BTreeMap<String, usize>,
}

/// Parse a container config (untrusted bytes) without a sandbox.
pub fn parse(file: &str, bytes: &[u8]) -> Result<ContainerConfig, Problems> {
    let ast = yaml::parse(file, bytes, &yaml::UNTRUSTED)?;
    let root = Value::root(file, &ast);
    let mut p = Problems::new();
    let mut f = root.fields().map_err(Problems::from)?;
    let cfg = read(&mut f, &mut p);
    f.finish(&mut p);
    match cfg {
        Some(cfg) if p.is_empty() => Ok(cfg),
        _ => Err(p),
    }
}

fn no_nul(v: &Value, s: String) -> Result<String, ConfigError> {
    if s.contains('\0') {
        Err(v.err("a NUL character is not allowed here"))
    } else {
        Ok(s)
    }
}

fn env_name_ok(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && !k.contains('\0')
}

fn read(f: &mut Fields, p: &mut Problems) -> Option<ContainerConfig> {
    let kind = match f.opt("kind") {
        Some(k) => check(p, Kind::read(&k)),
        None => Some(Kind::Daemon),
    };
    let mut variables = BTreeMap::new();
    if let Some(vars) = f.opt("variables") {
        for (name, v) in check(p, vars.map()).unwrap_or_default() {
            if super::variables::builtin(name).is_some() || name.contains(':') {
                p.push(v.err(format!("variable name {name:?} is reserved")));
                continue;
            }
            if let Some(t) = check(p, read_var_type(&v)) {
                variables.insert(name.to_string(), t);
            }
        }
    }
    let _metadata = f.get("metadata");
    let mut lines = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    if let Some(vols) = f.opt("volumes") {
        for (target, v) in check(p, vols.map()).unwrap_or_default() {
            let t = match container_path(target) {
                Ok(t) => t,
                Err(e) => {
                    p.push(v.err(format!("volume mount point: {e}")));
                    continue;
                }
            };
            if let Some(vol) = check(p, read_volume(&v, &t, &mut lines)) {
                if volumes.insert(t.clone(), vol).is_some() {
                    p.push(v.err(format!("mount point {t} is given twice")));
                }
            }
        }
    }
    let user_id = f.opt("user-id").and_then(|v| check(p, v.id()));
    let group_id = f.opt("group-id").and_then(|v| check(p, v.id()));
    let additional_groups = f
        .opt("additional-groups")
        .and_then(|v| check(p, v.seq().and_then(|s| s.iter().map(Value::id).collect())))
        .unwrap_or_default();
    let mut at = |key: &str, v: &Value| {
        lines.insert(key.to_string(), v.line());
    };
    let memory_limit = f.opt("memory-limit").and_then(|v| {
        at("memory-limit", &v);
        let n = check(p, v.u64())?;
        // lithos's default is i64::MAX, meaning "no limit"; keep that meaning.
        if n >= i64::MAX as u64 {
            return None;
        }
        if n < MIN_MEMORY {
            p.push(v.err(format!(
                "{n} bytes is below the minimum of {MIN_MEMORY} (1Mi)"
            )));
            return None;
        }
        Some(n)
    });
    let cpu_shares = match f.opt("cpu-shares") {
        Some(v) => match check(p, v.bounded(262_144)) {
            Some(n) if n >= 2 => n,
            Some(n) => {
                p.push(v.err(format!("{n} is below the minimum of 2")));
                1024
            }
            None => 1024,
        },
        None => 1024,
    };
    let pids_limit = f.opt("pids-limit").and_then(|v| {
        at("pids-limit", &v);
        match check(p, v.bounded(MAX_PIDS)) {
            Some(0) => {
                p.push(v.err("0 would not even let the workload start"));
                None
            }
            other => other,
        }
    });
    let fileno_limit = f.opt("fileno-limit").and_then(|v| {
        at("fileno-limit", &v);
        match check(p, v.bounded(MAX_FILENO)) {
            Some(n) if n < 3 => {
                p.push(v.err(format!("{n} is below the minimum of 3 (stdio)")));
                None
            }
            other => other,
        }
    });
    let restart_timeout = f.opt("restart-timeout").and_then(|v| {
        at("restart-timeout", &v);
        check(p, v.seconds())
    });
    let kill_timeout = f.opt("kill-timeout").and_then(|v| {
        at("kill-timeout", &v);
        check(p, v.seconds())
    });
    let stop_signal = f
        .opt("stop-signal")
        .and_then(|v| check(p, read_stop_signal(&v)))
        .unwrap_or(libc::SIGTERM);
    let ServiceKeys {
        ready,
        ready_timeout,
        health_check,
        health_interval,
        health_timeout,
        health_failures,
        watchdog_timeout,
    } = read_service_keys(f, p, &mut lines);
    let executable = check(
        p,
        f.req("executable")
            .and_then(|v| read_used_container_path(&v)),
    );
    let arguments = f
        .opt("arguments")
        .and_then(|v| {
            check(
                p,
                v.seq().and_then(|s| {
                    s.iter()
                        .map(|i| i.string().and_then(|x| no_nul(i, x)))
                        .collect()
                }),
            )
        })
        .unwrap_or_default();
    let mut environ = BTreeMap::new();
    if let Some(env) = f.opt("environ") {
        for (k, v) in check(p, env.map()).unwrap_or_default() {
            if !env_name_ok(k) {
                p.push(v.err(format!("{k:?} is not an environment variable name")));
                continue;
            }
            let value = if v.is_null() {
                Some(String::new())
            } else {
                check(p, v.string().and_then(|x| no_nul(&v, x)))
            };
            if let Some(value) = value {
                environ.insert(k.to_string(), value);
            }
        }
    }
    let secrets = super::secrets::read(f, p, &mut lines);
    let workdir = match f.opt("workdir") {
        Some(v) => check(p, read_used_container_path(&v)).unwrap_or_default(),
        None => "/".to_string(),
    };
    let resolv_conf = match f.opt("resolv-conf") {
        Some(v) => check(p, read_resolv(&v)).unwrap_or(DEFAULT_RESOLV),
        None => DEFAULT_RESOLV,
    };
    let hosts_file = match f.opt("hosts-file") {
        Some(v) => check(p, read_hosts(&v)).unwrap_or(DEFAULT_HOSTS),
        None => DEFAULT_HOSTS,
    };
    let uid_map = f
        .opt("uid-map")
        .and_then(|v| check(p, read_id_maps(&v)))
        .unwrap_or_default();
    let gid_map = f
        .opt("gid-map")
        .and_then(|v| check(p, read_id_maps(&v)))
        .unwrap_or_default();
    let stdout_stderr_file = f
        .opt("stdout-stderr-file")
        .and_then(|v| check(p, read_used_container_path(&v)));
    let interactive = f
        .opt("interactive")
        .and_then(|v| check(p, v.bool()))
        .unwrap_or(false);
    let restart_process_only = f
        .opt("restart-process-only")
        .and_then(|v| check(p, v.bool()))
        .unwrap_or(false);
    let normal_exit_codes = f
        .opt("normal-exit-codes")
        .and_then(|v| {
            check(
                p,
                v.seq()
                    .and_then(|s| s.iter().map(|i| i.bounded(255).map(|n| n as i32)).collect()),
            )
        })
        .unwrap_or_default();
    let mut tcp_ports = BTreeMap::new();
    if let Some(ports) = f.opt("tcp-ports") {
        for (k, v) in check(p, ports.map()).unwrap_or_default() {
            if let Some(port) = check(p, read_port(&v)) {
                tcp_ports.insert(k.to_string(), port);
            }
        }
    }
    let capabilities = f
        .opt("capabilities")
        .and_then(|v| check(p, read_capabilities(&v)))
        .unwrap_or_default();

    Some(ContainerConfig {
        kind: kind?,
        variables,
        volumes,
        user_id,
        group_id,
        additional_groups,
        memory_limit,
        cpu_shares,
        pids_limit,
        fileno_limit,
        restart_timeout,
        kill_timeout,
        stop_signal,
        ready,
        ready_timeout,
        health_check,
        health_interval,
        health_timeout,
        health_failures,
        watchdog_timeout,
        executable: executable?,
        arguments,
        environ,
        secret_environ: secrets.environ,
        secret_environ_file: secrets.environ_file,
        secret_files: secrets.files,
        secret_files_dir: secrets.files_dir,
        secret_environ_from_file: None,
        workdir,
        resolv_conf,
        hosts_file,
        uid_map,
        gid_map,
        stdout_stderr_file,
        interactive,
        restart_process_only,
        normal_exit_codes,
        tcp_ports,
        capabilities,
        lines,
    })
}

fn term() -> i32 {
    libc::SIGTERM
}

fn read_resolv(v: &Value) -> Result<ResolvConf, ConfigError> {
    let mut f = v.fields()?;
    let r = ResolvConf {
        mount: opt_bool(&mut f, "mount")?,
        copy_from_host: opt_bool(&mut f, "copy-from-host")?.unwrap_or(true),
    };
    finish_one(f)?;
    Ok(r)
}

fn read_hosts(v: &Value) -> Result<HostsFile, ConfigError> {
    let mut f = v.fields()?;
    let mount = opt_bool(&mut f, "mount")?;
    let copy_from_host = opt_bool(&mut f, "copy-from-host")?.unwrap_or(true);
    let localhost = opt_bool(&mut f, "localhost")?.unwrap_or(!copy_from_host);
    let public_hostname = opt_bool(&mut f, "public-hostname")?.unwrap_or(!copy_from_host);
    finish_one(f)?;
    Ok(HostsFile {
        mount,
        copy_from_host,
        localhost,
        public_hostname,
    })
}

fn read_port(v: &Value) -> Result<TcpPort, ConfigError> {
    let mut f = v.fields()?;
    let fd = f.req("fd")?;
    let fd_num = fd.bounded(MAX_FILENO - 1)? as u32;
    if fd_num == 1 || fd_num == 2 {
        return Err(fd.err("fd 1 and 2 are stdout and stderr; use 0 or 3 and above"));
    }
    let host = match f.opt("host") {
        Some(h) => read_ip(&h)?,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let listen_backlog = match f.opt("listen-backlog") {
        Some(b) => b.bounded(65_535)? as u32,
        None => 128,
    };
    let port = TcpPort {
        fd: fd_num,
        host,
        listen_backlog,
        reuse_addr: opt_bool(&mut f, "reuse-addr")?.unwrap_or(true),
        reuse_port: opt_bool(&mut f, "reuse-port")?.unwrap_or(false),
        set_non_block: opt_bool(&mut f, "set-non-block")?.unwrap_or(false),
        external: opt_bool(&mut f, "external")?.unwrap_or(false),
    };
    finish_one(f)?;
    Ok(port)
}

#[cfg(test)]
#[path = "container_tests.rs"]
mod tests;
