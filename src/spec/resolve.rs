//! Resolving one instance: its master, sandbox and process entry and its
//! checked container config, with every variable substituted, every path
//! and id mapped to the host, into the `InstanceSpec` the knot runs.

use super::*;

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
        let probe = |probe: &Probe, key: &str| -> Result<Ready, Problems> {
            let port = match probe {
                Probe::Fd(fd) => return Ok(Ready::Fd(*fd)),
                Probe::Notify => return Ok(Ready::Notify),
                Probe::Exec(words) => {
                    let mut argv = Vec::with_capacity(words.len());
                    for (i, w) in words.iter().enumerate() {
                        argv.push(
                            variables::substitute(w, &lookup)
                                .map_err(|m| err(&format!("{key}[{i}]"), m))?,
                        );
                    }
                    return Ok(Ready::Exec(argv));
                }
                Probe::Tcp(p) | Probe::Http { port: p, .. } => p,
            };
            let port = variables::substitute(port, &lookup)
                .and_then(|t| variables::parse_port(&t))
                .map_err(|m| err(key, m))?;
            Ok(match probe {
                Probe::Http { path, .. } => Ready::Http {
                    port,
                    path: path.clone(),
                },
                _ => Ready::Tcp(port),
            })
        };
        let ready = c
            .ready
            .as_ref()
            .map(|p| {
                probe(
                    p,
                    if matches!(p, Probe::Exec(_)) {
                        "ready"
                    } else {
                        "ready.port"
                    },
                )
            })
            .transpose()?;
        let ms = |s: f64| (s * 1000.0).round() as u64;
        let health = match &c.health_check {
            None => None,
            Some(p) => Some(Health {
                probe: probe(
                    p,
                    if matches!(p, Probe::Exec(_)) {
                        "health-check"
                    } else {
                        "health-check.port"
                    },
                )?,
                interval_ms: ms(c.health_interval.unwrap_or(DEFAULT_HEALTH_INTERVAL)),
                timeout_ms: ms(c.health_timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT)),
                failures: c.health_failures.unwrap_or(DEFAULT_HEALTH_FAILURES),
            }),
        };
        let watchdog_ms = match (&ready, c.watchdog_timeout) {
            (Some(Ready::Notify), Some(t)) => ((t * 1000.0).round() as u64).max(1),
            _ => 0,
        };
        if ready == Some(Ready::Notify) {
            // As systemd sets them for Type=notify and WatchdogSec=.
            environ.insert("NOTIFY_SOCKET".into(), NOTIFY_SOCKET_PATH.into());
            if watchdog_ms > 0 {
                environ.insert(
                    "WATCHDOG_USEC".into(),
                    watchdog_ms.saturating_mul(1000).to_string(),
                );
                environ.remove("WATCHDOG_PID");
                pid_vars.retain(|v| v != "WATCHDOG_PID");
                pid_vars.push("WATCHDOG_PID".into());
            }
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
        let stdio_log = if matches!(stdio, Stdio::HostFile(_)) {
            s.stdio_log
        } else {
            Default::default()
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
        let secrets = if crate::config::secrets_check::any(c) {
            let mut environ = c.secret_environ.clone();
            if let Some(f) = &c.secret_environ_from_file {
                for (k, v) in &f.environ {
                    environ.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            let (uid, gid) = to_host(ids.uid, ids.gid);
            Secrets {
                key: s.secrets_private_key.clone(),
                namespaces: crate::config::secrets_check::namespaces(s, e),
                environ,
                files: c.secret_files.clone(),
                files_dir: c
                    .secret_files_dir
                    .as_ref()
                    .filter(|_| !c.secret_files.is_empty())
                    .map(|path| SecretFilesDir {
                        path: path.clone(),
                        uid,
                        gid,
                    }),
            }
        } else {
            Secrets::default()
        };
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
            stdio_log,
            service: Service {
                stop_signal: c.stop_signal,
                ready,
                ready_timeout_ms: c.ready_timeout.map_or_else(default_ready_timeout_ms, ms),
                health,
                watchdog_ms,
            },
            secrets,
        })
    }
}
