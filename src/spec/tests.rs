use std::path::Path;

use super::*;
use crate::config::process::Processes;

struct Fixture {
    master: Master,
    sandbox: Sandbox,
    entry: ProcessEntry,
    container: ContainerConfig,
}

fn fixture(sandbox_extra: &str, entry_extra: &str, container_extra: &str) -> Fixture {
    let master = Master::parse(Path::new("/etc/c/master.yaml"), b"runtime-dir: /run/t\n").unwrap();
    let sandbox = Sandbox::parse(
        &master,
        Path::new("/etc/c/sandboxes/sb.yaml"),
        format!(
            "image-dir: /img\nallow-users: [1]\nallow-groups: [0-10]\nallow-tcp-ports: [8000-8100]\n\
             writable-paths: {{/data: /srv/data}}\nreadonly-paths: {{/ro: /srv/ro}}\n\
             additional-hosts: {{db: 10.1.1.1}}\n{sandbox_extra}"
        )
        .as_bytes(),
    )
    .unwrap();
    let procs = Processes::parse(
        "/etc/c/processes/sb.yaml",
        format!("web:\n  image: web\n  config: /config/web.yaml\n  instances: 3\n  variables: {{port: 8080}}\n{entry_extra}").as_bytes(),
    )
    .unwrap();
    let entry = procs.entries["web"].clone();
    let text = format!(
        "executable: /bin/srv\nuser-id: 1\nvariables:\n  port: !TcpPort\n\
         arguments: ['--port=@{{port}}', '@{{lithos:name}}']\n\
         environ:\n  MYPID: '@{{lithos:pid}}'\n  CFG: '@{{cairn:config_filename}}'\n\
         volumes:\n  /var/data: !Persistent {{path: /data/x, mkdir: true, user: 1, group: 2}}\n  \
           /ro: !Readonly /ro\n  /tmp: !Tmpfs {{size: 1Mi}}\n  /state: !Statedir {{}}\n\
         tcp-ports:\n  '@{{port}}': {{fd: 3}}\n{container_extra}"
    );
    let container = crate::config::validate::parse_and_validate(
        "/img/web/config/web.yaml",
        text.as_bytes(),
        &sandbox,
        &entry,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        master,
        sandbox,
        entry,
        container,
    }
}

/// Instance 2 of `sb/web`, a daemon of a small config with one volume of
/// each kind (`/ro` read-only, `/tmp` tmpfs, `/state` statedir,
/// `/var/data` persistent with mkdir), `container_extra` added to its
/// container config: for the tests of other modules.
pub(crate) fn sample(container_extra: &str) -> InstanceSpec {
    resolve(&fixture("", "", container_extra), Which::Daemon(2))
}

fn resolve(f: &Fixture, which: Which) -> InstanceSpec {
    InstanceSpec::resolve(
        &f.master,
        &f.sandbox,
        &f.entry,
        &f.container,
        "/img/web/config/web.yaml",
        which,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn resolves_everything() {
    let f = fixture("", "", "");
    let s = resolve(&f, Which::Daemon(2));
    assert_eq!(s.name, "sb/web.2");
    assert_eq!(
        (s.sandbox.as_str(), s.process.as_str(), s.index),
        ("sb", "web", 2)
    );
    assert_eq!(s.image_dir, Path::new("/img"));
    assert_eq!(s.arguments, ["--port=8080", "sb/web.2"]);
    assert!(!s.environ.contains_key("CAIRN_NAME"));
    assert_eq!(s.environ["CFG"], "/config/web.yaml");
    assert!(!s.environ.contains_key("TERM"));
    assert_eq!(s.pid_vars, ["MYPID"]);
    assert_eq!(s.environ.len(), 1, "{:?}", s.environ);
    assert_eq!((s.uid, s.gid), (1, 0));
    let targets: Vec<&str> = s.mounts.iter().map(|m| m.target.as_str()).collect();
    assert_eq!(targets, ["/ro", "/tmp", "/state", "/var/data"]);
    assert_eq!(
        s.mounts[3].kind,
        MountKind::Bind {
            base: "/srv/data".into(),
            sub: "x".into(),
            writable: true,
            mkdir: Some((0o777, 1, 2))
        }
    );
    assert_eq!(
        s.mounts[0].kind,
        MountKind::Bind {
            base: "/srv/ro".into(),
            sub: String::new(),
            writable: false,
            mkdir: None
        }
    );
    assert_eq!(s.tcp_ports.len(), 1);
    assert_eq!((s.tcp_ports[0].port, s.tcp_ports[0].settings.fd), (8080, 3));
    assert_eq!(s.host.state_dir, Path::new("/run/t/state/sb/web.2"));
    assert_eq!(s.host.cgroup.as_deref(), Some("sb:web.2"));
    assert_eq!(
        s.stdio,
        Stdio::HostFile("/var/log/cairn/stderr/sb.log".into())
    );
    assert_eq!(
        s.hosts_file.copy_from.as_deref(),
        Some(Path::new("/etc/hosts"))
    );
    assert_eq!(s.hosts_file.extra_lines, ["10.1.1.1 db"]);
    assert_eq!(s.restart_timeout_ms, 1000);
    assert_eq!(s.kill_timeout_ms, 5000);
}

#[test]
fn command_names_and_systemd() {
    let f = fixture("", "", "");
    let s = resolve(&f, Which::Command(4242));
    assert_eq!(s.name, "sb/cmd.web.4242");
    assert_eq!(s.host.state_dir, Path::new("/run/t/state/sb/cmd.web.4242"));
}

#[test]
fn user_namespace_maps_persistent_owner() {
    let f = fixture(
        "uid-map: [{inside: 0, outside: 100000, count: 100}]\ngid-map: [{inside: 0, outside: 200000, count: 100}]\n",
        "",
        "",
    );
    let s = resolve(&f, Which::Daemon(0));
    assert_eq!(s.uid_map[0].outside, 100000);
    assert_eq!(
        s.mounts[3].kind,
        MountKind::Bind {
            base: "/srv/data".into(),
            sub: "x".into(),
            writable: true,
            mkdir: Some((0o777, 100001, 200002))
        }
    );
}

#[test]
fn hash_is_stable_and_sensitive() {
    let f = fixture("", "", "");
    let a = resolve(&f, Which::Daemon(0));
    let b = resolve(&f, Which::Daemon(0));
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 16);
    assert_ne!(a.hash(), resolve(&f, Which::Daemon(1)).hash());
    // A known value: guards against accidental changes of the encoding,
    // which would restart every workload on upgrade.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    // Every field change gives a new hash.
    let mut variants: Vec<InstanceSpec> = Vec::new();
    let base = a.clone();
    macro_rules! vary {
        ($($field:ident).+ = $value:expr) => {{
            let mut s = base.clone();
            s.$($field).+ = $value;
            variants.push(s);
        }};
    }
    vary!(name = "x".into());
    vary!(sandbox = "x".into());
    vary!(process = "x".into());
    vary!(index = 9);
    vary!(kind = Kind::Command);
    vary!(image = "x".into());
    vary!(image_dir = "/x".into());
    vary!(config_path = "/x".into());
    vary!(executable = "/x".into());
    vary!(arguments = vec![]);
    vary!(environ = BTreeMap::new());
    vary!(pid_vars = vec![]);
    vary!(workdir = "/x".into());
    vary!(uid = 2);
    vary!(gid = 2);
    vary!(groups = vec![1]);
    vary!(
        uid_map = vec![IdMap {
            inside: 0,
            outside: 1,
            count: 1
        }]
    );
    vary!(
        gid_map = vec![IdMap {
            inside: 0,
            outside: 1,
            count: 1
        }]
    );
    vary!(capabilities = vec!["CAP_KILL".into()]);
    vary!(mounts = vec![]);
    vary!(limits.memory = Some(1 << 30));
    vary!(limits.cpu_shares = 2);
    vary!(limits.pids = Some(2));
    vary!(limits.fileno = 2);
    vary!(restart_timeout_ms = 2);
    vary!(kill_timeout_ms = 2);
    vary!(normal_exit_codes = vec![1]);
    vary!(restart_process_only = true);
    vary!(interactive = true);
    vary!(stdio = Stdio::Inherit);
    vary!(resolv_conf.mount = Some(true));
    vary!(hosts_file.public_hostname = true);
    vary!(tcp_ports = vec![]);
    vary!(listen_fdnames = vec!["a".into()]);
    vary!(host.state_dir = "/x".into());
    vary!(host.mount_dir = "/x".into());
    vary!(host.devfs_dir = Some("/x".into()));
    vary!(host.cgroup = None);
    vary!(isolation.seccomp = crate::config::isolation::Seccomp::Log);
    vary!(isolation.seccomp = crate::config::isolation::Seccomp::Unconfined);
    vary!(isolation.allow_user_namespaces = true);
    vary!(isolation.sysfs = true);
    vary!(service.stop_signal = libc::SIGQUIT);
    let mut seen = std::collections::BTreeSet::new();
    seen.insert(base.hash());
    for v in &variants {
        assert!(seen.insert(v.hash()), "a field change kept the hash: {v:?}");
    }
}

#[test]
fn systemd_ports_get_fds_and_env() {
    let f = {
        let master = Master::parse(Path::new("/etc/c/master.yaml"), b"").unwrap();
        let sandbox = Sandbox::parse(
            &master,
            Path::new("/etc/c/sandboxes/sb.yaml"),
            b"image-dir: /img\nallow-users: [1]\nallow-groups: [0]\nallow-tcp-ports: [77, 78]\n",
        )
        .unwrap();
        let procs = Processes::parse(
            "/p.yaml",
            b"s:\n  image: i\n  config: /c\n  variables: {a: 77, b: 78}\n",
        )
        .unwrap();
        let entry = procs.entries["s"].clone();
        let text = "executable: /x\nuser-id: 1\nvariables:\n  b: !TcpPort {activation: systemd}\n  a: !TcpPort {activation: systemd}\n";
        let container =
            crate::config::validate::parse_and_validate("/c", text.as_bytes(), &sandbox, &entry)
                .unwrap();
        Fixture {
            master,
            sandbox,
            entry,
            container,
        }
    };
    let s = resolve(&f, Which::Daemon(0));
    assert_eq!(s.environ["LISTEN_FDS"], "2");
    assert_eq!(s.environ["LISTEN_FDNAMES"], "a:b");
    assert_eq!(s.pid_vars, ["LISTEN_PID"]);
    let fds: Vec<(u16, u32)> = s
        .tcp_ports
        .iter()
        .map(|p| (p.port, p.settings.fd))
        .collect();
    assert_eq!(fds, [(77, 3), (78, 4)]);
}

#[test]
fn volume_owners_default_to_the_containers_ids() {
    // lithos's default owner is root; here it is the container's own user
    // and group (the fixture's user-id 1 and default-group 0, mapped).
    let mut f = fixture(
        "uid-map: [{inside: 0, outside: 100000, count: 100}]\ngid-map: [{inside: 0, outside: 200000, count: 100}]\n",
        "",
        "",
    );
    f.container.volumes.insert(
        "/made".into(),
        Volume::Persistent {
            path: "/data/y".into(),
            mkdir: true,
            mode: 0o700,
            user: None,
            group: None,
        },
    );
    let s = resolve(&f, Which::Daemon(0));
    let kind = |t: &str| &s.mounts.iter().find(|m| m.target == t).expect(t).kind;
    assert_eq!(
        *kind("/state"),
        MountKind::Statedir {
            sub: "/".into(),
            mode: 0o777,
            uid: 100001,
            gid: 200000
        }
    );
    assert_eq!(
        *kind("/made"),
        MountKind::Bind {
            base: "/srv/data".into(),
            sub: "y".into(),
            writable: true,
            mkdir: Some((0o700, 100001, 200000))
        }
    );
}

/// Fields added after a release serialize to nothing at their default, so
/// upgrading cairn does not change the hash of (and restart) an instance
/// whose config did not ask for them.
#[test]
fn isolation_at_its_default_is_not_in_the_hash() {
    let f = fixture("", "", "");
    let s = resolve(&f, Which::Daemon(0));
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("isolation"), "{json}");
    let f = fixture("sysfs: true\n", "", "");
    let json = serde_json::to_string(&resolve(&f, Which::Daemon(0))).unwrap();
    assert!(json.ends_with(",\"isolation\":{\"sysfs\":true}}"), "{json}");
    let back: InstanceSpec = serde_json::from_str(&json).unwrap();
    assert!(back.isolation.sysfs && !back.isolation.allow_user_namespaces);
}

/// The hash decides whether an upgrade restarts a workload: the hash of an
/// unchanged config must not change with a new cairn. These are pinned; a
/// change of the spec's serialized shape (a renamed field, a new field
/// that is not skipped at its default, another order) breaks this test
/// before it can restart every instance of every host after an upgrade. If
/// a change of hash is intended, say so in the upgrade notes.
#[test]
fn hashes_are_pinned() {
    let f = fixture("", "", "");
    assert_eq!(resolve(&f, Which::Daemon(0)).hash(), "f034b441836ecf0e");
    let f = fixture(
        "allow-capabilities: [CAP_NET_BIND_SERVICE]\n",
        "",
        "capabilities: [CAP_NET_BIND_SERVICE]\nmemory-limit: 64Mi\nfileno-limit: 512\n\
         restart-timeout: 2\nkill-timeout: 9\nnormal-exit-codes: [0, 3]\nworkdir: /var/data\n",
    );
    assert_eq!(resolve(&f, Which::Daemon(2)).hash(), "8d90c15c09107234");
    // `stop-signal: TERM` is the default, so it keeps the hash; another
    // signal changes it (and so restarts the instance, as any change does).
    let f = fixture(
        "",
        "",
        "stop-signal: TERM
",
    );
    assert_eq!(resolve(&f, Which::Daemon(0)).hash(), "f034b441836ecf0e");
    let f = fixture(
        "",
        "",
        "stop-signal: QUIT
",
    );
    let quit = resolve(&f, Which::Daemon(0));
    assert_eq!(quit.service.stop_signal, libc::SIGQUIT);
    assert_ne!(quit.hash(), "f034b441836ecf0e");
}

/// A daemon writes to the sandbox's stdio log unless it is interactive; a
/// command writes to its caller; a stdout-stderr-file wins over both.
#[test]
fn stdio_of_daemons_commands_and_interactive() {
    let log = Stdio::HostFile("/var/log/cairn/stderr/sb.log".into());
    let f = fixture("", "", "");
    assert_eq!(resolve(&f, Which::Daemon(0)).stdio, log);
    assert_eq!(resolve(&f, Which::Command(7)).stdio, Stdio::Inherit);
    let f = fixture("", "", "kind: CommandOrDaemon\ninteractive: true\n");
    assert_eq!(resolve(&f, Which::Daemon(0)).stdio, Stdio::Inherit);
    assert_eq!(resolve(&f, Which::Command(7)).stdio, Stdio::Inherit);
    let f = fixture("", "", "stdout-stderr-file: /var/data/out.log\n");
    let file = Stdio::ContainerFile("/var/data/out.log".into());
    assert_eq!(resolve(&f, Which::Daemon(0)).stdio, file);
    assert_eq!(resolve(&f, Which::Command(7)).stdio, file);
}

#[test]
fn placeholders_are_told_apart() {
    let p = InstanceSpec::placeholder("sb", "web", 4);
    assert!(p.is_placeholder());
    assert_eq!(p.name, "sb/web.4");
    let f = fixture("", "", "");
    assert!(!resolve(&f, Which::Daemon(0)).is_placeholder());
}

/// In a bridged sandbox the knot opens the ports that are not `external`
/// (in the container's namespace); otherwise the tree opens every port.
#[test]
fn which_ports_the_knot_opens() {
    let extra_port = "  8001: {fd: 4, external: true}\n";
    let f = fixture("", "", extra_port);
    let s = resolve(&f, Which::Daemon(0));
    assert_eq!(s.tcp_ports.len(), 2);
    assert!(s.tcp_ports.iter().all(|p| !s.port_in_container(p)));
    assert!(s.container_ports().is_empty());

    let f = fixture(
        "bridged-network: {bridge: br0, network: 10.0.0.0/16}\n",
        "  ip-addresses: [10.0.0.2, 10.0.0.3, 10.0.0.4]\n",
        extra_port,
    );
    let s = resolve(&f, Which::Daemon(1));
    assert_eq!(
        s.network.as_ref().map(|n| n.ip.to_string()).as_deref(),
        Some("10.0.0.3")
    );
    let by_port = |n: u16| s.tcp_ports.iter().find(|p| p.port == n).expect("port");
    assert!(s.port_in_container(by_port(8080)));
    assert!(!s.port_in_container(by_port(8001)));
    assert_eq!(
        s.container_ports(),
        [(
            3,
            crate::sys::socket::Listen {
                host: "0.0.0.0".parse().unwrap(),
                port: 8080,
                backlog: 128,
                reuse_addr: true,
                reuse_port: false,
                nonblock: false,
            }
        )]
    );
}

/// `ready: !Notify` gives the workload `NOTIFY_SOCKET` (and, with a
/// watchdog, `WATCHDOG_USEC` and `WATCHDOG_PID`, as systemd does); the
/// watchdog is in the hash only when set.
#[test]
fn notify_sets_the_environment_and_the_watchdog() {
    let s = sample("ready: !Notify\nwatchdog-timeout: 1.5\n");
    assert_eq!(s.service.ready, Some(Ready::Notify));
    assert_eq!(s.service.watchdog_ms, 1500);
    assert_eq!(
        s.environ.get("NOTIFY_SOCKET").map(String::as_str),
        Some(NOTIFY_SOCKET_PATH)
    );
    assert_eq!(
        s.environ.get("WATCHDOG_USEC").map(String::as_str),
        Some("1500000")
    );
    assert!(s.pid_vars.contains(&"WATCHDOG_PID".to_string()));
    let plain = sample("ready: !Notify\n");
    assert_eq!(plain.service.watchdog_ms, 0);
    assert!(!plain.environ.contains_key("WATCHDOG_USEC"));
    assert!(!plain.pid_vars.contains(&"WATCHDOG_PID".to_string()));
    assert_ne!(s.hash(), plain.hash());
    let json = serde_json::to_string(&plain.service).expect("json");
    assert!(!json.contains("watchdog"), "{json}");
    assert!(!sample("").environ.contains_key("NOTIFY_SOCKET"));
}

/// `!Exec` words have their variables substituted, as `arguments` do.
#[test]
fn exec_probes_substitute_variables() {
    let s = sample(
        "ready: !Exec [/bin/check, '--port=@{port}', '@{lithos:name}']\n\
         health-check: !Exec [sh, -c, 'nc -z 127.0.0.1 @{port}']\n",
    );
    assert_eq!(
        s.service.ready,
        Some(Ready::Exec(vec![
            "/bin/check".into(),
            "--port=8080".into(),
            "sb/web.2".into()
        ]))
    );
    assert_eq!(
        s.service.health.as_ref().map(|h| &h.probe),
        Some(&Ready::Exec(vec![
            "sh".into(),
            "-c".into(),
            "nc -z 127.0.0.1 8080".into()
        ]))
    );
}

/// A joined command's environment: `environ` and `TERM`, without the
/// names `secret-environ` sets.
#[test]
fn a_joined_command_gets_environ_and_term_but_no_secret_name() {
    let mut s = sample("");
    s.environ.insert("TOKEN".into(), "overridden".into());
    s.secrets
        .environ
        .insert("TOKEN".into(), vec!["v2:x".into()]);
    let env = s.joined_environ("xterm");
    assert!(env.contains(&"TERM=xterm".to_string()), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("CFG=")), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("TOKEN=")), "{env:?}");
    s.environ.insert("TERM".into(), "vt100".into());
    let env = s.joined_environ("xterm");
    assert!(env.contains(&"TERM=vt100".to_string()), "{env:?}");
    assert!(!env.contains(&"TERM=xterm".to_string()), "{env:?}");
}
