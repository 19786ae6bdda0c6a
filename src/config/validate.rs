//! Checks across files: a process entry against its sandbox, and a
//! container config against both. Pure functions returning every problem.

use std::collections::{BTreeMap, BTreeSet};

use super::container::{ContainerConfig, TcpPort, Volume};
use super::error::{ConfigError, Problems};
use super::process::{Kind, ProcessEntry};
use super::range::{IdMap, Ranges, map_to_host};
use super::sandbox::Sandbox;
use super::variables::{self, Activation, VarType};

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

/// The ids an instance runs with, and the user-namespace maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
}

/// Resolve and check user and group ids (lithos's rules): allow-users and
/// allow-groups apply to the ids as written (inside the container); with a
/// sandbox map the id must also be mapped; with a container map the id must
/// be inside it and every mapped host range must fit one allowed range.
pub fn ids(file: &str, c: &ContainerConfig, s: &Sandbox) -> Result<Ids, Problems> {
    let mut p = Problems::new();
    let err = |key: &str, msg: String| ConfigError::new(file, msg).key(key.to_string());
    let uid = match c.user_id.or(s.default_user) {
        Some(u) => u,
        None => {
            p.push(err(
                "user-id",
                format!(
                    "no user-id given and sandbox {:?} has no default-user",
                    s.name
                ),
            ));
            0
        }
    };
    let gid = c.group_id.unwrap_or(s.default_group);
    let mut one = |what: &str,
                   key: &str,
                   id: u32,
                   allow: &Ranges,
                   smap: &[IdMap],
                   cmap: &[IdMap],
                   allow_key: &str| {
        if !smap.is_empty() && !cmap.is_empty() {
            p.push(err(
                &format!("{what}-map"),
                format!("both the sandbox and the container give a {what}-map; only one may"),
            ));
            return;
        }
        if !cmap.is_empty() {
            if !cmap
                .iter()
                .any(|m| id >= m.inside && id - m.inside < m.count)
            {
                p.push(err(
                    key,
                    format!("{id} is not inside the container's {what}-map"),
                ));
            }
            for m in cmap {
                if !allow.contains_span(m.outside, m.count) {
                    p.push(err(
                        &format!("{what}-map"),
                        format!(
                            "host ids {}-{} are not within one range of the sandbox's {allow_key} {allow}",
                            m.outside,
                            u64::from(m.outside) + u64::from(m.count) - 1
                        ),
                    ));
                }
            }
            return;
        }
        if !allow.contains(id) {
            p.push(err(
                key,
                format!("{id} is not in the sandbox's {allow_key} {allow}"),
            ));
        } else if !smap.is_empty() && map_to_host(smap, id).is_none() {
            p.push(err(
                key,
                format!("{id} is not mapped by the sandbox's {what}-map"),
            ));
        }
    };
    one(
        "uid",
        "user-id",
        uid,
        &s.allow_users,
        &s.uid_map,
        &c.uid_map,
        "allow-users",
    );
    one(
        "gid",
        "group-id",
        gid,
        &s.allow_groups,
        &s.gid_map,
        &c.gid_map,
        "allow-groups",
    );
    for &g in &c.additional_groups {
        one(
            "gid",
            "additional-groups",
            g,
            &s.allow_groups,
            &s.gid_map,
            &c.gid_map,
            "allow-groups",
        );
    }
    let (uid_map, gid_map) = if !s.uid_map.is_empty() || !s.gid_map.is_empty() {
        (s.uid_map.clone(), s.gid_map.clone())
    } else {
        (c.uid_map.clone(), c.gid_map.clone())
    };
    p.into_result(Ids {
        uid,
        gid,
        groups: c.additional_groups.clone(),
        uid_map,
        gid_map,
    })
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

/// A container config against its sandbox and process entry.
pub fn container(file: &str, c: &ContainerConfig, s: &Sandbox, e: &ProcessEntry) -> Problems {
    let mut p = Problems::new();
    let err = |key: &str, msg: String| ConfigError::new(file, msg).key(key.to_string());

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

    for (target, vol) in &c.volumes {
        let key = format!("volumes.{target}");
        if target == "/"
            || ["/proc", "/sys", "/dev"]
                .iter()
                .any(|k| target == k || target.starts_with(&format!("{k}/")))
        {
            p.push(err(
                &key,
                format!("a volume may not be mounted on {target}"),
            ));
        }
        match vol {
            Volume::Readonly(v) => {
                if Sandbox::resolve_vpath(&s.readonly_paths, v).is_none()
                    && Sandbox::resolve_vpath(&s.writable_paths, v).is_none()
                {
                    p.push(err(&key, format!(
                        "virtual path {v} is not in sandbox {:?}'s readonly-paths or writable-paths",
                        s.name
                    )));
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
    if !c.secret_environ.is_empty() || c.secret_environ_file.is_some() {
        p.push(err(
            "secret-environ",
            "secrets are not supported by this version of cairn; \
            the instance would start without them, so it is refused"
                .to_string(),
        ));
    }
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
    for name in ["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"] {
        let systemd = c.variables.values().any(|t| {
            matches!(
                t,
                VarType::TcpPort {
                    activation: Activation::Systemd
                }
            )
        });
        if systemd && c.environ.contains_key(name) {
            p.push(err(
                &format!("environ.{name}"),
                "is set by systemd socket activation".into(),
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
    // Every reference must be declared (or a built-in).
    let mut referenced = BTreeSet::new();
    let mut refs = |key: String, text: &str, p: &mut Problems| {
        for r in variables::references(text) {
            if variables::builtin(r).is_none() && !c.variables.contains_key(r) {
                p.push(err(&key, format!("@{{{r}}} is not a declared variable")));
            }
            referenced.insert(r.to_string());
        }
    };
    for (i, a) in c.arguments.iter().enumerate() {
        refs(format!("arguments[{i}]"), a, p);
    }
    for (k, v) in &c.environ {
        if !variables::is_pid_placeholder(v) {
            refs(format!("environ.{k}"), v, p);
        }
    }
    for k in c.tcp_ports.keys() {
        refs(format!("tcp-ports.{k}"), k, p);
    }
    // Every declared variable must be given, of its type. A Command may
    // leave unused ones out (lithos_cmd runs it; only referenced or
    // systemd-activated ones matter there).
    for (name, t) in &c.variables {
        match e.variables.get(name) {
            None => {
                let needed = !e.kind.is_command()
                    || referenced.contains(name)
                    || matches!(
                        t,
                        VarType::TcpPort {
                            activation: Activation::Systemd
                        }
                    );
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
                }
            }
        }
    }
    // Ports (after substitution) must be allowed by the sandbox.
    if !p.is_empty() {
        return;
    }
    let name = format!("{}/{}.0", s.name, e.name);
    match ports(c, e, &builtins(&s.name, e, &name)) {
        Err(m) => p.push(err("tcp-ports", m)),
        Ok((ports, _)) => {
            for (num, port) in &ports {
                let bridged_internal = s.bridged_network.is_some() && !port.external;
                if !bridged_internal && !s.allow_tcp_ports.contains(u32::from(*num)) {
                    let msg = format!(
                        "port {num} is not in sandbox {:?}'s allow-tcp-ports {}",
                        s.name, s.allow_tcp_ports
                    );
                    // A literal port is the image's doing; one that came
                    // from a variable is the process entry's.
                    if c.tcp_ports.contains_key(&num.to_string()) {
                        p.push(err(&format!("tcp-ports.{num}"), msg));
                    } else {
                        p.push(e.err("variables", format!("{msg} (used by {file})")));
                    }
                }
                if port.fd >= 3 && u64::from(port.fd) >= c.fileno_limit {
                    p.push(err(
                        "tcp-ports",
                        format!(
                            "port {num} uses fd {} but fileno-limit is {}",
                            port.fd, c.fileno_limit
                        ),
                    ));
                }
            }
        }
    }
}

/// A container config on its own (`check --container`): every `@{name}` it
/// uses is declared or built in, and literal port keys are ports.
pub fn standalone(file: &str, c: &ContainerConfig) -> Problems {
    let mut p = Problems::new();
    let err = |key: String, msg: String| ConfigError::new(file, msg).key(key);
    let mut texts: Vec<(String, &str)> = Vec::new();
    for (i, a) in c.arguments.iter().enumerate() {
        texts.push((format!("arguments[{i}]"), a));
    }
    for (k, v) in &c.environ {
        if !variables::is_pid_placeholder(v) {
            texts.push((format!("environ.{k}"), v));
        }
    }
    for k in c.tcp_ports.keys() {
        texts.push((format!("tcp-ports.{k}"), k));
        if variables::references(k).is_empty()
            && let Err(m) = variables::parse_port(k)
        {
            p.push(err(format!("tcp-ports.{k}"), m));
        }
    }
    for (key, text) in texts {
        for r in variables::references(text) {
            if variables::builtin(r).is_none() && !c.variables.contains_key(r) {
                p.push(err(
                    key.clone(),
                    format!("@{{{r}}} is not a declared variable"),
                ));
            }
        }
    }
    if c.interactive && c.kind == Kind::Daemon {
        p.push(err(
            "interactive".into(),
            "only a Command can be interactive".into(),
        ));
    }
    p
}
