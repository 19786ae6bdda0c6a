//! `sandboxes/NAME.yaml`: what containers of one sandbox may do (platform
//! operator, trusted).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ceilings::Ceilings;
use super::error::{ConfigError, Problems};
use super::isolation::Isolation;
use super::master::Master;
use super::range::{IdMap, Ranges, read_id_maps, read_ranges};
use super::reader::{Value, check};
use super::stdio_log::StdioLog;
use super::values::{read_capabilities, read_ip};
use super::{LogLevel, host_path, is_safe_name, read_file_capped, yaml};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The file stem: the sandbox's name.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The process config of this sandbox (absolute).
    pub config_file: PathBuf,
    pub image_dir: PathBuf,
    pub image_dir_levels: usize,
    pub used_images_list: Option<PathBuf>,
    pub log_file: PathBuf,
    pub log_level: Option<LogLevel>,
    /// Virtual path (inside-container style, normalized) → host dir.
    pub readonly_paths: BTreeMap<String, PathBuf>,
    pub writable_paths: BTreeMap<String, PathBuf>,
    pub allow_users: Ranges,
    pub default_user: Option<u32>,
    pub allow_groups: Ranges,
    pub default_group: u32,
    pub allow_tcp_ports: Ranges,
    pub additional_hosts: BTreeMap<String, IpAddr>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    pub auto_clean: bool,
    pub resolv_conf: PathBuf,
    pub hosts_file: PathBuf,
    pub bridged_network: Option<BridgedNetwork>,
    pub secrets_private_key: Option<PathBuf>,
    pub secrets_namespaces: Vec<String>,
    /// Capabilities a container of this sandbox may ask to keep.
    pub allow_capabilities: Vec<String>,
    /// The most (least, for restart-timeout) a container may ask for.
    pub ceilings: Ceilings,
    /// `seccomp`, `allow-user-namespaces`, `sysfs`.
    #[serde(default)]
    pub isolation: Isolation,
    /// How the sandbox's stdio log is capped and prefixed.
    #[serde(default)]
    pub stdio_log: StdioLog,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgedNetwork {
    pub bridge: String,
    /// The network, as `ADDR/PREFIX`.
    pub network: (IpAddr, u8),
    pub default_gateway: Option<IpAddr>,
    pub after_setup_command: Vec<String>,
}

impl BridgedNetwork {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let (net, prefix) = self.network;
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(prefix))
                };
                u32::from(n) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(prefix))
                };
                u128::from(n) & mask == u128::from(*a) & mask
            }
            _ => false,
        }
    }
}

fn read_vpaths(v: &Value, base: &Path) -> Result<BTreeMap<String, PathBuf>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, val) in v.map()? {
        let key = super::container_path(k).map_err(|e| val.err(format!("virtual path: {e}")))?;
        out.insert(key, host_path(&val, base)?);
    }
    Ok(out)
}

fn read_network(v: &Value) -> Result<(IpAddr, u8), ConfigError> {
    let s = v.str()?;
    let bad = || v.err(format!("{s:?} is not a network like 10.0.0.0/16"));
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok((addr, prefix))
}

impl Sandbox {
    /// Read `path` (a `NAME.yaml` in sandboxes-dir).
    pub fn load(master: &Master, path: &Path) -> Result<Sandbox, Problems> {
        let shown = path.display().to_string();
        let bytes = read_file_capped(path, yaml::TRUSTED.max_bytes)
            .map_err(|e| ConfigError::new(&shown, e))?;
        Sandbox::parse(master, path, &bytes)
    }

    pub fn parse(master: &Master, path: &Path, bytes: &[u8]) -> Result<Sandbox, Problems> {
        let file = path.display().to_string();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if !is_safe_name(&name) {
            return Err(ConfigError::new(
                &file,
                format!(
                    "sandbox name {name:?} (the file name) must be letters, digits, '-' and '_'"
                ),
            )
            .into());
        }
        let ast = yaml::parse(&file, bytes, &yaml::TRUSTED)?;
        let root = Value::root(&file, &ast);
        let mut p = Problems::new();
        let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut f = root.fields().map_err(Problems::from)?;

        let config_file = match f.opt("config-file") {
            Some(v) => check(&mut p, host_path(&v, &master.processes_dir)).unwrap_or_default(),
            None => master.processes_dir.join(format!("{name}.yaml")),
        };
        let image_dir = match f.req("image-dir") {
            Ok(v) => check(&mut p, host_path(&v, &base)).unwrap_or_default(),
            Err(e) => {
                p.push(e);
                PathBuf::new()
            }
        };
        let image_dir_levels = match f.opt("image-dir-levels") {
            Some(v) => match check(&mut p, v.u64()) {
                Some(n) if (1..=16).contains(&n) => n as usize,
                Some(n) => {
                    p.push(v.err(format!("{n} is not between 1 and 16")));
                    1
                }
                None => 1,
            },
            None => 1,
        };
        let used_images_list = f
            .opt("used-images-list")
            .and_then(|v| check(&mut p, host_path(&v, &base)));
        let log_file = match f.opt("log-file") {
            Some(v) => check(&mut p, host_path(&v, &master.default_log_dir)).unwrap_or_default(),
            None => master.default_log_dir.join(format!("{name}.log")),
        };
        let log_level = f
            .opt("log-level")
            .and_then(|v| check(&mut p, LogLevel::read(&v)));
        let readonly_paths = f
            .opt("readonly-paths")
            .and_then(|v| check(&mut p, read_vpaths(&v, &base)))
            .unwrap_or_default();
        let writable_paths = f
            .opt("writable-paths")
            .and_then(|v| check(&mut p, read_vpaths(&v, &base)))
            .unwrap_or_default();
        let mut ranges = |key: &str, p: &mut Problems| {
            f.opt(key)
                .and_then(|v| check(p, read_ranges(&v)))
                .unwrap_or_default()
        };
        let allow_users = ranges("allow-users", &mut p);
        let allow_groups = ranges("allow-groups", &mut p);
        let allow_tcp_ports = ranges("allow-tcp-ports", &mut p);
        if allow_users.is_empty() {
            p.push(root.err("allow-users is empty: no container of this sandbox could run"));
        }
        if allow_groups.is_empty() {
            p.push(root.err("allow-groups is empty: no container of this sandbox could run"));
        }
        let default_user = f.opt("default-user").and_then(|v| check(&mut p, v.id()));
        let default_group = f
            .opt("default-group")
            .and_then(|v| check(&mut p, v.id()))
            .unwrap_or(0);
        let mut additional_hosts = BTreeMap::new();
        if let Some(v) = f.opt("additional-hosts") {
            for (host, ip) in check(&mut p, v.map()).unwrap_or_default() {
                if host.is_empty()
                    || !host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                {
                    p.push(ip.err(format!("{host:?} is not a host name")));
                    continue;
                }
                if let Some(addr) = check(&mut p, read_ip(&ip)) {
                    additional_hosts.insert(host.to_string(), addr);
                }
            }
        }
        let uid_map = f
            .opt("uid-map")
            .and_then(|v| check(&mut p, read_id_maps(&v)))
            .unwrap_or_default();
        let gid_map = f
            .opt("gid-map")
            .and_then(|v| check(&mut p, read_id_maps(&v)))
            .unwrap_or_default();
        let auto_clean = f
            .opt("auto-clean")
            .and_then(|v| check(&mut p, v.bool()))
            .unwrap_or(true);
        let resolv_conf = match f.opt("resolv-conf") {
            Some(v) => check(&mut p, host_path(&v, &base)).unwrap_or_default(),
            None => PathBuf::from("/etc/resolv.conf"),
        };
        let hosts_file = match f.opt("hosts-file") {
            Some(v) => check(&mut p, host_path(&v, &base)).unwrap_or_default(),
            None => PathBuf::from("/etc/hosts"),
        };
        let bridged_network = f.opt("bridged-network").and_then(|v| {
            let mut b = check(&mut p, v.fields())?;
            let bridge = check(&mut p, b.req("bridge").and_then(|x| x.string()));
            let network = check(&mut p, b.req("network").and_then(|x| read_network(&x)));
            let default_gateway = b
                .opt("default-gateway")
                .and_then(|x| check(&mut p, read_ip(&x)));
            let after_setup_command = b
                .opt("after-setup-command")
                .and_then(|x| {
                    check(
                        &mut p,
                        x.seq().and_then(|s| s.iter().map(|i| i.string()).collect()),
                    )
                })
                .unwrap_or_default();
            b.finish(&mut p);
            Some(BridgedNetwork {
                bridge: bridge?,
                network: network?,
                default_gateway,
                after_setup_command,
            })
        });
        let secrets_private_key = f
            .opt("secrets-private-key")
            .and_then(|v| check(&mut p, host_path(&v, &base)));
        let secrets_namespaces = f
            .opt("secrets-namespaces")
            .and_then(|v| {
                check(
                    &mut p,
                    v.seq().and_then(|s| s.iter().map(|i| i.string()).collect()),
                )
            })
            .unwrap_or_default();
        let allow_capabilities = f
            .opt("allow-capabilities")
            .and_then(|v| check(&mut p, read_capabilities(&v)))
            .unwrap_or_default();
        let ceilings = Ceilings::read(&mut f, &mut p);
        let isolation = Isolation::read(&mut f, &mut p);
        let stdio_log = StdioLog::read(&mut f, &mut p);
        f.finish(&mut p);
        p.into_result(Sandbox {
            name,
            path: path.to_path_buf(),
            config_file,
            image_dir,
            image_dir_levels,
            used_images_list,
            log_file,
            log_level,
            readonly_paths,
            writable_paths,
            allow_users,
            default_user,
            allow_groups,
            default_group,
            allow_tcp_ports,
            additional_hosts,
            uid_map,
            gid_map,
            auto_clean,
            resolv_conf,
            hosts_file,
            bridged_network,
            secrets_private_key,
            secrets_namespaces,
            allow_capabilities,
            ceilings,
            isolation,
            stdio_log,
        })
    }

    /// Resolve a virtual path (e.g. `/data/sub`) through a map of virtual
    /// paths: the longest virtual path that is a component-wise prefix wins.
    pub fn resolve_vpath(map: &BTreeMap<String, PathBuf>, vpath: &str) -> Option<PathBuf> {
        let (base, rest) = Sandbox::split_vpath(map, vpath)?;
        Some(if rest.is_empty() {
            base
        } else {
            base.join(rest)
        })
    }

    /// Like `resolve_vpath`, but returns the host dir of the matching
    /// virtual path (trusted) and the rest of the path (from the container
    /// config, untrusted) separately, so the rest can be resolved without
    /// following symlinks.
    pub fn split_vpath(map: &BTreeMap<String, PathBuf>, vpath: &str) -> Option<(PathBuf, String)> {
        let mut best: Option<(&String, &PathBuf)> = None;
        for (k, host) in map {
            let rest = if k == "/" {
                Some(vpath.trim_start_matches('/'))
            } else {
                vpath.strip_prefix(k.as_str()).and_then(|r| {
                    if r.is_empty() {
                        Some("")
                    } else {
                        r.strip_prefix('/')
                    }
                })
            };
            if rest.is_some() && best.is_none_or(|(b, _)| k.len() > b.len()) {
                best = Some((k, host));
            }
        }
        let (k, host) = best?;
        let rest = if k == "/" {
            vpath.trim_start_matches('/')
        } else {
            vpath[k.len()..].trim_start_matches('/')
        };
        Some((host.clone(), rest.to_string()))
    }
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
