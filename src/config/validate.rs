//! Checks across files: a process entry against its sandbox, and a
//! container config against both. Pure functions returning every problem.

use std::collections::{BTreeMap, BTreeSet};

use super::ceilings;
use super::container::{ContainerConfig, TcpPort, Volume};
use super::error::{ConfigError, Problems};
use super::ids::ids;
use super::probe::Probe;
use super::process::{Kind, ProcessEntry};
use super::sandbox::Sandbox;
use super::variables::{self, Activation, VarType};
use super::volume::SETID_BITS;

/// Parse and validate a container config: the pure function of
/// (bytes, sandbox, process entry) that decides whether an instance may run.
pub fn parse_and_validate(
    file: &str,
    bytes: &[u8],
    sandbox: &Sandbox,
    entry: &ProcessEntry,
) -> Result<ContainerConfig, Problems> {
    let cfg = super::container::parse(file, bytes)?;
    let problems = container(file, &cfg, sandbox, entry);
    problems.into_result(cfg)
}

/// A process entry against its sandbox (no image needed).
pub fn entry(processes_file: &str, sandbox: &Sandbox, e: &ProcessEntry) -> Problems {
    let _ = processes_file;
    let mut p = Problems::new();
    let err = |key: &str, msg: String| e.err(key, msg);
    let levels = e.image.split('/').count();
    if levels != sandbox.image_dir_levels {
        p.push(err(
            "image",
            format!(
                "image {:?} has {levels} path component(s); sandbox {:?} has image-dir-levels {}",
                e.image, sandbox.name, sandbox.image_dir_levels
            ),
        ));
    }
    match &sandbox.bridged_network {
        Some(_) => {
            if e.kind == Kind::Command && e.ip_addresses.is_empty() {
                p.push(err(
                    "ip-addresses",
                    "a Command in a bridged sandbox needs an ip-address".to_string(),
                ));
            }
            if e.kind.is_daemon() && e.ip_addresses.len() != e.instances as usize {
                p.push(err(
                    "ip-addresses",
                    format!(
                        "{} ip-addresses for {} instances; a bridged sandbox needs one per instance",
                        e.ip_addresses.len(),
                        e.instances
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            for ip in &e.ip_addresses {
                if !seen.insert(ip) {
                    p.push(err("ip-addresses", format!("{ip} is given twice")));
                }
            }
        }
        None => {
            if !e.ip_addresses.is_empty() {
                p.push(err(
                    "ip-addresses",
                    format!(
                        "sandbox {:?} has no bridged-network, so ip-addresses cannot be used",
                        sandbox.name
                    ),
                ));
            }
        }
    }
    p
}

/// Things that are legal but probably not meant (printed by `cairn check`,
/// logged by the tree; they never stop an instance).
pub fn entry_warnings(
    processes_file: &str,
    sandbox: &Sandbox,
    e: &ProcessEntry,
) -> Vec<ConfigError> {
    let mut w = Vec::new();
    if let Some(net) = &sandbox.bridged_network {
        for ip in &e.ip_addresses {
            // lithos_check refuses this, but lithos's own examples do it, and
            // a route via the default gateway can make it work.
            if !net.contains(ip) {
                w.push(
                    ConfigError::new(
                        processes_file,
                        format!(
                            "{ip} is outside the sandbox network {}/{}",
                            net.network.0, net.network.1
                        ),
                    )
                    .at(e.line)
                    .key(format!("{}.ip-addresses", e.name)),
                );
            }
        }
    }
    w
}

/// The variable values of an entry: what it provides, for declared names.
fn lookup_fn<'a>(
    e: &'a ProcessEntry,
    builtins: &'a BTreeMap<&'static str, String>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| {
        if let Some(b) = variables::builtin(name) {
            return builtins.get(b).cloned();
        }
        e.variables.get(name).cloned()
    }
}

/// Built-in values for instance `index` of `e` in `sandbox`.
pub fn builtins(sandbox: &str, e: &ProcessEntry, name: &str) -> BTreeMap<&'static str, String> {
    let _ = sandbox;
    let mut b = BTreeMap::new();
    b.insert("name", name.to_string());
    b.insert("config_filename", e.config.clone());
    b
}

/// Ports after substitution: port number → settings (systemd-activated
/// variables included, at fds from 3 in variable-name order), plus the
/// `LISTEN_FDNAMES` list.
pub fn ports(
    c: &ContainerConfig,
    e: &ProcessEntry,
    builtins: &BTreeMap<&'static str, String>,
) -> Result<(BTreeMap<u16, TcpPort>, Vec<String>), String> {
    let lookup = lookup_fn(e, builtins);
    let mut out = BTreeMap::new();
    for (key, port) in &c.tcp_ports {
        let text = variables::substitute(key, &lookup)
            .map_err(|m| format!("tcp-ports key {key:?}: {m}"))?;
        let num =
            variables::parse_port(&text).map_err(|m| format!("tcp-ports key {key:?}: {m}"))?;
        if out.insert(num, port.clone()).is_some() {
            return Err(format!("tcp port {num} is given twice"));
        }
    }
    let mut names = Vec::new();
    let mut fd = 3u32;
    for (name, t) in &c.variables {
        if let VarType::TcpPort {
            activation: Activation::Systemd,
        } = t
        {
            let value = e
                .variables
                .get(name)
                .ok_or_else(|| format!("systemd-activated port variable {name:?} is not given"))?;
            let num =
                variables::parse_port(value).map_err(|m| format!("variable {name:?}: {m}"))?;
            out.insert(num, TcpPort::systemd(fd));
            names.push(name.clone());
            fd += 1;
        }
    }
    let mut fds = BTreeSet::new();
    for (num, port) in &out {
        if !fds.insert(port.fd) {
            return Err(format!(
                "port {num} uses fd {} which another port uses too",
                port.fd
            ));
        }
    }
    Ok((out, names))
}

fn has_systemd_ports(c: &ContainerConfig) -> bool {
    c.variables.values().any(|t| {
        matches!(
            t,
            VarType::TcpPort {
                activation: Activation::Systemd
            }
        )
    })
}

/// Every `@{name}` a config uses, with the key it is used under.
fn references(c: &ContainerConfig) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    for (i, a) in c.arguments.iter().enumerate() {
        for r in variables::references(a) {
            out.push((format!("arguments[{i}]"), r));
        }
    }
    for (k, v) in &c.environ {
        if !variables::is_pid_placeholder(v) {
            for r in variables::references(v) {
                out.push((format!("environ.{k}"), r));
            }
        }
    }
    for k in c.tcp_ports.keys() {
        for r in variables::references(k) {
            out.push((format!("tcp-ports.{k}"), r));
        }
    }
    if let Some(port) = c.ready.as_ref().and_then(|r| r.port()) {
        for r in variables::references(port) {
            out.push(("ready.port".to_string(), r));
        }
    }
    if let Some(port) = c.health_check.as_ref().and_then(|r| r.port()) {
        for r in variables::references(port) {
            out.push(("health-check.port".to_string(), r));
        }
    }
    out
}

/// What can be checked of a container config on its own (also used by
/// `check --container`): mount targets, kinds of features, variables used
/// but not declared, literal ports.
pub fn standalone(file: &str, c: &ContainerConfig) -> Problems {
    let mut p = Problems::new();
    let err = |key: &str, msg: String| ConfigError::new(file, msg).key(key.to_string());
    for target in c.volumes.keys() {
        if target == "/"
            || ["/proc", "/sys", "/dev"]
                .iter()
                .any(|k| target == k || target.starts_with(&format!("{k}/")))
        {
            p.push(err(
                &format!("volumes.{target}"),
                format!("a volume may not be mounted on {target}"),
            ));
        }
    }
    for (target, vol) in &c.volumes {
        if let Some(mode) = vol.mode().filter(|m| m & SETID_BITS != 0) {
            let key = format!("volumes.{target}.mode");
            let line = c.lines.get(&key).copied().unwrap_or(0);
            let msg = format!(
                "{mode:#o} has the setuid/setgid bits ({SETID_BITS:#o}); a volume may not have them"
            );
            p.push(err(&key, msg).at(line));
        }
    }
    super::secrets_check::standalone(file, c, &mut p);
    if c.interactive && c.kind == Kind::Daemon {
        p.push(err(
            "interactive",
            "only a Command can be interactive".into(),
        ));
    }
    if c.restart_process_only && c.kind == Kind::Command {
        p.push(err(
            "restart-process-only",
            "only a Daemon can restart its process".into(),
        ));
    }
    if has_systemd_ports(c) {
        for name in ["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"] {
            if c.environ.contains_key(name) {
                p.push(err(
                    &format!("environ.{name}"),
                    "is set by systemd socket activation".into(),
                ));
            }
        }
    }
    for (key, r) in references(c) {
        if variables::builtin(r).is_none() && !c.variables.contains_key(r) {
            p.push(err(&key, format!("@{{{r}}} is not a declared variable")));
        }
    }
    for k in c.tcp_ports.keys() {
        if variables::references(k).is_empty()
            && let Err(m) = variables::parse_port(k)
        {
            p.push(err(&format!("tcp-ports.{k}"), m));
        }
    }
    super::probe_check::check(c, &mut p, &err);
    p
}

/// A container config against its sandbox and process entry.
pub fn container(file: &str, c: &ContainerConfig, s: &Sandbox, e: &ProcessEntry) -> Problems {
    let mut p = standalone(file, c);
    super::secrets_check::validate(file, c, s, e, &mut p);
    let err = |key: &str, msg: String| ConfigError::new(file, msg).key(key.to_string());

    if let Some(Probe::Fd(fd)) = &c.ready {
        let limit = s.ceilings.fileno_for(c);
        if u64::from(*fd) >= limit {
            let line = c.lines.get("ready").copied().unwrap_or(0);
            p.push(
                err(
                    "ready",
                    format!("fd {fd} is not below the instance's fileno-limit ({limit})"),
                )
                .at(line),
            );
        }
    }

    let kind_ok = match e.kind {
        Kind::Daemon => c.kind != Kind::Command,
        Kind::Command => c.kind != Kind::Daemon,
        Kind::CommandOrDaemon => c.kind == Kind::CommandOrDaemon,
    };
    if !kind_ok {
        p.push(err(
            "kind",
            format!(
                "the container is a {:?} but process entry {:?} is a {:?}",
                c.kind, e.name, e.kind
            ),
        ));
    }
    if let Err(more) = ids(file, c, s) {
        p.extend(more);
    }
    p.extend(ceilings::check_container(file, c, &s.ceilings, &s.path));
    for (target, vol) in &c.volumes {
        let key = format!("volumes.{target}");
        match vol {
            Volume::Readonly(v) => {
                if Sandbox::resolve_vpath(&s.readonly_paths, v).is_none()
                    && Sandbox::resolve_vpath(&s.writable_paths, v).is_none()
                {
                    p.push(err(
                        &key,
                        format!(
                            "virtual path {v} is not in sandbox {:?}'s readonly-paths or writable-paths",
                            s.name
                        ),
                    ));
                }
            }
            Volume::Persistent { path, .. } => {
                if Sandbox::resolve_vpath(&s.writable_paths, path).is_none() {
                    p.push(err(
                        &key,
                        format!(
                            "virtual path {path} is not in sandbox {:?}'s writable-paths",
                            s.name
                        ),
                    ));
                }
            }
            Volume::Tmpfs { .. } | Volume::Statedir { .. } => {}
        }
    }
    for cap in &c.capabilities {
        if !s.allow_capabilities.contains(cap) {
            p.push(err(
                "capabilities",
                format!("{cap} is not in sandbox {:?}'s allow-capabilities", s.name),
            ));
        }
    }
    variables_check(file, c, s, e, &mut p);
    p
}

fn variables_check(
    file: &str,
    c: &ContainerConfig,
    s: &Sandbox,
    e: &ProcessEntry,
    p: &mut Problems,
) {
    let err = |key: &str, msg: String| ConfigError::new(file, msg).key(key.to_string());
    let referenced: BTreeSet<&str> = references(c).into_iter().map(|(_, r)| r).collect();
    // Every declared variable must be given, of its type. A Command may
    // leave unused ones out (lithos_cmd runs it; only referenced or
    // systemd-activated ones matter there).
    for (name, t) in &c.variables {
        let systemd = matches!(
            t,
            VarType::TcpPort {
                activation: Activation::Systemd
            }
        );
        match e.variables.get(name) {
            None => {
                let needed =
                    e.kind != Kind::Command || referenced.contains(name.as_str()) || systemd;
                if needed {
                    p.push(e.err(
                        &format!("variables.{name}"),
                        format!(
                            "{file} declares {name} as {} but no value is given",
                            t.describe()
                        ),
                    ));
                }
            }
            Some(value) => {
                if let Err(m) = t.check(value) {
                    p.push(e.err(
                        &format!("variables.{name}"),
                        format!("{m} (declared {} in {file})", t.describe()),
                    ));
                } else if let VarType::TcpPort { .. } = t
                    && s.bridged_network.is_none()
                    && let Ok(port) = variables::parse_port(value)
                    && !s.allow_tcp_ports.contains(u32::from(port))
                {
                    p.push(e.err(
                        &format!("variables.{name}"),
                        format!(
                            "port {port} is not in sandbox {:?}'s allow-tcp-ports {} (declared !TcpPort in {file})",
                            s.name, s.allow_tcp_ports
                        ),
                    ));
                }
            }
        }
    }
    if !p.is_empty() {
        return;
    }
    // Ports after substitution must be allowed by the sandbox.
    let name = format!("{}/{}.0", s.name, e.name);
    match ports(c, e, &builtins(&s.name, e, &name)) {
        Err(m) => p.push(err("tcp-ports", m)),
        Ok((ports, _)) => {
            for (num, port) in &ports {
                let bridged_internal = s.bridged_network.is_some() && !port.external;
                if !bridged_internal && !s.allow_tcp_ports.contains(u32::from(*num)) {
                    p.push(err(
                        &format!("tcp-ports.{num}"),
                        format!(
                            "port {num} is not in sandbox {:?}'s allow-tcp-ports {}",
                            s.name, s.allow_tcp_ports
                        ),
                    ));
                }
                let fileno = s.ceilings.fileno_for(c);
                if port.fd >= 3 && u64::from(port.fd) >= fileno {
                    p.push(err(
                        &format!("tcp-ports.{num}"),
                        format!(
                            "port {num} uses fd {} but fileno-limit is {fileno}",
                            port.fd
                        ),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "validate_entry_tests.rs"]
mod entry_tests;
