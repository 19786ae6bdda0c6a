use super::*;
use crate::config::variables::Activation;

fn parse_ok(text: &str) -> ContainerConfig {
    match parse("/img/config.yaml", text.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    parse("/img/config.yaml", text.as_bytes())
        .unwrap_err()
        .to_string()
}

#[test]
fn defaults() {
    let c = parse_ok("executable: /bin/true\n");
    assert_eq!(c.kind, Kind::Daemon);
    assert!(c.variables.is_empty() && c.volumes.is_empty());
    assert_eq!((c.user_id, c.group_id), (None, None));
    assert!(c.additional_groups.is_empty());
    assert_eq!(c.memory_limit, None);
    assert_eq!(c.cpu_shares, 1024);
    assert_eq!(c.pids_limit, None);
    // Not given: the sandbox's ceilings decide (see ceilings_tests.rs).
    assert_eq!(c.fileno_limit, None);
    assert_eq!(c.restart_timeout, None);
    assert_eq!(c.kill_timeout, None);
    assert!(c.lines.is_empty(), "{:?}", c.lines);
    assert_eq!(c.executable, "/bin/true");
    assert!(c.arguments.is_empty() && c.environ.is_empty());
    assert!(c.secret_environ.is_empty() && c.secret_environ_file.is_none());
    assert_eq!(c.workdir, "/");
    assert_eq!(
        c.resolv_conf,
        ResolvConf {
            mount: None,
            copy_from_host: true
        }
    );
    assert_eq!(
        c.hosts_file,
        HostsFile {
            mount: None,
            copy_from_host: true,
            localhost: false,
            public_hostname: false
        }
    );
    assert!(c.uid_map.is_empty() && c.gid_map.is_empty());
    assert_eq!(c.stdout_stderr_file, None);
    assert!(!c.interactive && !c.restart_process_only);
    assert!(c.normal_exit_codes.is_empty() && c.tcp_ports.is_empty());
    assert!(c.capabilities.is_empty());
}

#[test]
fn every_key() {
    let c = parse_ok(
        "kind: CommandOrDaemon\n\
         variables:\n  port: !TcpPort\n  sock: !TcpPort {activation: systemd}\n  lang: !Choice [ru, ua]\n  \
           n: !Name\n  d: !DottedName\n\
         metadata: {anything: [goes, {here: 1}]}\n\
         volumes:\n  /tmp: !Tmpfs {size: 10Mi, mode: 0o1777}\n  /data: !Persistent {path: /data/x, mkdir: true, mode: 0o700, user: 1, group: 2}\n  \
           /ro: !Readonly /ro\n  /state: !Statedir {path: /sub, mode: 0o755, user: 3, group: 4}\n  \
           /p2: !Persistent /data\n  /s2: !Statedir {}\n\
         user_id: 1\ngroup-id: 2\nadditional-groups: [3, 4]\nmemory-limit: 100Mi\ncpu-shares: 3\n\
         pids-limit: 64\nfileno-limit: 2048\nrestart-timeout: 0.5\nkill-timeout: 10\n\
         executable: /usr/bin/python3\narguments: [-c, '@{port}']\n\
         environ:\n  A: '1'\n  B: '@{lithos:pid}'\n  EMPTY:\n\
         workdir: /app\nresolv-conf: {mount: false, copy-from-host: false}\n\
         hosts-file: {mount: true, copy_from_host: false, localhost: false}\n\
         uid-map: [{inside: 0, outside: 1000, count: 10}]\ngid-map: [{inside: 0, outside: 2000, count: 10}]\n\
         stdout-stderr-file: /log/out.log\ninteractive: true\nrestart-process-only: true\n\
         normal-exit-codes: [0, 3]\n\
         tcp-ports:\n  '@{port}': {fd: 3, host: 127.0.0.1, listen-backlog: 10, reuse-addr: false,\n    \
           reuse-port: true, set-non-block: true, external: true}\n  80: {fd: 0}\n\
         capabilities: [CAP_NET_BIND_SERVICE]\n",
    );
    assert_eq!(c.kind, Kind::CommandOrDaemon);
    assert_eq!(
        c.variables["port"],
        VarType::TcpPort {
            activation: Activation::None
        }
    );
    assert_eq!(
        c.variables["sock"],
        VarType::TcpPort {
            activation: Activation::Systemd
        }
    );
    assert_eq!(
        c.variables["lang"],
        VarType::Choice(vec!["ru".into(), "ua".into()])
    );
    assert_eq!(c.variables["n"], VarType::Name);
    assert_eq!(c.variables["d"], VarType::DottedName);
    assert_eq!(
        c.volumes["/tmp"],
        Volume::Tmpfs {
            size: Some(10 << 20),
            mode: 0o1777
        }
    );
    assert_eq!(
        c.volumes["/data"],
        Volume::Persistent {
            path: "/data/x".into(),
            mkdir: true,
            mode: 0o700,
            user: Some(1),
            group: Some(2)
        }
    );
    assert_eq!(c.volumes["/ro"], Volume::Readonly("/ro".into()));
    assert_eq!(
        c.volumes["/state"],
        Volume::Statedir {
            path: "/sub".into(),
            mode: 0o755,
            user: Some(3),
            group: Some(4)
        }
    );
    assert_eq!(
        c.volumes["/p2"],
        Volume::Persistent {
            path: "/data".into(),
            mkdir: false,
            mode: 0o777,
            user: None,
            group: None
        }
    );
    assert_eq!(
        c.volumes["/s2"],
        Volume::Statedir {
            path: "/".into(),
            mode: 0o777,
            user: None,
            group: None
        }
    );
    assert_eq!((c.user_id, c.group_id), (Some(1), Some(2)));
    assert_eq!(c.additional_groups, [3, 4]);
    assert_eq!(c.memory_limit, Some(100 << 20));
    assert_eq!(c.cpu_shares, 3);
    assert_eq!(c.pids_limit, Some(64));
    assert_eq!(c.fileno_limit, Some(2048));
    assert_eq!(c.restart_timeout, Some(0.5));
    assert_eq!(c.kill_timeout, Some(10.0));
    assert_eq!(c.arguments, ["-c", "@{port}"]);
    assert_eq!(c.environ["A"], "1");
    assert_eq!(c.environ["B"], "@{lithos:pid}");
    assert_eq!(c.environ["EMPTY"], "");
    assert_eq!(c.workdir, "/app");
    assert_eq!(
        c.resolv_conf,
        ResolvConf {
            mount: Some(false),
            copy_from_host: false
        }
    );
    assert_eq!(
        c.hosts_file,
        HostsFile {
            mount: Some(true),
            copy_from_host: false,
            localhost: false,
            public_hostname: true
        }
    );
    assert_eq!(
        c.uid_map[0],
        IdMap {
            inside: 0,
            outside: 1000,
            count: 10
        }
    );
    assert_eq!(c.gid_map[0].outside, 2000);
    assert_eq!(c.stdout_stderr_file.as_deref(), Some("/log/out.log"));
    assert!(c.interactive && c.restart_process_only);
    assert_eq!(c.normal_exit_codes, [0, 3]);
    let p = &c.tcp_ports["@{port}"];
    assert_eq!(p.fd, 3);
    assert_eq!(p.host.to_string(), "127.0.0.1");
    assert_eq!(p.listen_backlog, 10);
    assert!(!p.reuse_addr && p.reuse_port && p.set_non_block && p.external);
    assert_eq!(
        c.tcp_ports["80"],
        TcpPort {
            fd: 0,
            ..TcpPort::systemd(0)
        }
    );
    assert_eq!(c.capabilities, ["CAP_NET_BIND_SERVICE"]);
}

#[test]
fn memory_limit_max_means_none() {
    assert_eq!(
        parse_ok("executable: /x\nmemory-limit: 0x7fffffffffffffff\n").memory_limit,
        None
    );
}

#[test]
fn secrets_parse() {
    const V: &str = "v2:i4+dWTpg:KqWSX0BY:8MtOoWUX:FevSFB+JYlOY2v9t1Ey4Hc7k76OZtv+9vSsq0wEAc2MPl1CQPJ2XN3qeCaJfV3EPTRwNmtEBED4uCCipvfMlyQ==";
    let c = parse_ok(&format!(
        "executable: /x\nsecret-environ: {{A: '{V}', B: ['{V}', '{V}']}}\nsecret-environ-file: /s.yaml\n"
    ));
    assert_eq!(c.secret_environ["A"], [V]);
    assert_eq!(c.secret_environ["B"].len(), 2);
    assert_eq!(c.secret_environ_file.as_deref(), Some("/s.yaml"));
}

#[test]
fn parse_rejections() {
    for (text, needle) in [
        ("arguments: []\n", "\"executable\" is missing"),
        ("executable: bin/x\n", "not an absolute path"),
        ("executable: /x\nworkdir: ../x\n", "not an absolute path"),
        ("executable: /x\nuser-id: -1\n", "not a number"),
        ("executable: /x\nuser-id: 4294967295\n", "maximum"),
        ("executable: /x\nmemory-limit: 100\n", "below the minimum"),
        ("executable: /x\ncpu-shares: 1\n", "below the minimum"),
        ("executable: /x\npids-limit: 0\n", "0 would not"),
        ("executable: /x\nfileno-limit: 99999999\n", "maximum"),
        ("executable: /x\nrestart-timeout: NaN\n", "finite"),
        ("executable: /x\nkill-timeout: 1e30\n", "more than"),
        ("executable: /x\nkill-timeout: -1\n", "negative"),
        (
            "executable: /x\nvolumes: {tmp: !Tmpfs {}}\n",
            "volume mount point",
        ),
        ("executable: /x\nvolumes: {/a/../b: !Tmpfs {}}\n", "'..'"),
        (
            "executable: /x\nvolumes: {/t: !Nfs x}\n",
            "unknown volume kind",
        ),
        (
            "executable: /x\nvolumes: {/t: x}\n",
            "a volume kind is expected",
        ),
        (
            "executable: /x\nvolumes: {/t: !Tmpfs {size: 0}}\n",
            "size 0",
        ),
        (
            "executable: /x\nvolumes: {/t: !Tmpfs {mode: 0o17777}}\n",
            "0o7777",
        ),
        (
            "executable: /x\nvolumes:\n  /t: !Readonly\n",
            "needs a virtual path",
        ),
        (
            "executable: /x\nvolumes: {/t: !Persistent {path: x}}\n",
            "absolute",
        ),
        (
            "executable: /x\nvariables:\n  a: !Port\n",
            "unknown variable type",
        ),
        (
            "executable: /x\nvariables: {a: 1}\n",
            "a variable type is expected",
        ),
        (
            "executable: /x\nvariables: {a: !Choice []}\n",
            "at least one",
        ),
        (
            "executable: /x\nvariables: {a: !TcpPort {activation: inetd}}\n",
            "activation",
        ),
        (
            "executable: /x\nvariables:\n  'lithos:name': !Name\n",
            "reserved",
        ),
        // Any name with a colon, not only the builtins.
        (
            "executable: /x\nvariables:\n  'my:port': !TcpPort\n",
            "variable name \"my:port\" is reserved",
        ),
        (
            "executable: /x\nenviron: {'A=B': x}\n",
            "environment variable name",
        ),
        ("executable: /x\nenviron: {A: [x]}\n", "scalar"),
        ("executable: /x\narguments: [\"a\\0b\"]\n", "NUL"),
        (
            "executable: /x\ntcp-ports: {80: {host: 1.2.3.4}}\n",
            "\"fd\" is missing",
        ),
        (
            "executable: /x\ntcp-ports: {80: {fd: 1}}\n",
            "stdout and stderr",
        ),
        (
            "executable: /x\ntcp-ports: {80: {fd: 3, backlog: 1}}\n",
            "unknown key",
        ),
        ("executable: /x\nnormal-exit-codes: [256]\n", "maximum"),
        ("executable: /x\ninteractive: yes\n", "not a boolean"),
        ("executable: /x\nresolv-conf: {copy: true}\n", "unknown key"),
        ("executable: /x\nkind: Service\n", "kind"),
        (
            "executable: /x\ncapabilities: [CAP_ALL]\n",
            "unknown capability",
        ),
        ("executable: /x\nuser-id: 1\nuser_id: 2\n", "given twice"),
        ("executable: /x\npid-limit: 1\n", "pid-limit: unknown key"),
    ] {
        let e = parse_err(text);
        assert!(e.contains(needle), "{text:?} gave {e}");
        assert!(e.starts_with("/img/config.yaml:"), "{e}");
    }
}

#[test]
fn all_problems_reported_at_once() {
    let e = parse_err("executable: x\nuser-id: a\ncolor: blue\n");
    assert_eq!(e.lines().count(), 3, "{e}");
}

#[test]
fn lines_of_keys_a_sandbox_bounds() {
    let c = parse_ok(
        "executable: /x\npids_limit: 5\nvolumes:\n  /t: !Tmpfs\n    size: 1Mi\n  \
         /d: !Persistent {path: /d, user: 1, mode: 0o700}\nmemory-limit: 0x7fffffffffffffff\n\
         restart-timeout: 0\n",
    );
    let l = |k: &str| c.lines.get(k).copied();
    assert_eq!(l("pids-limit"), Some(2));
    assert_eq!(l("volumes./t.size"), Some(5));
    assert_eq!(l("volumes./d"), Some(6));
    assert_eq!(
        (l("volumes./d.user"), l("volumes./d.mode")),
        (Some(6), Some(6))
    );
    assert_eq!(l("volumes./d.group"), None);
    // Given, even when it means "no limit" (a ceiling refuses that).
    assert_eq!((c.memory_limit, l("memory-limit")), (None, Some(7)));
    assert_eq!(
        (c.restart_timeout, l("restart-timeout")),
        (Some(0.0), Some(8))
    );
    assert_eq!(
        c.volumes["/t"],
        Volume::Tmpfs {
            size: Some(1 << 20),
            mode: 0o777
        }
    );
}

/// Each lower and upper bound is itself accepted; one step past it is not.
#[test]
fn limits_at_their_bounds() {
    let c = parse_ok(
        "executable: /x\nmemory-limit: 1Mi\ncpu-shares: 2\npids-limit: 1\nfileno-limit: 3\n\
         tcp-ports: {80: {fd: 1048575}, 81: {fd: 0}, 82: {fd: 3}}\n",
    );
    assert_eq!(c.memory_limit, Some(1 << 20));
    assert_eq!(c.cpu_shares, 2);
    assert_eq!(c.pids_limit, Some(1));
    assert_eq!(c.fileno_limit, Some(3));
    let fds: Vec<u32> = c.tcp_ports.values().map(|p| p.fd).collect();
    assert_eq!(fds, [1_048_575, 0, 3]);
    for (text, needle) in [
        (
            "memory-limit: 1048575",
            "1048575 bytes is below the minimum",
        ),
        (
            "fileno-limit: 2",
            "fileno-limit: 2 is below the minimum of 3",
        ),
        (
            "fileno-limit: 0",
            "fileno-limit: 0 is below the minimum of 3",
        ),
        (
            "tcp-ports: {80: {fd: 1048576}}",
            "larger than the maximum of 1048575",
        ),
        ("tcp-ports: {80: {fd: 1}}", "fd 1 and 2"),
        ("tcp-ports: {80: {fd: 2}}", "fd 1 and 2"),
    ] {
        let e = parse_err(&format!("executable: /x\n{text}\n"));
        assert!(e.contains(needle), "{text}: {e}");
    }
}

/// `localhost` and `public-hostname` default to on exactly when the hosts
/// file is not copied from the host.
#[test]
fn hosts_file_defaults_follow_copy_from_host() {
    let hosts = |v: &str| parse_ok(&format!("executable: /x\nhosts-file: {v}\n")).hosts_file;
    assert_eq!(
        hosts("{copy-from-host: false}"),
        HostsFile {
            mount: None,
            copy_from_host: false,
            localhost: true,
            public_hostname: true
        }
    );
    assert_eq!(
        hosts("{copy-from-host: true}"),
        HostsFile {
            mount: None,
            copy_from_host: true,
            localhost: false,
            public_hostname: false
        }
    );
    assert_eq!(
        hosts("{copy-from-host: false, public-hostname: false}"),
        HostsFile {
            mount: None,
            copy_from_host: false,
            localhost: true,
            public_hostname: false
        }
    );
}

#[test]
fn stop_signal_by_name_with_or_without_sig() {
    assert_eq!(parse_ok("executable: /x\n").stop_signal, libc::SIGTERM);
    for (text, want) in [
        ("QUIT", libc::SIGQUIT),
        ("SIGQUIT", libc::SIGQUIT),
        ("TERM", libc::SIGTERM),
        ("INT", libc::SIGINT),
        ("HUP", libc::SIGHUP),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("WINCH", libc::SIGWINCH),
        ("KILL", libc::SIGKILL),
    ] {
        let c = parse_ok(&format!("executable: /x\nstop-signal: {text}\n"));
        assert_eq!(c.stop_signal, want, "{text}");
    }
    for bad in ["quit", "STOP", "SIGSEGV", "9", "''", "[QUIT]"] {
        let e = parse_err(&format!("executable: /x\nstop-signal: {bad}\n"));
        assert!(e.contains(":2:") || e.contains("line 2"), "{bad}: {e}");
    }
    let e = parse_err("executable: /x\nstop-signal: STOP\n");
    assert!(
        e.contains("\"STOP\" is not a stop signal; one of TERM, INT, QUIT"),
        "{e}"
    );
}

#[test]
fn every_unknown_key_is_reported_with_a_hint() {
    let e = parse_err("executable: /x\nrestart-timout: 1\nkill_timout: 2\ncolour: red\n");
    assert!(
        e.contains(":2: restart-timout: unknown key; did you mean \"restart-timeout\"?"),
        "{e}"
    );
    assert!(
        e.contains(":3: kill_timout: unknown key; did you mean \"kill-timeout\"?"),
        "{e}"
    );
    assert!(
        e.contains(":4: colour: unknown key\n") || e.ends_with(":4: colour: unknown key"),
        "{e}"
    );
}
