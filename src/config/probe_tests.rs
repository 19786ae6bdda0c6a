use super::*;
use crate::config::container::{ContainerConfig, parse};

fn parse_ok(text: &str) -> ContainerConfig {
    match parse("/img/config.yaml", text.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse("/img/config.yaml", text.as_bytes()) {
        Ok(c) => panic!("{text:?} passed: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn ready(v: &str) -> String {
    format!("executable: /x\nready: {v}\n")
}

#[test]
fn every_probe_kind_reads() {
    assert_eq!(parse_ok("executable: /x\n").ready, None);
    assert_eq!(parse_ok(&ready("!Fd 3")).ready, Some(Probe::Fd(3)));
    assert_eq!(parse_ok(&ready("!Notify")).ready, Some(Probe::Notify));
    assert_eq!(parse_ok(&ready("!Notify ~")).ready, Some(Probe::Notify));
    assert_eq!(parse_ok(&ready("!Fd 1023")).ready, Some(Probe::Fd(1023)));
    assert_eq!(
        parse_ok(&ready("!Tcp 8080")).ready,
        Some(Probe::Tcp("8080".into()))
    );
    assert_eq!(
        parse_ok(&ready("!Tcp '@{port}'")).ready,
        Some(Probe::Tcp("@{port}".into()))
    );
    assert_eq!(
        parse_ok(&ready("!Http {port: 80, path: /ready?deep=1}")).ready,
        Some(Probe::Http {
            port: "80".into(),
            path: "/ready?deep=1".into()
        })
    );
    assert_eq!(
        parse_ok(&ready("!Http {port: 80}")).ready,
        Some(Probe::Http {
            port: "80".into(),
            path: "/".into()
        })
    );
}

#[test]
fn bad_probes_name_line_and_key() {
    for (v, want) in [
        ("3", "a readiness probe is expected"),
        ("!Notify 3", "!Notify takes no value"),
        ("!Notify {a: 1}", "!Notify takes no value"),
        ("!Socket 3", "unknown readiness probe !Socket"),
        ("!Fd 2", "fd 2 is out of range 3-1023"),
        ("!Fd 1024", "out of range"),
        ("!Fd x", "\"x\" is not an fd number"),
        ("!Tcp ''", "a port is expected"),
        ("!Http {path: /x}", "port"),
        ("!Http {port: 80, path: x}", "not an absolute path"),
        (
            "!Http {port: 80, path: '/a b'}",
            "printable ASCII without spaces",
        ),
        (
            "!Http {port: 80, path: \"/a\\r\\nX-Evil: 1\"}",
            "printable ASCII",
        ),
        ("!Http {port: 80, paths: /x}", "paths"),
    ] {
        let e = parse_err(&ready(v));
        assert!(e.contains(want), "{v}: {e}");
        assert!(e.contains("config.yaml:2"), "{v}: no line in {e}");
    }
}

#[test]
fn ready_timeout_is_seconds_above_zero() {
    let c = parse_ok("executable: /x\nready: !Tcp 80\nready-timeout: 2.5\n");
    assert_eq!(c.ready_timeout, Some(2.5));
    assert_eq!(parse_ok("executable: /x\n").ready_timeout, None);
    let e = parse_err("executable: /x\nready-timeout: 0\n");
    assert!(e.contains("would fail every start"), "{e}");
    let e = parse_err("executable: /x\nready-timeout: -1\n");
    assert!(e.contains("config.yaml:2"), "{e}");
}

#[test]
fn http_paths() {
    assert!(http_path_ok("/").is_ok());
    assert!(http_path_ok("/health/ready?x=%20").is_ok());
    assert!(http_path_ok("").is_err());
    assert!(http_path_ok("/a\tb").is_err());
    assert!(http_path_ok("/é").is_err());
    assert!(http_path_ok(&format!("/{}", "a".repeat(1024))).is_err());
    assert!(http_path_ok(&format!("/{}", "a".repeat(1023))).is_ok());
}

#[test]
fn fd_probes_may_not_take_another_fd_and_ports_are_checked() {
    let standalone = |text: &str| -> Vec<String> {
        let c = parse_ok(text);
        crate::config::validate::standalone("/img/config.yaml", &c)
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    let e = standalone("executable: /x\ntcp-ports: {80: {fd: 3}}\nready: !Fd 3\n");
    assert!(
        e.iter()
            .any(|m| m.contains("fd 3 is the fd of tcp-ports.80")),
        "{e:?}"
    );
    let e = standalone(
        "executable: /x\nvariables:\n  p: !TcpPort {activation: systemd}\nready: !Fd 3\n",
    );
    assert!(
        e.iter()
            .any(|m| m.contains("taken by a systemd-activated port")),
        "{e:?}"
    );
    assert!(standalone("executable: /x\ntcp-ports: {80: {fd: 3}}\nready: !Fd 4\n").is_empty());
    let e = standalone("executable: /x\nready: !Tcp 70000\n");
    assert!(e.iter().any(|m| m.contains("ready.port")), "{e:?}");
    let e = standalone("executable: /x\nready: !Http {port: '@{nope}'}\n");
    assert!(
        e.iter()
            .any(|m| m.contains("@{nope} is not a declared variable")),
        "{e:?}"
    );
    assert!(
        standalone("executable: /x\nvariables:\n  p: !TcpPort\nready: !Tcp '@{p}'\n").is_empty()
    );
}

#[test]
fn health_checks_read_and_are_checked() {
    let c = parse_ok(
        "executable: /x\nhealth-check: !Http {port: 80, path: /h}\nhealth-interval: 5\n\
         health-timeout: 1\nhealth-failures: 4\n",
    );
    assert_eq!(
        c.health_check,
        Some(Probe::Http {
            port: "80".into(),
            path: "/h".into()
        })
    );
    assert_eq!(
        (c.health_interval, c.health_timeout, c.health_failures),
        (Some(5.0), Some(1.0), Some(4))
    );
    for (text, want) in [
        (
            "health-check: !Fd 3",
            "a health check is expected: !Tcp PORT, !Http",
        ),
        ("health-check: 80", "a health check is expected"),
        (
            "health-check: !Tcp 80\nhealth-interval: 0",
            "must be above 0",
        ),
        ("health-check: !Tcp 80\nhealth-timeout: -1", "config.yaml:3"),
        (
            "health-check: !Tcp 80\nhealth-failures: 0",
            "0 would restart at once",
        ),
        (
            "health-check: !Tcp 80\nhealth-failures: 101",
            "config.yaml:3",
        ),
    ] {
        let e = parse_err(&format!("executable: /x\n{text}\n"));
        assert!(e.contains(want), "{text}: {e}");
    }
    let standalone = |text: &str| -> Vec<String> {
        let c = parse_ok(text);
        crate::config::validate::standalone("/img/config.yaml", &c)
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    let e = standalone("executable: /x\nhealth-interval: 5\n");
    assert!(
        e.iter()
            .any(|m| m.contains("has no effect without health-check")),
        "{e:?}"
    );
    let e = standalone("executable: /x\nhealth-check: !Tcp 80\nhealth-timeout: 11\n");
    assert!(
        e.iter()
            .any(|m| m.contains("11 s is longer than health-interval (10 s)")),
        "{e:?}"
    );
    let e = standalone("executable: /x\nhealth-check: !Tcp 99999\n");
    assert!(e.iter().any(|m| m.contains("health-check.port")), "{e:?}");
    assert!(standalone("executable: /x\nhealth-check: !Tcp 80\n").is_empty());
}

#[test]
fn watchdog_timeout_is_seconds_above_zero_and_needs_notify() {
    let c = parse_ok("executable: /x\nready: !Notify\nwatchdog-timeout: 1.5\n");
    assert_eq!(c.watchdog_timeout, Some(1.5));
    assert_eq!(parse_ok("executable: /x\n").watchdog_timeout, None);
    let e = parse_err("executable: /x\nready: !Notify\nwatchdog-timeout: 0\n");
    assert!(e.contains("config.yaml:3"), "{e}");
    let standalone = |text: &str| -> Vec<String> {
        let c = parse_ok(text);
        crate::config::validate::standalone("/img/config.yaml", &c)
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    assert!(standalone("executable: /x\nready: !Notify\nwatchdog-timeout: 2\n").is_empty());
    for text in [
        "executable: /x\nwatchdog-timeout: 2\n",
        "executable: /x\nready: !Fd 3\nwatchdog-timeout: 2\n",
    ] {
        let e = standalone(text);
        assert!(
            e.iter().any(|m| m.contains("config.yaml:")
                && m.contains("watchdog-timeout")
                && m.contains("only with `ready: !Notify`")),
            "{text}: {e:?}"
        );
    }
}

#[test]
fn exec_probes_read_as_a_list_of_words() {
    assert_eq!(
        parse_ok(&ready("!Exec [sh, -c, 'test -f /tmp/ok']")).ready,
        Some(Probe::Exec(vec![
            "sh".into(),
            "-c".into(),
            "test -f /tmp/ok".into()
        ]))
    );
    assert_eq!(
        parse_ok(&ready("!Exec [/bin/check, '@{port}']")).ready,
        Some(Probe::Exec(vec!["/bin/check".into(), "@{port}".into()]))
    );
    assert_eq!(
        parse_ok("executable: /x\nhealth-check: !Exec [true]\n").health_check,
        Some(Probe::Exec(vec!["true".into()]))
    );
    let many = vec!["x"; MAX_EXEC_WORDS + 1].join(", ");
    let long = "y".repeat(MAX_EXEC_WORD + 1);
    for (v, want) in [
        ("!Exec []", "!Exec needs a command"),
        ("!Exec ~", "!Exec needs a command"),
        ("!Exec true", "a sequence is expected"),
        ("!Exec ['']", "the command is empty"),
        ("!Exec [sh, {a: 1}]", "a scalar is expected"),
        ("!Exec [sh, !Tag x]", "unexpected tag !Tag"),
        ("!Exec [\"a\\0b\"]", "NUL"),
        (&format!("!Exec [{many}]"), "more than 64 words"),
        (&format!("!Exec [{long}]"), "longer than 4096 bytes"),
    ] {
        let e = parse_err(&ready(v));
        assert!(e.contains(want), "{v}: {e}");
        assert!(e.contains("config.yaml:2"), "{v}: no line in {e}");
    }
}
