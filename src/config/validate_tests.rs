//! Validation of a container config against its sandbox and process
//! entry (`parse_and_validate`, as the supervisor runs it).

use std::path::Path;

use crate::config::container::ContainerConfig;
use crate::config::master::Master;
use crate::config::process::Processes;
use crate::config::sandbox::Sandbox;
use crate::config::validate::parse_and_validate;

pub(super) fn master() -> Master {
    Master::parse(Path::new("/etc/c/master.yaml"), b"").unwrap()
}

pub(super) const SANDBOX: &str = "image-dir: /img\nallow-users: [1, 1000-1999]\nallow-groups: [0-1]\n\
    readonly-paths: {/ro: /srv/ro}\nwritable-paths: {/data: /srv/data}\nallow-tcp-ports: [80, 8000-8099]\n\
    allow-capabilities: [CAP_NET_BIND_SERVICE]\n";

fn check_with(sandbox: &str, entry: &str, container: &str) -> Result<ContainerConfig, String> {
    let s = Sandbox::parse(
        &master(),
        Path::new("/etc/c/sandboxes/sb.yaml"),
        sandbox.as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let procs = Processes::parse("/etc/c/processes/sb.yaml", entry.as_bytes())
        .map_err(|e| e.to_string())?;
    let e = procs.entries.values().next().unwrap();
    parse_and_validate("/img/web/config.yaml", container.as_bytes(), &s, e)
        .map_err(|e| e.to_string())
}

const ENTRY: &str =
    "web:\n  image: web\n  config: /config.yaml\n  instances: 2\n  variables: {port: 8080}\n";

#[test]
fn valid_container_passes() {
    check_with(
        SANDBOX,
        ENTRY,
        "executable: /x\nuser-id: 1000\nvariables:\n  port: !TcpPort\narguments: ['@{port}', '@{lithos:name}']\n\
         volumes: {/ro: !Readonly /ro, /d: !Persistent /data/sub, /t: !Tmpfs {}}\n\
         tcp-ports: {'@{port}': {fd: 3}}\ncapabilities: [CAP_NET_BIND_SERVICE]\n",
    )
    .unwrap();
}

#[test]
fn validation_rejections() {
    let base = "executable: /x\nuser-id: 1\n";
    for (sandbox, entry, extra, needle) in [
        (
            SANDBOX,
            ENTRY,
            "user-id: 5\n",
            "not in the sandbox's allow-users",
        ),
        (
            SANDBOX,
            ENTRY,
            "group-id: 7\n",
            "not in the sandbox's allow-groups",
        ),
        (SANDBOX, ENTRY, "additional-groups: [9]\n", "allow-groups"),
        (
            SANDBOX,
            ENTRY,
            "volumes: {/v: !Readonly /nope}\n",
            "not in sandbox \"sb\"'s readonly-paths",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes: {/v: !Persistent /ro}\n",
            "writable-paths",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes: {/proc/x: !Tmpfs {}}\n",
            "may not be mounted on /proc/x",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes: {/: !Tmpfs {}}\n",
            "may not be mounted on /",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes: {/dev: !Tmpfs {}}\n",
            "may not be mounted on /dev",
        ),
        (
            SANDBOX,
            ENTRY,
            "tcp-ports: {81: {fd: 3}}\n",
            "port 81 is not in sandbox",
        ),
        (
            SANDBOX,
            ENTRY,
            "tcp-ports: {80: {fd: 3}, 8000: {fd: 3}}\n",
            "uses fd 3",
        ),
        (
            SANDBOX,
            ENTRY,
            "tcp-ports: {80: {fd: 5000}}\n",
            "fileno-limit",
        ),
        (
            SANDBOX,
            ENTRY,
            "arguments: ['@{nope}']\n",
            "@{nope} is not a declared variable",
        ),
        (
            SANDBOX,
            ENTRY,
            "variables:\n  other: !Name\n",
            "but no value is given",
        ),
        (
            SANDBOX,
            ENTRY,
            "variables: {port: !Choice [a, b]}\n",
            "is not one of",
        ),
        (
            SANDBOX,
            "web:\n  image: web\n  config: /c\n  variables: {port: 81}\n",
            "variables:\n  port: !TcpPort\ntcp-ports: {'@{port}': {fd: 3}}\n",
            "port 81 is not in sandbox",
        ),
        (
            SANDBOX,
            "web:\n  image: web\n  config: /c\n  variables: {port: 0}\n",
            "variables:\n  port: !TcpPort\n",
            "not a port",
        ),
        (
            SANDBOX,
            ENTRY,
            "capabilities: [CAP_SYS_ADMIN]\n",
            "allow-capabilities",
        ),
        (
            SANDBOX,
            ENTRY,
            "kind: Command\n",
            "is a Command but process entry",
        ),
        (
            SANDBOX,
            ENTRY,
            "secret-environ: {A: 'v2:i4+dWTpg:KqWSX0BY:8MtOoWUX:FevSFB+JYlOY2v9t1Ey4Hc7k76OZtv+9vSsq0wEAc2MPl1CQPJ2XN3qeCaJfV3EPTRwNmtEBED4uCCipvfMlyQ=='}\n",
            "has no secrets-private-key",
        ),
        (
            SANDBOX,
            ENTRY,
            "uid-map: [{inside: 0, outside: 5000, count: 2}]\n",
            "host ids 5000-5001",
        ),
        (
            SANDBOX,
            ENTRY,
            "uid-map: [{inside: 0, outside: 1000, count: 2}]\nuser_id: 7\n",
            "inside the container's uid-map",
        ),
        (
            "image-dir: /img\nallow-users: [1]\nallow-groups: [0]\nuid-map: [{inside: 0, outside: 1000, count: 1}]\n",
            ENTRY,
            "",
            "not mapped by the sandbox's uid-map",
        ),
        (
            "image-dir: /img\nallow-users: [1]\nallow-groups: [0]\nuid-map: [{inside: 0, outside: 1000, count: 2}]\n",
            ENTRY,
            "uid-map: [{inside: 0, outside: 1, count: 1}]\n",
            "both the sandbox and the container",
        ),
        (
            "image-dir: /img\nallow-users: [1]\nallow-groups: [0]\n",
            ENTRY,
            "user-id: 1\nuser_id: 1\n",
            "given twice",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes:\n  /d: !Persistent {path: /data, mkdir: true, user: 5}\n",
            "volumes./d.user: 5 is not in the sandbox's allow-users",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes:\n  /s: !Statedir {group: 9}\n",
            "volumes./s.group: 9 is not in the sandbox's allow-groups",
        ),
        // Root is an id like any other: not allowed, not given.
        (
            SANDBOX,
            ENTRY,
            "volumes:\n  /d: !Persistent {path: /data, mkdir: true, user: 0, mode: 0o7777}\n",
            "config.yaml:4: volumes./d.user: 0 is not in the sandbox's allow-users [1, 1000-1999]",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes:\n  /s: !Statedir\n    user: 0\n",
            "config.yaml:5: volumes./s.user: 0 is not in the sandbox's allow-users",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes:\n  /d: !Persistent {path: /data, mkdir: true, mode: 0o4755}\n",
            "config.yaml:4: volumes./d.mode: 0o4755 has the setuid/setgid bits (0o6000)",
        ),
        (
            SANDBOX,
            ENTRY,
            "volumes:\n  /t: !Tmpfs {mode: 0o2777}\n",
            "volumes./t.mode: 0o2777 has the setuid/setgid bits",
        ),
        (
            "image-dir: /img\nallow-users: [1]\nallow-groups: [0]\nuid-map: [{inside: 0, outside: 1000, count: 2}]\n",
            ENTRY,
            "gid-map: [{inside: 0, outside: 1, count: 1}]\n",
            "both the sandbox and the container give id maps",
        ),
        (
            SANDBOX,
            "web:\n  image: web\n  config: /c\n  variables: {port: 9000}\n",
            "variables:\n  port: !TcpPort\n",
            "web.variables.port: port 9000 is not in sandbox",
        ),
    ] {
        let text = if extra.contains("user-id") || extra.contains("user_id") {
            format!("executable: /x\n{extra}")
        } else {
            format!("{base}{extra}")
        };
        let e = check_with(sandbox, entry, &text).unwrap_err();
        assert!(e.contains(needle), "{extra:?} gave {e}");
        assert!(e.contains("/img/web/config.yaml"), "{e}");
    }
}

#[test]
fn missing_user_without_default() {
    let e = check_with(SANDBOX, ENTRY, "executable: /x\n").unwrap_err();
    assert!(e.contains("no user-id given"), "{e}");
    let s = format!("{SANDBOX}default-user: 1000\n");
    check_with(&s, ENTRY, "executable: /x\n").unwrap();
}

#[test]
fn command_may_leave_unused_variables_out() {
    let entry = "py:\n  kind: Command\n  image: web\n  config: /c\n";
    check_with(
        SANDBOX,
        entry,
        "kind: Command\nexecutable: /x\nuser-id: 1\nvariables:\n  hello: !TcpPort\n",
    )
    .unwrap();
    let e = check_with(
        SANDBOX,
        entry,
        "kind: Command\nexecutable: /x\nuser-id: 1\nvariables:\n  hello: !TcpPort\narguments: ['@{hello}']\n",
    )
    .unwrap_err();
    assert!(e.contains("but no value is given"), "{e}");
}

#[test]
fn systemd_activation() {
    let entry = "s:\n  image: web\n  config: /c\n  variables: {input_port: 80}\n";
    check_with(
        SANDBOX,
        entry,
        "executable: /x\nuser-id: 1\nvariables: {input_port: !TcpPort {activation: systemd}}\n",
    )
    .unwrap();
    let e = check_with(
        SANDBOX,
        entry,
        "executable: /x\nuser-id: 1\nvariables: {input_port: !TcpPort {activation: systemd}}\n\
         tcp-ports: {8000: {fd: 3}}\n",
    )
    .unwrap_err();
    assert!(e.contains("fd 3"), "{e}");
    let e = check_with(
        SANDBOX,
        entry,
        "executable: /x\nuser-id: 1\nvariables: {input_port: !TcpPort {activation: systemd}}\n\
         environ: {LISTEN_FDS: '1'}\n",
    )
    .unwrap_err();
    assert!(e.contains("socket activation"), "{e}");
}

#[test]
fn bridged_sandbox_ports_need_not_be_allowed() {
    let s = "image-dir: /img\nallow-users: [1]\nallow-groups: [0]\n\
             bridged-network: {bridge: br0, network: 10.0.0.0/16}\n";
    let entry = "w:\n  image: web\n  config: /c\n  ip-addresses: [10.0.0.2]\n";
    check_with(
        s,
        entry,
        "executable: /x\nuser-id: 1\ntcp-ports: {81: {fd: 3}}\n",
    )
    .unwrap();
    let e = check_with(
        s,
        entry,
        "executable: /x\nuser-id: 1\ntcp-ports: {81: {fd: 3, external: true}}\n",
    )
    .unwrap_err();
    assert!(e.contains("allow-tcp-ports"), "{e}");
}

#[test]
fn volume_owners_and_modes_that_pass() {
    // Left out: the container's own ids (checked as user-id/group-id);
    // the sticky bit; a root owner where the sandbox allows root.
    check_with(
        SANDBOX,
        ENTRY,
        "executable: /x\nuser-id: 1000\nvolumes:\n  /d: !Persistent {path: /data, mkdir: true}\n  \
         /s: !Statedir {mode: 0o1777}\n  /t: !Tmpfs {mode: 0o1777}\n",
    )
    .unwrap();
    check_with(
        "image-dir: /img\nallow-users: [0-1]\nallow-groups: [0]\n",
        ENTRY,
        "executable: /x\nuser-id: 1\nvolumes:\n  /s: !Statedir {user: 0, group: 0}\n",
    )
    .unwrap();
}

/// With a container uid-map, the user-id must lie inside the map's inside
/// range: its first and last ids do, the ids just around it do not.
#[test]
fn user_id_inside_the_containers_map() {
    let sandbox = "image-dir: /img\nallow-users: [5000-5004]\nallow-groups: [6000]\n";
    let container = |uid: u32| {
        format!(
            "executable: /x\nuser-id: {uid}\nuid-map: [{{inside: 10, outside: 5000, count: 5}}]\n\
             gid-map: [{{inside: 0, outside: 6000, count: 1}}]\n"
        )
    };
    for uid in [10, 12, 14] {
        let c =
            check_with(sandbox, ENTRY, &container(uid)).unwrap_or_else(|e| panic!("{uid}: {e}"));
        assert_eq!(c.user_id, Some(uid));
    }
    for uid in [0, 9, 15, 5000] {
        let e = check_with(sandbox, ENTRY, &container(uid)).unwrap_err();
        assert!(
            e.contains(&format!(
                "user-id: {uid} is not inside the container's uid-map"
            )),
            "{uid}: {e}"
        );
    }
}

#[test]
fn kinds_and_features_that_pass_or_not() {
    let base = "executable: /x\nuser-id: 1\n";
    let either = "w:\n  kind: CommandOrDaemon\n  image: web\n  config: /c\n";
    let command = "w:\n  kind: Command\n  image: web\n  config: /c\n";
    // A CommandOrDaemon entry needs a CommandOrDaemon container.
    check_with(SANDBOX, either, &format!("{base}kind: CommandOrDaemon\n")).unwrap();
    for kind in ["Daemon", "Command"] {
        let e = check_with(SANDBOX, either, &format!("{base}kind: {kind}\n")).unwrap_err();
        assert!(e.contains(&format!("the container is a {kind}")), "{e}");
    }
    // restart-process-only: a Daemon (or CommandOrDaemon) only.
    check_with(
        SANDBOX,
        ENTRY,
        &format!("{base}restart-process-only: true\n"),
    )
    .unwrap();
    let e = check_with(
        SANDBOX,
        command,
        &format!("{base}kind: Command\nrestart-process-only: true\n"),
    )
    .unwrap_err();
    assert!(e.contains("only a Daemon can restart its process"), "{e}");
    // LISTEN_* are only reserved when systemd activation is used.
    check_with(
        SANDBOX,
        ENTRY,
        &format!("{base}environ: {{LISTEN_FDS: '3', LISTEN_PID: '1'}}\n"),
    )
    .unwrap();
    // An environ value is checked for undeclared variables like arguments.
    let e = check_with(
        SANDBOX,
        ENTRY,
        &format!("{base}environ: {{A: 'x@{{nope}}'}}\n"),
    )
    .unwrap_err();
    assert!(
        e.contains("environ.A: @{nope} is not a declared variable"),
        "{e}"
    );
}
