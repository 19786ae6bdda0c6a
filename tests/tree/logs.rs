//! The tree's own log (log file and sandbox log, without `--log-stderr`)
//! and its sd_notify messages to systemd (READY, RELOADING).

use super::*;

#[test]
fn tree_logs_to_its_log_file_and_sandbox_log() {
    let mut fx = fixture!();
    fx.master("config-log-dir: null\nlog-level: info\n");
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    // No --log-stderr: the tree logs to DEFAULT-LOG-DIR/master.log.
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["tree", "-c", &fx.master_path()]);
    fx.spawn_tree(cmd);
    fx.tree_pid = Some(fx.tree.as_ref().expect("spawned").id() as i32);
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let (knot, _) = pids(&ps, "box/web.0");
    let started = format!("box/web.0: started (knot pid {knot}, config ");
    let tree_log = fx.set.p("log/master.log");
    wait_for(Duration::from_secs(5), "the tree log", || {
        let text = fs::read_to_string(&tree_log).ok()?;
        (text.contains(&format!("starting (pid {}", fx.tree_pid())) && text.contains(&started))
            .then_some(())
    });
    let sandbox_log = fs::read_to_string(fx.set.p("log/box.log")).expect("sandbox log");
    assert!(sandbox_log.contains(&started), "{sandbox_log}");
    // Every line starts with an RFC 3339 time, in milliseconds.
    for line in sandbox_log.lines() {
        let b = line.as_bytes();
        assert!(b[19] == b'.' && b[23] == b'Z', "{line}");
        assert!(line[20..23].bytes().all(|c| c.is_ascii_digit()), "{line}");
        epoch(&format!("{}Z", &line[..19]));
    }
    assert!(fx.log().is_empty(), "stderr: {}", fx.log());
}

#[test]
fn notifies_systemd_when_ready_and_around_reloads() {
    use std::os::unix::net::UnixDatagram;
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 2)]);
    let sock_path = fx.set.p("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let recv = || {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["tree", "-c", &fx.master_path()])
        .args(["--log-stderr", "--log-level", "debug"])
        .env("NOTIFY_SOCKET", &sock_path);
    fx.spawn_tree(cmd);
    let tree = fx.tree.as_ref().expect("spawned").id() as i32;
    fx.tree_pid = Some(tree);
    let msg = recv();
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(msg.contains(&format!("MAINPID={tree}")), "{msg}");
    // Ready means every instance of the first load has started.
    let ps = fx.ps();
    assert!(
        insts(&ps).iter().all(|i| i["state"] != "starting") && insts(&ps).len() == 2,
        "{ps}"
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let msg = recv();
    assert!(msg.contains("RELOADING=1"), "{msg}");
    assert!(msg.contains("MONOTONIC_USEC="), "{msg}");
    let msg = recv();
    assert!(msg.contains("READY=1"), "{msg}");
    // The socket is the tree's, not the workloads'.
    let (_, work) = pids(&fx.ps(), "box/web.0");
    let environ = fs::read(format!("/proc/{work}/environ")).expect("environ");
    assert!(
        !String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"),
        "the workload sees NOTIFY_SOCKET"
    );
}

/// A second `cairn tree` refused by the running one's lock writes its
/// refusal to its own stderr, and nothing into the running tree's log.
#[test]
fn a_refused_second_tree_writes_nothing_into_the_running_trees_log() {
    let mut fx = fixture!();
    fx.master("config-log-dir: null\nlog-level: info\n");
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["tree", "-c", &fx.master_path()]);
    fx.spawn_tree(cmd);
    fx.tree_pid = Some(fx.tree.as_ref().expect("spawned").id() as i32);
    fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let tree_log = fx.set.p("log/master.log");
    let before = fs::read_to_string(&tree_log).expect("tree log");
    let mut second = Command::new(cairn_bin());
    second.args(["tree", "-c", &fx.master_path()]);
    let out = output_within(&mut second, None, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another cairn tree"),
        "{}",
        stderr(&out)
    );
    let after = fs::read_to_string(&tree_log).expect("tree log");
    assert_eq!(
        after, before,
        "the second tree wrote into the first one's log"
    );
}
