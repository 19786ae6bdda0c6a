use super::*;

/// A state.json with these instances `(name, state)` and rollouts
/// `(sandbox, process, state, reason)`, and config problems `(sandbox,
/// error)`.
fn snap(
    instances: &[(&str, &str)],
    rollouts: &[(&str, &str, &str, Option<&str>)],
    problems: &[(&str, &str)],
) -> Snapshot {
    let instances: Vec<_> = instances
        .iter()
        .map(|(name, state)| {
            let (sandbox, rest) = name.split_once('/').expect("SANDBOX/PROCESS.N");
            let (process, index) = rest.rsplit_once('.').expect("PROCESS.N");
            serde_json::json!({
                "name": name, "sandbox": sandbox, "process": process,
                "index": index.parse::<u32>().expect("N"), "state": state, "pid": null,
                "restarts": 0, "since": "", "image": "", "config_hash": "",
                "last_exit": if *state == "backoff" {
                    serde_json::json!({"status": 1, "signal": null, "oom_killed": false,
                                       "failure": true, "at": "", "error": null})
                } else { serde_json::Value::Null },
                "error": if *state == "failed" { Some("bad\u{1b}[31m") } else { None },
            })
        })
        .collect();
    let rollouts: Vec<_> = rollouts
        .iter()
        .map(|(s, p, state, reason)| {
            serde_json::json!({"sandbox": s, "process": p, "state": state,
                               "instance": null, "reason": reason, "since": null,
                               "done": 1, "total": 3})
        })
        .collect();
    let problems: Vec<_> = problems
        .iter()
        .map(|(s, e)| serde_json::json!({"sandbox": s, "error": e}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "tree": {"pid": 1, "version": "", "started": "", "upgrades": 0, "reloads": 1,
                 "config": ""},
        "instances": instances, "config_errors": [], "rollouts": rollouts,
        "config_problems": problems,
    }))
    .expect("a snapshot")
}

#[test]
fn done_when_every_instance_of_the_scope_runs_and_no_rollout_is_under_way() {
    let s = snap(&[("a/web.0", "running"), ("a/web.1", "running")], &[], &[]);
    assert_eq!(verdict(&s, &Scope::all()), Verdict::Done(2));
    assert_eq!(verdict(&s, &Scope::sandbox("a")), Verdict::Done(2));
    assert_eq!(verdict(&s, &Scope::restart("a/web.1")), Verdict::Done(1));
    // Nothing in the scope: nothing to wait for.
    assert_eq!(verdict(&s, &Scope::sandbox("b")), Verdict::Done(0));
}

#[test]
fn a_rollout_in_progress_or_an_instance_on_its_way_is_waited_for() {
    let s = snap(
        &[("a/web.0", "running"), ("a/web.1", "starting")],
        &[("a", "web", "in-progress", None)],
        &[],
    );
    assert_eq!(
        verdict(&s, &Scope::all()),
        Verdict::Pending(vec![
            "a/web: rollout in progress (1 of 3 done)".into(),
            "a/web.1: starting".into()
        ])
    );
    // A restart of web.0 alone still waits for its process's rollout.
    assert!(matches!(
        verdict(&s, &Scope::restart("a/web.0")),
        Verdict::Pending(_)
    ));
    for st in ["stopping", "backoff"] {
        let s = snap(&[("a/web.0", st)], &[], &[]);
        let Verdict::Pending(p) = verdict(&s, &Scope::all()) else {
            panic!("{st}: not pending");
        };
        assert!(p[0].starts_with(&format!("a/web.0: {st}")), "{p:?}");
    }
    let s = snap(&[("a/web.0", "backoff")], &[], &[]);
    assert_eq!(
        verdict(&s, &Scope::all()),
        Verdict::Pending(vec!["a/web.0: backoff (last exit 1)".into()])
    );
}

#[test]
fn a_stopped_rollout_a_failed_instance_or_a_config_problem_fails_at_once() {
    let s = snap(
        &[("a/web.0", "backoff"), ("a/web.1", "running")],
        &[(
            "a",
            "web",
            "stopped",
            Some("a/web.0 exited with status 1 within min-ready"),
        )],
        &[],
    );
    assert_eq!(
        verdict(&s, &Scope::sandbox("a")),
        Verdict::Failed(vec![
            "a/web: rollout stopped: a/web.0 exited with status 1 within min-ready".into()
        ])
    );
    // Untrusted text is escaped: one line each.
    let s = snap(&[("a/web.0", "failed")], &[], &[]);
    assert_eq!(
        verdict(&s, &Scope::all()),
        Verdict::Failed(vec!["a/web.0: failed: bad\\x1b[31m".into()])
    );
    let s = snap(
        &[("a/web.0", "running")],
        &[],
        &[("a", "/img/config/web.yaml:3: executable: bad\n")],
    );
    assert_eq!(
        verdict(&s, &Scope::all()),
        Verdict::Failed(vec![
            "config error: /img/config/web.yaml:3: executable: bad\\n".into()
        ])
    );
    // Another sandbox's problem is not a switch's; master.yaml's is.
    assert_eq!(verdict(&s, &Scope::sandbox("b")), Verdict::Done(0));
    let s = snap(&[], &[], &[("", "master.yaml: runtime-dir: bad")]);
    assert!(matches!(
        verdict(&s, &Scope::sandbox("b")),
        Verdict::Failed(_)
    ));
    // A restart loads no config: problems are not its own.
    assert_eq!(verdict(&s, &Scope::restart("b")), Verdict::Done(0));
}

#[test]
fn a_restart_scope_is_its_sandbox_process_or_instance() {
    let s = snap(
        &[
            ("a/web.0", "running"),
            ("a/web.1", "starting"),
            ("a/web2.0", "backoff"),
            ("b/web.0", "stopping"),
        ],
        &[("a", "web2", "in-progress", None)],
        &[],
    );
    assert_eq!(verdict(&s, &Scope::restart("a/web.0")), Verdict::Done(1));
    let pending = |scope: Scope| match verdict(&s, &scope) {
        Verdict::Pending(p) => p,
        v => panic!("{v:?}"),
    };
    assert_eq!(pending(Scope::restart("a/web")), ["a/web.1: starting"]);
    assert_eq!(pending(Scope::restart("a/web.1")), ["a/web.1: starting"]);
    assert_eq!(
        pending(Scope::restart("a/web2")),
        [
            "a/web2: rollout in progress (1 of 3 done)",
            "a/web2.0: backoff (last exit 1)"
        ]
    );
    assert_eq!(pending(Scope::restart("a")).len(), 3);
    assert_eq!(pending(Scope::restart("b")), ["b/web.0: stopping"]);
}
