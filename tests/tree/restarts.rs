//! Starting and restarting: every instance starts as configured (user,
//! filter, pid 1 of its container, its cgroup leaves); a killed workload
//! is replaced within its restart-timeout; a crash loop backs off
//! exponentially while its siblings run on; a normal exit code restarts
//! without back-off; a restart storm is refused under a default sandbox.

use super::*;

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn starts_every_instance() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 3)]);
    fx.start();
    let web = names("web", 3);
    let ps = fx.wait_ps("3 instances running", |ps| all_running(ps, &refs(&web)));
    assert_eq!(insts(&ps).len(), 3, "{ps}");
    let tree_kids = descendants(fx.tree_pid());
    let roots = fx.cgroup_roots();
    assert!(!roots.is_empty(), "no cgroup root for {}", fx.cgroup.name);
    let mut seen = BTreeSet::new();
    for (n, name) in web.iter().enumerate() {
        let i = inst(&ps, name).expect("listed");
        assert_eq!(i["sandbox"], "box");
        assert_eq!(i["process"], "web");
        assert_eq!(i["index"], n);
        assert_eq!(i["restarts"], 0);
        assert_eq!(i["image"], "bb");
        let leaf = format!("box:web.{n}");
        assert_eq!(i["cgroup"], leaf.as_str());
        let (knot, work) = pids(&ps, name);
        assert!(seen.insert(knot) && seen.insert(work), "pids repeat: {ps}");
        // The workload is real, runs as the configured user, and sits
        // below its knot, which sits below the tree.
        let status = fs::read_to_string(format!("/proc/{work}/status"))
            .unwrap_or_else(|e| panic!("/proc/{work}/status: {e}"));
        assert!(
            status.lines().any(|l| l.starts_with("Uid:\t1000\t")),
            "{status}"
        );
        // Under the default system call filter (compiled once by the tree).
        assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
        assert!(tree_kids.contains(&knot), "knot {knot} is not the tree's");
        assert!(descendants(knot).contains(&work));
        // The knot is pid 1 of the container, the workload its child.
        assert_eq!(nspids(knot).last(), Some(&1), "{name}: knot is not pid 1");
        assert_eq!(ppid(work), Some(knot));
        // Its cgroups are the instance leaf in every hierarchy cairn uses.
        let cg = fs::read_to_string(format!("/proc/{work}/cgroup")).expect("cgroup");
        let suffix = format!("/{}/{leaf}", fx.cgroup.name);
        for ctl in [":memory:", ":pids:", ":cpu:"] {
            assert!(
                cg.lines().any(|l| l.contains(ctl) && l.ends_with(&suffix)),
                "{ctl} of {name} is not {suffix}:\n{cg}"
            );
        }
        for l in cg.lines().filter(|l| l.contains(&fx.cgroup.name)) {
            assert!(l.ends_with(&suffix), "{name}: {l}");
        }
        assert!(
            roots
                .iter()
                .any(|r| cgroup_procs(&r.join(&leaf)).contains(&work)),
            "{work} not in any {leaf}/cgroup.procs"
        );
    }
    fx.expect_metrics(&[("cairn_running", "web", 3), ("cairn_started_total", "", 3)]);
}

#[test]
fn killed_workload_is_replaced_within_restart_timeout() {
    let mut fx = fixture!();
    fx.container("web", &sleeper("restart-timeout: 0.5\n"));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let ran_from = Instant::now();
    let (knot, work) = pids(&ps, "box/web.0");
    // Past restart-timeout since its start: the replacement is due at once.
    std::thread::sleep(Duration::from_millis(600).saturating_sub(ran_from.elapsed()));
    kill(work, libc::SIGKILL);
    let killed = Instant::now();
    let ps = fx.wait_ps("a new web.0", |ps| {
        all_running(ps, &["box/web.0"]) && pids(ps, "box/web.0").0 != knot
    });
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "replaced after {took:?}; restart-timeout is 0.5 s"
    );
    let i = inst(&ps, "box/web.0").expect("listed");
    assert_eq!(i["restarts"], 1, "{i}");
    let last = &i["last_exit"];
    assert_eq!(last["status"], 137, "{i}");
    assert_eq!(last["signal"], 9, "{i}");
    assert_eq!(last["failure"], true, "{i}");
    assert_eq!(last["oom_killed"], false, "{i}");
    assert!(last["error"].is_null(), "{i}");
    assert!(!alive(knot) && !alive(work));
    fx.expect_metrics(&[
        ("cairn_started_total", "web", 2),
        ("cairn_deaths_total", "web", 1),
        ("cairn_failures_total", "web", 1),
        ("cairn_failures_total", "", 1),
        ("cairn_running", "web", 1),
    ]);
    let sandbox_log = fs::read_to_string(fx.set.p("log/box.log")).expect("sandbox log");
    assert!(
        sandbox_log.contains("box/web.0: exited with status 137 (failure)"),
        "{sandbox_log}"
    );
    assert_eq!(sandbox_log.matches("box/web.0: started").count(), 2);
}

/// Start times (seconds since boot) printed by each start of a workload
/// (see `stamp`), read from the sandbox's stdio log (after its line
/// prefix: `TIME INSTANCE `).
fn starts_in_log(fx: &Fx, tag: &str) -> Vec<f64> {
    fs::read_to_string(fx.set.p("log/stdio/box.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(tag).map(|(_, v)| v))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .map(|ms| ms / 1000.0)
        .collect()
}

/// Prints `TAG SECONDS` when it starts, then runs `then`. SECONDS is when
/// its knot (pid 1 of the container) was forked, in seconds since boot
/// (field 22 of /proc/1/stat, in 10 ms ticks: USER_HZ is 100): the time the tree's restart
/// timer governs, free of the jitter of building the container.
fn stamp(tag: &str, then: &str) -> String {
    format!("set -- $(cat /proc/1/stat); echo \"{tag} $((${{22}} * 10))\"; {then}")
}

#[test]
fn crash_loop_backs_off_while_siblings_run() {
    let mut fx = fixture!();
    fx.container(
        "crash",
        &sh(&stamp("crash-start", "exit 1"), "restart-timeout: 0.1\n"),
    );
    fx.container("steady", &sleeper(""));
    fx.processes(&[("crash", 1), ("steady", 2)]);
    fx.start();
    let steady = names("steady", 2);
    let ps = fx.wait_ps("steady running", |ps| all_running(ps, &refs(&steady)));
    let before: Vec<(i32, i32)> = steady.iter().map(|n| pids(&ps, n)).collect();
    let starts = wait_for(Duration::from_secs(8), "5 starts of crash.0", || {
        let s = starts_in_log(&fx, "crash-start ");
        (s.len() >= 5).then_some(s)
    });
    // restart-timeout × 2^(n-1): 0.1, 0.2, 0.4, 0.8 s between starts.
    // The stamps have 10 ms steps, and the tree's timer starts when it
    // decides to start, a little before the fork (more so on a busy host):
    // hence some slack below the exact delays.
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    for (n, (gap, want)) in gaps.iter().zip([0.1, 0.2, 0.4, 0.8]).enumerate() {
        assert!(
            *gap >= want - 0.05 && *gap <= want * 1.5 + 0.15,
            "gap {n} is {gap:.2} s, want ~{want} s; all gaps {gaps:?}"
        );
    }
    let total = starts[4] - starts[0];
    assert!(total >= 1.5 - 0.05, "5 starts in {total:.2} s, want 1.5 s");
    // (The first gaps are too short to compare against that jitter.)
    for w in gaps[1..].windows(2).take(2) {
        assert!(w[1] > w[0] * 1.4, "gaps do not grow: {gaps:?}");
    }
    // After the fifth quick death it waits 1.6 s: ps says so.
    let ps = fx.wait_ps("crash.0 in backoff after 4 restarts", |ps| {
        state(ps, "box/crash.0") == Some("backoff")
            && inst(ps, "box/crash.0").is_some_and(|i| i["restarts"] == 4)
    });
    let i = inst(&ps, "box/crash.0").expect("listed");
    let next = i["next_start"].as_str().unwrap_or_else(|| panic!("{i}"));
    let now = now_epoch();
    assert!(
        (now - 1..=now + 3).contains(&epoch(next)),
        "next_start {next} is not ~1.6 s from now ({now})"
    );
    assert!(i["pid"].is_null() && i["workload_pid"].is_null(), "{i}");
    assert_eq!(i["last_exit"]["status"], 1, "{i}");
    assert_eq!(i["last_exit"]["failure"], true, "{i}");
    // The siblings never noticed.
    for (n, name) in steady.iter().enumerate() {
        assert_eq!(pids(&ps, name), before[n], "{name} was restarted");
        assert_eq!(inst(&ps, name).expect("listed")["restarts"], 0);
    }
    fx.expect_metrics(&[
        ("cairn_failures_total", "crash", 5),
        ("cairn_deaths_total", "crash", 5),
        ("cairn_started_total", "crash", 5),
        ("cairn_deaths_total", "steady", 0),
        ("cairn_running", "steady", 2),
        ("cairn_running", "crash", 0),
    ]);
}

#[test]
fn normal_exit_code_is_no_failure_and_does_not_back_off() {
    let mut fx = fixture!();
    fx.container(
        "batch",
        &sh(
            &stamp("batch-start", "exit 3"),
            "restart-timeout: 0.2\nnormal-exit-codes: [3]\n",
        ),
    );
    fx.processes(&[("batch", 1)]);
    fx.start();
    let starts = wait_for(Duration::from_secs(8), "5 starts of batch.0", || {
        let s = starts_in_log(&fx, "batch-start ");
        (s.len() >= 5).then_some(s)
    });
    // Always restart-timeout apart: no exponential growth (slack as in
    // `crash_loop_backs_off_while_siblings_run`).
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    for gap in &gaps {
        assert!((0.15..=0.45).contains(gap), "gaps {gaps:?}, want ~0.2 s");
    }
    let total = starts[4] - starts[0];
    assert!(total >= 0.8 - 0.05, "5 starts in {total:.2} s, want 0.8 s");
    let ps = fx.ps();
    let i = inst(&ps, "box/batch.0").expect("listed");
    assert_eq!(i["last_exit"]["status"], 3, "{i}");
    assert_eq!(i["last_exit"]["failure"], false, "{i}");
    fx.expect_metrics_at_least(&[("cairn_deaths_total", "batch", 4)]);
    assert_eq!(fx.metric("cairn_failures_total", "batch"), Some(0));
}

/// Issue 10: a container config cannot start a restart storm. Under a
/// sandbox without ceiling keys, `restart-timeout: 0` with
/// `normal-exit-codes: [0]` (once 3,357 starts of 5 instances in 10 s) is
/// refused and never started, and a config that leaves restart-timeout out
/// starts at most once a second.
#[test]
fn restart_storm_is_refused_under_the_default_sandbox() {
    let mut fx = fixture!();
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n",
            fx.set.s("images"),
        ),
    );
    let storm = fx.container(
        "storm",
        &sh("exit 0", "restart-timeout: 0\nnormal-exit-codes: [0]\n"),
    );
    fx.container(
        "quick",
        &sh(&stamp("quick-start", "exit 0"), "normal-exit-codes: [0]\n"),
    );
    fx.processes(&[("storm", 5), ("quick", 1)]);
    fx.start();
    let starts = wait_for(Duration::from_secs(10), "3 starts of quick.0", || {
        let s = starts_in_log(&fx, "quick-start ");
        (s.len() >= 3).then_some(s)
    });
    // The default min-restart-timeout of 1 s applies to the unset key
    // (slack for the 10 ms stamps, as in the tests above).
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= 0.95),
        "gaps {gaps:?}, want >= 1 s"
    );
    let ps = fx.ps();
    let want = format!(
        "{}:8: restart-timeout: 0 is below the sandbox's min-restart-timeout 1 ({}",
        storm.display(),
        fx.set.s("sandboxes/box.yaml")
    );
    for name in names("storm", 5) {
        let i = inst(&ps, &name).unwrap_or_else(|| panic!("no {name} in {ps}"));
        assert_eq!(i["state"], "failed", "{i}");
        assert_eq!(i["restarts"], 0, "{i}");
        let err = i["error"].as_str().unwrap_or_else(|| panic!("{i}"));
        assert!(err.contains(&want), "{name}: {err}\nwant {want}");
    }
    assert_eq!(fx.metric("cairn_started_total", "storm").unwrap_or(0), 0);
}
