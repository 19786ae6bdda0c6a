//! Stopping: a workload that ignores SIGTERM is killed after its
//! kill-timeout; SIGTERM stops the tree and everything under it and
//! cleans up (runtime files, state dirs, cgroups); a second stop signal
//! kills at once.

use super::*;

/// A workload that ignores SIGTERM (its children too: SIG_IGN is inherited).
fn stubborn(extra: &str) -> String {
    sh("trap '' TERM; while :; do sleep 1; done", extra)
}

#[test]
fn workload_ignoring_term_is_killed_after_kill_timeout() {
    let mut fx = fixture!();
    fx.container("stubborn", &stubborn("kill-timeout: 0.5\n"));
    fx.container("calm", &sleeper(""));
    fx.processes(&[("stubborn", 1), ("calm", 1)]);
    fx.start();
    let ps = fx.wait_ps("both running", |ps| {
        all_running(ps, &["box/stubborn.0", "box/calm.0"])
    });
    let (knot, work) = pids(&ps, "box/stubborn.0");
    let calm = pids(&ps, "box/calm.0");
    let out = fx.switch("calm-only.yaml", &processes_yaml(&[("calm", 1)]));
    assert!(out.status.success(), "{}", stderr(&out));
    let asked = Instant::now();
    let mut saw_stopping = false;
    while alive(knot) {
        assert!(asked.elapsed() < WAIT, "the knot never died");
        if !saw_stopping && asked.elapsed() > Duration::from_millis(150) {
            let ps = fx.ps();
            if alive(knot) {
                assert_eq!(state(&ps, "box/stubborn.0"), Some("stopping"), "{ps}");
                saw_stopping = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone = asked.elapsed();
    assert!(
        gone >= Duration::from_millis(400) && gone <= Duration::from_millis(1200),
        "the knot died {gone:?} after the switch; kill-timeout is 0.5 s"
    );
    assert!(saw_stopping, "never saw stubborn.0 in stopping");
    assert!(!alive(work));
    let ps = fx.wait_ps("stubborn.0 gone", |ps| inst(ps, "box/stubborn.0").is_none());
    assert_eq!(pids(&ps, "box/calm.0"), calm);
    assert!(
        fx.log()
            .contains("box/stubborn.0: still running after kill-timeout; killing"),
        "{}",
        fx.log()
    );
    // Stopped by the tree: not a failure.
    fx.expect_metrics(&[
        ("cairn_deaths_total", "stubborn", 1),
        ("cairn_failures_total", "stubborn", 0),
    ]);
}

#[test]
fn sigterm_stops_everything_and_cleans_up() {
    let mut fx = fixture!();
    fx.container("stubborn", &stubborn("kill-timeout: 0.5\n"));
    fx.container("web", &sleeper(""));
    fx.processes(&[("stubborn", 1), ("web", 2)]);
    fx.start();
    let all = ["box/stubborn.0", "box/web.0", "box/web.1"];
    let ps = fx.wait_ps("all running", |ps| all_running(ps, &all));
    let mut ours: BTreeSet<i32> = all
        .iter()
        .flat_map(|n| {
            let (k, w) = pids(&ps, n);
            [k, w]
        })
        .collect();
    for leaf in cgroup_leaves(&fx.cgroup.name) {
        ours.extend(cgroup_procs(&leaf));
    }
    assert!(fx.set.p("run/tree.pid").exists());
    let (status, took) = fx.stop_tree(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", fx.log());
    assert!(
        took >= Duration::from_millis(400) && took <= Duration::from_secs(2),
        "the tree took {took:?}; stubborn's kill-timeout is 0.5 s"
    );
    for pid in &ours {
        assert!(!alive(*pid), "pid {pid} survived the tree");
    }
    for f in ["run/tree.pid", "run/state.json", "run/metrics.prom"] {
        assert!(!fx.set.p(f).exists(), "{f} is left");
    }
    for root in cgroup_root_dirs(&fx.cgroup.name) {
        assert!(!root.exists(), "cgroup {} is left", root.display());
    }
    let left: Vec<PathBuf> = fs::read_dir(fx.set.p("run/state/box"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "instance state dirs left: {left:?}");
    let log = fx.log();
    assert!(log.contains("all instances stopped; exiting"), "{log}");
    // Nothing runs now, and the commands say so.
    let out = cairn(&["ps", "-c", &fx.master_path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no cairn tree runs"),
        "{}",
        stderr(&out)
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no cairn tree runs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn second_stop_signal_kills_at_once() {
    let mut fx = fixture!();
    fx.container("stubborn", &stubborn("kill-timeout: 30\n"));
    fx.processes(&[("stubborn", 1)]);
    fx.start();
    let ps = fx.wait_ps("running", |ps| all_running(ps, &["box/stubborn.0"]));
    let (knot, _) = pids(&ps, "box/stubborn.0");
    kill(fx.tree_pid(), libc::SIGINT);
    fx.wait_ps("stopping", |ps| {
        state(ps, "box/stubborn.0") == Some("stopping")
    });
    let (status, took) = fx.stop_tree(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(!alive(knot));
    assert!(fx.log().contains("second stop signal"), "{}", fx.log());
}

/// `stop-signal: QUIT` (nginx's graceful stop): a stop reaches the
/// workload as QUIT, not TERM; KILL still follows after kill-timeout.
#[test]
fn stop_signal_reaches_the_workload_instead_of_term() {
    let mut fx = fixture!();
    let script = "trap 'echo stop-by-quit; exit 0' QUIT; trap 'echo stop-by-term; exit 0' TERM; \
                  echo up; sleep 1000 & wait";
    fx.container("quits", &sh(script, "stop-signal: QUIT\nkill-timeout: 5\n"));
    fx.container("terms", &sh(script, "kill-timeout: 5\n"));
    fx.processes(&[("quits", 1), ("terms", 1)]);
    fx.start();
    let both = ["box/quits.0", "box/terms.0"];
    let ps = fx.wait_ps("both running", |ps| all_running(ps, &both));
    let knots: Vec<i32> = both.iter().map(|n| pids(&ps, n).0).collect();
    let stdio = fx.set.p("log/stdio/box.log");
    wait_for(Duration::from_secs(5), "both up", || {
        let t = fs::read_to_string(&stdio).ok()?;
        (t.matches("up\n").count() == 2).then_some(())
    });
    let out = fx.switch("none.yaml", "{}\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let asked = Instant::now();
    for k in knots {
        while alive(k) {
            assert!(asked.elapsed() < WAIT, "a knot never died");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Both stopped at once by their own trap, not killed at kill-timeout.
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    let text = fs::read_to_string(&stdio).expect("stdio log");
    assert_eq!(text.matches("stop-by-quit").count(), 1, "{text}");
    assert_eq!(text.matches("stop-by-term").count(), 1, "{text}");
}
