use super::*;
use crate::cli::ps_text::parse_rfc3339;
use crate::tree::state::{ConfigProblem, TreeInfo};
use serde_json::json;
use std::time::{Duration, SystemTime};

fn inst(name: &str, state: &str, pid: Option<i32>) -> InstanceInfo {
    let (sp, idx) = name.split_once('.').unwrap_or((name, "0"));
    let (sandbox, process) = sp.split_once('/').unwrap_or(("sb", sp));
    InstanceInfo {
        name: name.into(),
        sandbox: sandbox.into(),
        process: process.into(),
        index: idx.parse().unwrap_or(0),
        state: state.into(),
        pid,
        workload_pid: None,
        restarts: 0,
        since: "2026-12-03T07:00:00Z".into(),
        ready_since: None,
        health: None,
        status: None,
        image: "img".into(),
        config_hash: "aaaaaaaaaaaaaaaaaaaa".into(),
        last_exit: None,
        next_start: None,
        error: None,
        cgroup: None,
        cpu_seconds: None,
        memory_bytes: None,
    }
}

fn snap(instances: Vec<InstanceInfo>) -> Snapshot {
    Snapshot {
        tree: TreeInfo {
            pid: 100,
            version: "0.1.0".into(),
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

fn exit(status: i32, signal: Option<i32>, at: &str) -> LastExit {
    LastExit {
        status,
        signal,
        oom_killed: false,
        failure: true,
        at: at.into(),
        error: None,
        cause: None,
    }
}

fn rollout(process: &str, state: &str, done: u32, total: u32) -> RolloutInfo {
    RolloutInfo {
        sandbox: "sb".into(),
        process: process.into(),
        state: state.into(),
        instance: (state == "stopped").then(|| format!("sb/{process}.0")),
        reason: (state == "stopped").then(|| "not ready in 5 s".to_string()),
        since: None,
        done,
        total,
    }
}

fn whats(changes: &[Change]) -> Vec<What> {
    changes.iter().map(|c| c.what.clone()).collect()
}

fn now() -> SystemTime {
    parse_rfc3339("2026-12-03T08:00:00Z").expect("now")
}

#[test]
fn the_same_state_is_no_change() {
    let s = snap(vec![inst("sb/web.0", "running", Some(7))]);
    assert!(diff(&s, &s.clone()).is_empty());
}

#[test]
fn an_instance_appears_and_goes() {
    let old = snap(vec![inst("sb/old.0", "running", Some(7))]);
    let new = snap(vec![inst("sb/new.0", "starting", Some(8))]);
    let c = diff(&old, &new);
    assert_eq!(
        whats(&c),
        [
            What::Appeared {
                state: "starting".into(),
                pid: Some(8)
            },
            What::Gone {
                state: "running".into()
            },
        ]
    );
    // By name: new.0 before old.0; each with its states before and after.
    assert_eq!(
        c[0].subject,
        Subject::Instance {
            name: "sb/new.0".into(),
            sandbox: "sb".into(),
            process: "new".into(),
            was: None,
            now: Some("starting".into()),
        }
    );
    assert!(
        matches!(&c[1].subject, Subject::Instance { was: Some(w), now: None, .. } if w == "running")
    );
    assert_eq!(
        line(&c[0], now(), 8),
        "08:00:00 sb/new.0 appeared, starting, pid 8"
    );
    assert_eq!(
        line(&c[1], now(), 8),
        "08:00:00 sb/old.0 gone (was running)"
    );
}

#[test]
fn a_crash_reads_exit_then_state_with_the_next_start() {
    let old = snap(vec![inst("sb/web.0", "running", Some(7))]);
    let mut i = inst("sb/web.0", "backoff", None);
    i.last_exit = Some(exit(3, None, "2026-12-03T07:59:59Z"));
    i.next_start = Some("2026-12-03T08:00:30Z".into());
    let new = snap(vec![i]);
    let c = diff(&old, &new);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(matches!(&c[0].what, What::Exited(l) if l.status == 3));
    assert_eq!(
        c[1].what,
        What::State {
            from: "running".into(),
            to: "backoff".into(),
            next_start: Some("2026-12-03T08:00:30Z".into()),
            error: None,
        }
    );
    assert_eq!(
        line(&c[0], now(), 8),
        "08:00:00 sb/web.0 exited 3 (a failure)"
    );
    assert_eq!(
        line(&c[1], now(), 8),
        "08:00:00 sb/web.0 running → backoff, next start in 30s"
    );
}

#[test]
fn exits_read_their_cause() {
    let mut l = exit(137, Some(9), "t");
    l.oom_killed = true;
    assert_eq!(exit_text(&l), "killed by signal 9 (OOM, a failure)");
    let mut l = exit(0, None, "t");
    l.failure = false;
    assert_eq!(exit_text(&l), "exited 0");
    let mut l = exit(125, None, "t");
    l.error = Some("mount /data: No such file or directory\n".into());
    assert_eq!(
        exit_text(&l),
        "could not start: mount /data: No such file or directory"
    );
}

#[test]
fn a_second_exit_with_the_same_fields_but_another_time_is_a_change() {
    let mut a = inst("sb/web.0", "backoff", None);
    a.last_exit = Some(exit(3, None, "2026-12-03T07:59:59Z"));
    let mut b = a.clone();
    b.last_exit = Some(exit(3, None, "2026-12-03T08:00:05Z"));
    b.restarts = 1;
    let c = diff(&snap(vec![a]), &snap(vec![b]));
    assert!(matches!(&c[0].what, What::Exited(_)), "{c:?}");
    assert_eq!(c[1].what, What::Restarted { restarts: 1 });
    assert_eq!(c.len(), 2);
}

#[test]
fn a_second_exit_in_the_same_second_is_a_change_when_its_knot_is_gone() {
    let mut a = inst("sb/web.0", "running", Some(7));
    a.last_exit = Some(exit(137, Some(9), "2026-12-03T07:59:59Z"));
    let mut b = a.clone();
    b.state = "backoff".into();
    b.pid = None;
    let c = diff(&snap(vec![a.clone()]), &snap(vec![b]));
    assert!(
        matches!(&c[0].what, What::Exited(l) if l.signal == Some(9)),
        "{c:?}"
    );
    assert!(matches!(&c[1].what, What::State { .. }), "{c:?}");
    // Batched: the next knot already runs.
    let mut b = a.clone();
    b.pid = Some(8);
    let c = diff(&snap(vec![a.clone()]), &snap(vec![b]));
    assert!(matches!(&c[0].what, What::Exited(_)), "{c:?}");
    // The same record while the same knot runs: no exit.
    let mut b = a.clone();
    b.restarts = 0;
    assert!(diff(&snap(vec![a]), &snap(vec![b])).is_empty());
}

#[test]
fn a_restart_reads_restart_new_pid_and_ready() {
    let mut a = inst("sb/web.0", "starting", Some(7));
    a.restarts = 2;
    let mut b = inst("sb/web.0", "running", Some(9));
    b.restarts = 3;
    b.ready_since = Some("2026-12-03T08:00:00Z".into());
    let c = diff(&snap(vec![a]), &snap(vec![b]));
    assert_eq!(
        whats(&c),
        [
            What::State {
                from: "starting".into(),
                to: "running".into(),
                next_start: None,
                error: None
            },
            What::Restarted { restarts: 3 },
            What::Pid {
                from: Some(7),
                to: 9
            },
            What::Ready { ready: true },
        ]
    );
    let text: Vec<String> = c.iter().map(|c| line(c, now(), 8)).collect();
    assert_eq!(
        text,
        [
            "08:00:00 sb/web.0 starting → running",
            "08:00:00 sb/web.0 restarted (restart 3)",
            "08:00:00 sb/web.0 new pid 9 (was 7)",
            "08:00:00 sb/web.0 ready",
        ]
    );
}

#[test]
fn a_pid_that_goes_away_is_no_pid_change() {
    let a = inst("sb/web.0", "running", Some(7));
    let mut b = inst("sb/web.0", "backoff", None);
    b.next_start = Some("junk".into());
    let c = diff(&snap(vec![a]), &snap(vec![b]));
    assert_eq!(c.len(), 1, "{c:?}");
    // A next start that does not parse is left out of the text.
    assert_eq!(line(&c[0], now(), 8), "08:00:00 sb/web.0 running → backoff");
}

#[test]
fn a_failure_reads_its_error() {
    let a = inst("sb/web.0", "starting", Some(7));
    let mut b = inst("sb/web.0", "failed", None);
    b.error = Some("/img/c.yaml:2: bad\n".into());
    let c = diff(&snap(vec![a]), &snap(vec![b]));
    assert_eq!(
        line(&c[0], now(), 8),
        "08:00:00 sb/web.0 starting → failed: /img/c.yaml:2: bad"
    );
}

#[test]
fn readiness_lost_while_running_is_a_change_and_leaving_running_is_not() {
    let mut a = inst("sb/web.0", "running", Some(7));
    a.ready_since = Some("2026-12-03T07:00:00Z".into());
    let b = inst("sb/web.0", "running", Some(7));
    assert_eq!(
        whats(&diff(&snap(vec![a.clone()]), &snap(vec![b]))),
        [What::Ready { ready: false }]
    );
    let c = inst("sb/web.0", "stopping", Some(7));
    assert_eq!(diff(&snap(vec![a]), &snap(vec![c])).len(), 1);
}

#[test]
fn config_health_and_status_changes() {
    let a = inst("sb/web.0", "running", Some(7));
    let mut b = a.clone();
    b.config_hash = "bbbbbbbbbbbbbbbbbbbb".into();
    b.health = Some("failing 1/3".into());
    b.status = Some("serving".into());
    let c = diff(&snap(vec![a]), &snap(vec![b]));
    let text: Vec<String> = c.iter().map(|c| line(c, now(), 8)).collect();
    assert_eq!(
        text,
        [
            "08:00:00 sb/web.0 runs config bbbbbbbbbbbb (was aaaaaaaaaaaa)",
            "08:00:00 sb/web.0 health - → failing 1/3",
            "08:00:00 sb/web.0 status: serving",
        ]
    );
}

#[test]
fn upgrades_reloads_and_another_tree() {
    let a = snap(Vec::new());
    let mut b = a.clone();
    b.tree.upgrades = 1;
    b.tree.reloads = 2;
    b.tree.version = "0.2.0".into();
    let c = diff(&a, &b);
    let text: Vec<String> = c.iter().map(|c| line(c, now(), 8)).collect();
    assert_eq!(
        text,
        [
            "08:00:00 tree     upgraded in place to 0.2.0 (upgrade 1)",
            "08:00:00 tree     configs read again (reload 2)",
        ]
    );
    let mut d = a.clone();
    d.tree.pid = 200;
    assert_eq!(whats(&diff(&a, &d)), [What::NewTree { from: 100, to: 200 }]);
}

#[test]
fn config_problems_come_and_go_by_sandbox() {
    let a = snap(Vec::new());
    let mut b = a.clone();
    b.config_errors = vec!["/etc/cairn/processes/sb.yaml:3: bad".into()];
    b.config_problems = vec![ConfigProblem {
        sandbox: "sb".into(),
        error: b.config_errors[0].clone(),
    }];
    let c = diff(&a, &b);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].subject, Subject::Sandbox("sb".into()));
    assert_eq!(
        line(&c[0], now(), 8),
        "08:00:00 sb       config error: /etc/cairn/processes/sb.yaml:3: bad"
    );
    let back = diff(&b, &a);
    assert!(matches!(&back[0].what, What::ConfigFixed { .. }));
    // A problem of master.yaml is the tree's; an older state has only
    // config_errors.
    let mut old = a.clone();
    old.config_errors = vec!["master.yaml: bad".into()];
    assert_eq!(diff(&a, &old)[0].subject, Subject::Tree);
}

#[test]
fn rollouts_start_progress_stop_clear_and_finish() {
    let mut a = snap(Vec::new());
    let mut b = a.clone();
    b.rollouts = vec![rollout("web", "in-progress", 0, 3)];
    let started = diff(&a, &b);
    assert_eq!(
        whats(&started),
        [What::RolloutStarted { done: 0, total: 3 }]
    );
    assert_eq!(
        line(&started[0], now(), 8),
        "08:00:00 sb/web   rollout started (0 of 3 done)"
    );
    let mut c = b.clone();
    c.rollouts = vec![rollout("web", "in-progress", 1, 3)];
    assert_eq!(
        whats(&diff(&b, &c)),
        [What::RolloutProgress { done: 1, total: 3 }]
    );
    let mut d = c.clone();
    d.rollouts = vec![rollout("web", "stopped", 1, 3)];
    let stopped = diff(&c, &d);
    assert_eq!(
        line(&stopped[0], now(), 8),
        "08:00:00 sb/web   rollout stopped: not ready in 5 s (sb/web.0)"
    );
    // A stopped rollout that goes: cleared; a running one: finished.
    assert_eq!(whats(&diff(&d, &a)), [What::RolloutCleared]);
    assert_eq!(whats(&diff(&c, &a)), [What::RolloutFinished]);
    // Stopped, then a new one: started again.
    assert!(matches!(diff(&d, &c)[0].what, What::RolloutStarted { .. }));
    // Nothing moved: no change.
    a.rollouts = vec![rollout("web", "stopped", 1, 3)];
    assert!(diff(&a, &d).is_empty());
}

#[test]
fn a_rollout_starts_before_its_replacements_and_ends_after_them() {
    let a = snap(vec![inst("sb/web.0", "running", Some(7))]);
    let mut b = snap(vec![inst("sb/web.0", "running", Some(8))]);
    b.rollouts = vec![rollout("web", "in-progress", 0, 1)];
    let c = diff(&a, &b);
    assert!(matches!(c[0].what, What::RolloutStarted { .. }), "{c:?}");
    assert!(matches!(c[1].what, What::Pid { .. }), "{c:?}");
    let mut d = snap(vec![inst("sb/web.0", "running", Some(9))]);
    d.rollouts = Vec::new();
    let c = diff(&b, &d);
    assert!(matches!(c[0].what, What::Pid { .. }), "{c:?}");
    assert_eq!(c[1].what, What::RolloutFinished);
}

#[test]
fn filters_keep_their_sandbox_and_instances_entering_or_leaving_a_state() {
    let a = snap(vec![
        inst("sb/web.0", "running", Some(7)),
        inst("other/x.0", "running", Some(8)),
    ]);
    let mut b = snap(vec![
        inst("sb/web.0", "backoff", None),
        inst("other/x.0", "running", Some(9)),
    ]);
    b.tree.reloads = 2;
    b.rollouts = vec![rollout("web", "in-progress", 0, 1)];
    let c = diff(&a, &b);
    let kept = |f: &Filter<'_>| -> Vec<String> {
        c.iter()
            .filter(|c| keeps(f, c))
            .map(|c| line(c, now(), 9))
            .collect()
    };
    let all = Filter::default();
    assert_eq!(kept(&all).len(), 4, "{c:?}");
    let sb = Filter {
        sandbox: Some("sb"),
        state: None,
    };
    assert_eq!(
        kept(&sb),
        [
            "08:00:00 tree      configs read again (reload 2)",
            "08:00:00 sb/web    rollout started (0 of 1 done)",
            "08:00:00 sb/web.0  running → backoff",
        ]
    );
    let backoff = Filter {
        sandbox: None,
        state: Some("backoff"),
    };
    assert_eq!(
        kept(&backoff),
        [
            "08:00:00 tree      configs read again (reload 2)",
            "08:00:00 sb/web.0  running → backoff",
        ]
    );
    // other/x.0 runs before and after: kept by `--state running`.
    let running = Filter {
        sandbox: Some("other"),
        state: Some("running"),
    };
    assert_eq!(
        kept(&running),
        [
            "08:00:00 tree      configs read again (reload 2)",
            "08:00:00 other/x.0 new pid 9 (was 8)",
        ]
    );
}

#[test]
fn lines_fit_80_columns_and_escape_config_text() {
    let a = snap(vec![inst("sb/web.0", "starting", Some(7))]);
    let mut b = snap(vec![inst("sb/web.0", "failed", None)]);
    b.instances[0].error = Some(format!("bad \u{1b}[2J{}", "x".repeat(100)));
    let c = diff(&a, &b);
    let text = line(&c[0], now(), 8);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0].chars().count(), 80, "{text}");
    assert!(lines[0].ends_with('…'));
    assert!(
        lines[1].starts_with("  starting → failed: bad \\x1b[2Jxxx"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn json_names_the_event_its_subject_and_its_fields() {
    let a = snap(vec![inst("sb/web.0", "running", Some(7))]);
    let mut i = inst("sb/web.0", "backoff", None);
    i.last_exit = Some(exit(3, None, "2026-12-03T07:59:59Z"));
    i.next_start = Some("2026-12-03T08:00:30Z".into());
    let c = diff(&a, &snap(vec![i]));
    let at = now() + Duration::from_millis(250);
    assert_eq!(
        to_json(&c[1], at),
        json!({
            "at": "2026-12-03T08:00:00.250Z",
            "event": "state",
            "instance": "sb/web.0",
            "sandbox": "sb",
            "process": "web",
            "state": "backoff",
            "from": "running",
            "to": "backoff",
            "next_start": "2026-12-03T08:00:30Z",
            "error": null,
        })
    );
    let e = to_json(&c[0], at);
    assert_eq!(e["event"], "exit");
    assert_eq!(e["last_exit"]["status"], 3);
    assert_eq!(e["last_exit"]["failure"], true);
    let end = Change {
        subject: Subject::Tree,
        what: What::Ended {
            pid: 100,
            why: "no cairn tree runs".into(),
        },
    };
    assert_eq!(
        to_json(&end, at),
        json!({"at": "2026-12-03T08:00:00.250Z", "event": "tree_ended", "pid": 100, "why": "no cairn tree runs"})
    );
    assert_eq!(
        line(&end, at, 8),
        "08:00:00 tree     ended (pid 100): no cairn tree runs"
    );
    let r = Change {
        subject: Subject::Process {
            sandbox: "sb".into(),
            process: "web".into(),
        },
        what: What::RolloutStopped {
            instance: Some("sb/web.1".into()),
            reason: Some("exited 1".into()),
        },
    };
    assert_eq!(
        to_json(&r, at),
        json!({"at": "2026-12-03T08:00:00.250Z", "event": "rollout_stopped", "sandbox": "sb", "process": "web", "failed_instance": "sb/web.1", "reason": "exited 1"})
    );
}
