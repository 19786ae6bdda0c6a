//! `ready: !Exec [...]` and `health-check: !Exec [...]`: the command runs
//! inside the instance as `cairn exec` runs one (its namespaces and tmpfs,
//! its uid, no capability, its filter), exit 0 passes; an attempt past its
//! timeout is killed with what it started.

use super::*;

/// A sleeping Daemon with a tmpfs on /tmp, running `script` first, plus
/// `extra` keys.
fn with_tmp(script: &str, extra: &str) -> String {
    sh(
        &format!("{script}\nexec sleep 1000"),
        &format!("volumes:\n  /tmp: !Tmpfs {{size: 1Mi}}\n{extra}"),
    )
}

/// The `sleep 100` processes in instance `name`'s cgroup leaf.
fn sleepers(fx: &Fx, name: &str) -> Vec<i32> {
    let leaf = name.replace('/', ":");
    cgroup_leaves(&fx.cgroup.name)
        .into_iter()
        .filter(|d| d.to_string_lossy().ends_with(&leaf))
        .flat_map(|d| cgroup_procs(&d))
        .filter(|p| {
            fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).nth(1) == Some(b"100"))
        })
        .collect::<BTreeSet<i32>>()
        .into_iter()
        .collect()
}

#[test]
fn exec_readiness_runs_inside_the_instance_until_it_exits_0() {
    let mut fx = fixture!();
    // Ready once /tmp/ready exists in the container's own tmpfs, and only
    // if the probe runs as the instance's uid, without capabilities,
    // under the filter, in the same pid namespace as the workload.
    let check = format!(
        "test -f /tmp/ready && test \"$(id -u)\" = {UID} \
         && grep -q '^CapEff:.0000000000000000' /proc/self/status \
         && grep -q '^Seccomp:.2' /proc/self/status \
         && grep -q '^NoNewPrivs:.1' /proc/self/status \
         && pidof sleep >/dev/null"
    );
    fx.container(
        "slow",
        &with_tmp(
            "sleep 1.5; touch /tmp/ready",
            &format!(
                "ready: !Exec [sh, -c, {}]\nready-timeout: 20\n",
                json(&check)
            ),
        ),
    );
    fx.processes(&[("slow", 1)]);
    let t0 = Instant::now();
    fx.start();
    let ps = fx.wait_ps("slow.0 exec'd", |ps| {
        inst(ps, "box/slow.0").is_some_and(|i| i["workload_pid"].is_i64())
    });
    if t0.elapsed() < Duration::from_millis(1300) {
        assert_eq!(state(&ps, "box/slow.0"), Some("starting"), "{ps}");
    }
    let ps = fx.wait_ps("slow.0 ready", |ps| {
        state(ps, "box/slow.0") == Some("running")
    });
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "ready after {:?}, before /tmp/ready was there",
        t0.elapsed()
    );
    let i = inst(&ps, "box/slow.0").expect("listed");
    assert_eq!(i["restarts"], 0, "{i}");
    assert!(i["ready_since"].is_string(), "{i}");
}

/// A probe that cannot run says why in the log, once.
#[test]
fn an_exec_probe_that_cannot_run_says_why_once() {
    let mut fx = fixture!();
    fx.container(
        "broken",
        &sleeper("ready: !Exec [/bin/no-such-probe]\nready-timeout: 1\nrestart-timeout: 30\n"),
    );
    fx.processes(&[("broken", 1)]);
    fx.start();
    let ps = fx.wait_ps("broken.0 backing off", |ps| {
        state(ps, "box/broken.0") == Some("backoff")
    });
    let i = inst(&ps, "box/broken.0").expect("listed");
    assert!(
        i["error"]
            .as_str()
            .is_some_and(|e| e.contains("not ready within ready-timeout (1 s); killed")),
        "{i}"
    );
    let log = fx.log();
    let said = "box/broken.0: !Exec probe: cannot execute /bin/no-such-probe: No such file or directory (os error 2) (status 127)";
    assert_eq!(log.matches(said).count(), 1, "{log}");
}

#[test]
fn a_failing_exec_health_check_restarts_the_instance() {
    let mut fx = fixture!();
    // Healthy while /tmp/ok exists: 2 s after the start it goes.
    fx.container(
        "sick",
        &with_tmp(
            "touch /tmp/ok; (sleep 2; rm /tmp/ok) &",
            "health-check: !Exec [test, -f, /tmp/ok]\nhealth-interval: 0.3\n\
             health-timeout: 0.3\nhealth-failures: 2\nrestart-timeout: 30\n",
        ),
    );
    fx.processes(&[("sick", 1)]);
    fx.start();
    let ps = fx.wait_ps("sick.0 healthy", |ps| {
        inst(ps, "box/sick.0").is_some_and(|i| i["health"] == "ok")
    });
    let first = pids(&ps, "box/sick.0").0;
    let ps = fx.wait_ps("sick.0 killed for its health", |ps| {
        inst(ps, "box/sick.0").is_some_and(|i| i["last_exit"]["signal"] == 9)
    });
    let i = inst(&ps, "box/sick.0").expect("listed");
    assert!(
        i["error"]
            .as_str()
            .is_some_and(|e| e.contains("health check failed 2 times in a row; killed")),
        "{i}"
    );
    assert!(!alive(first), "the old knot lives on");
    fx.expect_metrics(&[("cairn_failures_total", "sick", 1)]);
}

#[test]
fn an_exec_probe_past_its_timeout_is_killed_with_what_it_started() {
    let mut fx = fixture!();
    // Every attempt hangs (a shell waiting on a sleep it started): each is
    // killed after 1 s, the next one starts 0.25 s later; never more
    // than one runs, and the tree goes on with its other instances.
    fx.container(
        "hung",
        &sleeper(
            "ready: !Exec [sh, -c, 'sleep 100; true']\nready-timeout: 4\nrestart-timeout: 30\n",
        ),
    );
    fx.container("plain", &sleeper(""));
    fx.processes(&[("hung", 1), ("plain", 1)]);
    fx.start();
    fx.wait_ps("plain.0 running, hung.0 starting", |ps| {
        all_running(ps, &["box/plain.0"]) && state(ps, "box/hung.0") == Some("starting")
    });
    let start = Instant::now();
    let mut seen = BTreeSet::new();
    while start.elapsed() < Duration::from_millis(3000) {
        let now = sleepers(&fx, "box/hung.0");
        assert!(now.len() <= 1, "more than one attempt at once: {now:?}");
        seen.extend(now);
        // The tree answers meanwhile.
        assert!(fx.try_ps().is_some());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen.len() >= 2, "attempts seen: {seen:?}");
    for p in &seen {
        // Killed at its timeout, while the instance still runs (at most
        // the last one is still under way).
        if sleepers(&fx, "box/hung.0").contains(p) {
            continue;
        }
        assert!(!alive(*p), "{p} outlived its attempt");
    }
    let ps = fx.wait_ps("hung.0 backing off", |ps| {
        state(ps, "box/hung.0") == Some("backoff")
    });
    assert!(all_running(&ps, &["box/plain.0"]));
}
