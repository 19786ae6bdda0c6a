use super::*;
use crate::tree::state::{LastExit, TreeInfo};

fn inst(name: &str, state: &str) -> InstanceInfo {
    let (sp, idx) = name.split_once('.').unwrap_or((name, "0"));
    let (sandbox, process) = sp.split_once('/').unwrap_or(("sb", sp));
    InstanceInfo {
        name: name.into(),
        sandbox: sandbox.into(),
        process: process.into(),
        index: idx.parse().unwrap_or(0),
        state: state.into(),
        pid: (state == "running").then_some(4242),
        workload_pid: None,
        restarts: 2,
        since: "2026-12-03T07:00:00Z".into(),
        ready_since: None,
        health: None,
        status: None,
        image: "img".into(),
        config_hash: "h".into(),
        last_exit: None,
        next_start: None,
        error: None,
        cgroup: None,
        cpu_seconds: Some(1.5),
        memory_bytes: Some(3 << 20),
    }
}

fn snap(instances: Vec<InstanceInfo>) -> Snapshot {
    Snapshot {
        tree: TreeInfo {
            pid: 1,
            version: "v".into(),
            started: "2026-12-03T00:00:00Z".into(),
            upgrades: 0,
            reloads: 1,
            last_upgrade_ms: None,
            config: "/etc/cairn/master.yaml".into(),
        },
        instances,
        config_errors: Vec::new(),
        config_problems: Vec::new(),
        cgroups: None,
        rollouts: Vec::new(),
    }
}

#[test]
fn times_parse_back() {
    let t = parse_rfc3339("2026-12-03T07:53:54Z").expect("a time");
    assert_eq!(crate::text::rfc3339(t), "2026-12-03T07:53:54Z");
    let t = parse_rfc3339("2026-12-03T07:53:54.123Z").expect("with ms");
    assert_eq!(crate::text::rfc3339(t), "2026-12-03T07:53:54Z");
    for bad in [
        "",
        "2026-12-03 07:53:54Z",
        "2026-12-03T07:53:54",
        "x026-12-03T07:53:54Z",
    ] {
        assert!(parse_rfc3339(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn ages_are_short() {
    let s = Duration::from_secs;
    assert_eq!(age(s(0)), "0s");
    assert_eq!(age(s(99)), "99s");
    assert_eq!(age(s(100)), "1m");
    assert_eq!(age(s(5999)), "99m");
    assert_eq!(age(s(6000)), "1h");
    assert_eq!(age(s(172_799)), "47h");
    assert_eq!(age(s(172_800)), "2d");
}

#[test]
fn rows_fit_80_columns_with_ages_next_starts_and_a_summary() {
    let now = parse_rfc3339("2026-12-03T08:00:00Z").expect("now");
    let mut crash = inst("sb/crash.0", "backoff");
    crash.pid = None;
    crash.next_start = Some("2026-12-03T08:00:30Z".into());
    crash.last_exit = Some(LastExit {
        status: 3,
        signal: None,
        oom_killed: false,
        failure: true,
        at: "2026-12-03T07:59:59Z".into(),
        error: None,
        cause: None,
    });
    let mut broken = inst("sb/broken.0", "failed");
    broken.error = Some("/img/c.yaml:2: bad\n".into());
    let s = snap(vec![
        inst("sb/web.0", "running"),
        inst("sb/web.1", "running"),
        crash,
        broken,
    ]);
    let text = render(&s, now);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("INSTANCE"), "{text}");
    for l in &lines[..3] {
        assert!(
            l.chars().count() <= 80,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    assert!(
        lines[1].starts_with("sb/web.0") && lines[1].contains(" 60m "),
        "{text}"
    );
    assert!(lines[3].contains("next in 30s exit 3"), "{text}");
    assert!(lines[4].contains("error: /img/c.yaml:2: bad"), "{text}");
    assert!(text.contains("sb/web: 2 running, 0 failed\n"), "{text}");
    assert!(
        text.contains("sb/crash: 0 running, 1 backoff, 0 failed\n"),
        "{text}"
    );
    assert!(
        text.ends_with("total: 2 running, 1 backoff, 1 failed\n"),
        "{text}"
    );
    // A long error: the row is cut at 80 columns, the whole error below.
    let mut long = inst("sb/long.0", "failed");
    long.error = Some(format!("/img/c.yaml:2: {}", "x".repeat(100)));
    let text = render(&snap(vec![long]), now);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1].chars().count(), 80, "{text}");
    assert!(lines[1].ends_with('…'), "{text}");
    assert!(
        lines[2].starts_with("  error: /img/c.yaml:2: xxx") && lines[2].ends_with("xxxx"),
        "{text}"
    );
}
