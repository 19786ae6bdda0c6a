//! Readiness (`ready` in the container config): an instance stays
//! `starting` until its service says it is ready (`!Fd`), accepts a
//! connection (`!Tcp`) or answers HTTP 2xx/3xx (`!Http`); one that is not
//! ready within `ready-timeout` is killed and backs off as a failed start.

use super::*;

/// Poll until `name` is `running`; the states seen on the way, and the
/// time it took from `from`.
fn watch_until_running(fx: &Fx, name: &str, from: Instant) -> (Vec<String>, Duration, Value) {
    let mut seen: Vec<String> = Vec::new();
    loop {
        assert!(
            from.elapsed() < WAIT,
            "{name} never ran; seen {seen:?}\n{}",
            fx.log()
        );
        if let Some(ps) = fx.try_ps() {
            if let Some(s) = state(&ps, name) {
                if seen.last().map(String::as_str) != Some(s) {
                    seen.push(s.to_string());
                }
                if s == "running" {
                    return (seen, from.elapsed(), ps);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fd_readiness_keeps_the_instance_starting_until_the_newline() {
    let mut fx = fixture!();
    fx.container(
        "slow",
        &sh(
            "sleep 2; echo ready >&3; exec sleep 1000",
            "ready: !Fd 3\nready-timeout: 20\n",
        ),
    );
    fx.processes(&[("slow", 1)]);
    let t0 = Instant::now();
    fx.start();
    // Its program runs (a workload pid) while it is still `starting`.
    let ps = fx.wait_ps("slow.0 exec'd", |ps| {
        inst(ps, "box/slow.0").is_some_and(|i| i["workload_pid"].is_i64())
    });
    if t0.elapsed() < Duration::from_millis(1800) {
        let i = inst(&ps, "box/slow.0").expect("listed");
        assert_eq!(i["state"], "starting", "{i}");
        assert!(i["ready_since"].is_null(), "{i}");
    }
    let (seen, took, ps) = watch_until_running(&fx, "box/slow.0", t0);
    assert!(seen.contains(&"starting".to_string()), "{seen:?}");
    assert!(
        took >= Duration::from_secs(2),
        "running after {took:?}, ready after 2 s"
    );
    let i = inst(&ps, "box/slow.0").expect("listed");
    assert!(i["ready_since"].is_string(), "{i}");
    assert_eq!(i["restarts"], 0, "{i}");
}

#[test]
fn tcp_and_http_readiness_wait_for_the_service() {
    let mut fx = fixture!();
    let (tcp, http) = (free_port(), free_port());
    fx.container(
        "tcp",
        &sh(
            &format!("sleep 1.5; exec nc -ll -p {tcp} -e true"),
            &format!("ready: !Tcp {tcp}\n"),
        ),
    );
    fx.container(
        "http",
        &sh(
            &format!("sleep 1.5; exec httpd -f -p 127.0.0.1:{http} -h /etc"),
            &format!("ready: !Http {{port: {http}, path: /hosts}}\n"),
        ),
    );
    fx.processes(&[("tcp", 1), ("http", 1)]);
    let t0 = Instant::now();
    fx.start();
    // Both start at once: watch both together.
    let names = ["box/tcp.0", "box/http.0"];
    let mut seen: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut ran: BTreeMap<&str, Duration> = BTreeMap::new();
    while ran.len() < names.len() {
        assert!(
            t0.elapsed() < WAIT,
            "not both running; seen {seen:?}\n{}",
            fx.log()
        );
        if let Some(ps) = fx.try_ps() {
            for name in names {
                let Some(s) = state(&ps, name) else { continue };
                let v = seen.entry(name).or_default();
                if v.last().map(String::as_str) != Some(s) {
                    v.push(s.to_string());
                }
                if s == "running" {
                    ran.entry(name).or_insert_with(|| t0.elapsed());
                    assert_eq!(inst(&ps, name).expect("listed")["restarts"], 0);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for name in names {
        assert_eq!(
            seen[name].first().map(String::as_str),
            Some("starting"),
            "{name}: {seen:?}"
        );
        assert!(
            ran[name] >= Duration::from_millis(1500),
            "{name} running after {:?}",
            ran[name]
        );
    }
}

#[test]
fn not_ready_within_ready_timeout_is_a_failed_start() {
    let mut fx = fixture!();
    let http = free_port();
    // Serves, but the ready path is missing: 404 is not ready.
    fx.container(
        "never",
        &sh(
            &format!("exec httpd -f -p 127.0.0.1:{http} -h /etc"),
            &format!(
                "ready: !Http {{port: {http}, path: /no-such-file}}\nready-timeout: 1\n\
                 restart-timeout: 30\n"
            ),
        ),
    );
    fx.processes(&[("never", 1)]);
    let t0 = Instant::now();
    fx.start();
    let ps = fx.wait_ps("never.0 backing off", |ps| {
        state(ps, "box/never.0") == Some("backoff")
    });
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");
    let i = inst(&ps, "box/never.0").expect("listed");
    assert!(
        i["error"]
            .as_str()
            .is_some_and(|e| e.contains("not ready within ready-timeout (1 s); killed")),
        "{i}"
    );
    assert_eq!(i["last_exit"]["failure"], true, "{i}");
    assert_eq!(i["last_exit"]["signal"], 9, "{i}");
    assert!(
        fx.log()
            .contains("box/never.0: not ready within ready-timeout (1 s); killed"),
        "{}",
        fx.log()
    );
    fx.expect_metrics(&[("cairn_failures_total", "never", 1)]);
}

/// A running instance whose health check fails `health-failures` times in
/// a row is killed and restarted as a failure; while it passes, `ps`
/// shows `health: ok`.
#[test]
fn a_failing_health_check_restarts_the_instance() {
    let mut fx = fixture!();
    let http = free_port();
    // Serves /hosts for 2.5 s, then stops serving but keeps running.
    fx.container(
        "sick",
        &sh(
            &format!("httpd -f -p 127.0.0.1:{http} -h /etc & sleep 2.5; kill $!; exec sleep 1000"),
            &format!(
                "ready: !Tcp {http}\nhealth-check: !Http {{port: {http}, path: /hosts}}\n\
                 health-interval: 0.5\nhealth-timeout: 0.5\nhealth-failures: 2\n\
                 restart-timeout: 30\n"
            ),
        ),
    );
    fx.container("plain", &sleeper(""));
    fx.processes(&[("sick", 1), ("plain", 1)]);
    fx.start();
    let ps = fx.wait_ps("sick.0 healthy", |ps| {
        inst(ps, "box/sick.0").is_some_and(|i| i["health"] == "ok")
    });
    let first = pids(&ps, "box/sick.0").0;
    // No health check: no health.
    assert!(inst(&ps, "box/plain.0").expect("listed")["health"].is_null());
    let ps = fx.wait_ps("sick.0 killed for its health", |ps| {
        inst(ps, "box/sick.0").is_some_and(|i| i["last_exit"]["signal"] == 9)
    });
    let i = inst(&ps, "box/sick.0").expect("listed");
    assert_eq!(i["last_exit"]["failure"], true, "{i}");
    assert!(
        i["error"]
            .as_str()
            .is_some_and(|e| e.contains("health check failed 2 times in a row; killed")),
        "{i}"
    );
    assert!(
        fx.log()
            .contains("box/sick.0: health check failed 2 times in a row; killed"),
        "{}",
        fx.log()
    );
    assert!(!alive(first), "the old knot lives on");
    fx.expect_metrics(&[("cairn_failures_total", "sick", 1)]);
}

/// A workload that floods its `!Fd` with bytes but no newline is not
/// ready: the tree stops reading after 4 KiB (a later newline does not
/// count), and the ready deadline ends it.
#[test]
fn a_flood_without_newline_on_the_ready_fd_is_not_ready() {
    let mut fx = fixture!();
    fx.container(
        "flood",
        &sh(
            "trap '' PIPE; head -c 100000 /dev/zero >&3; echo >&3; exec sleep 1000",
            "ready: !Fd 3\nready-timeout: 2\nrestart-timeout: 30\n",
        ),
    );
    fx.processes(&[("flood", 1)]);
    fx.start();
    let ps = fx.wait_ps("flood.0 given up", |ps| {
        inst(ps, "box/flood.0").is_some_and(|i| i["state"] == "backoff")
    });
    let i = inst(&ps, "box/flood.0").expect("listed");
    assert!(
        i["error"]
            .as_str()
            .is_some_and(|e| e.contains("not ready within ready-timeout")),
        "{i}"
    );
}
