//! Readiness probes and health checks across an upgrade: an instance still
//! waiting to be ready when the tree upgrades keeps its start (same knot,
//! no restart) and becomes ready once its service is, whether its probe
//! is the `!Fd` pipe (handed over) or a connect probe (started again).

use super::*;

#[test]
fn an_upgrade_while_instances_wait_to_be_ready_keeps_them_and_their_probes() {
    let mut w = world!();
    let port = free_port();
    let sh = |script: &str, extra: &str| {
        format!(
            "executable: /bin/sh\narguments: [-c, {script:?}]\nuser-id: {UID}\ngroup-id: {UID}\n\
             environ: {{PATH: /bin}}\nrestart-timeout: 0\nkill-timeout: 2\nready-timeout: 30\n{extra}"
        )
    };
    // Ready 3 s after start: on its fd, or by listening.
    w.container(
        "fd",
        &sh("sleep 3; echo >&3; exec sleep 100000", "ready: !Fd 3\n"),
    );
    w.container(
        "tcp",
        &sh(
            &format!("sleep 3; exec httpd -f -p 127.0.0.1:{port} -h /etc"),
            &format!(
                "ready: !Tcp {port}\nhealth-check: !Http {{port: {port}, path: /hosts}}\n\
                 health-interval: 0.5\nhealth-timeout: 0.5\n"
            ),
        ),
    );
    w.entry("fd", 1, "");
    w.entry("tcp", 1, "");
    w.start_tree();
    let waiting = w.wait("both exec'd, not ready", START, |p| {
        p.inst.len() == 2
            && p.inst
                .values()
                .all(|i| i.state == "starting" && i.workload.is_some())
    });
    let upgraded = w.upgrade_to(1, 2);
    assert_eq!(upgraded.upgrades, 1);
    for (name, before) in &waiting.inst {
        let after = &upgraded.inst[name];
        assert_eq!(after.pid, before.pid, "{name} was restarted");
        assert_eq!(after.restarts, 0, "{name}");
    }
    assert!(
        w.log_has("upgrade: supervising 2 instances again"),
        "{}",
        w.log_tail(30)
    );
    // Its health check runs again after the upgrade: still ok, no restart.
    std::thread::sleep(Duration::from_secs(2));
    let out = upg_output(Command::new(&w.cli).args(["ps", "-c", &w.master(), "--json"]));
    let v: Value = serde_json::from_slice(&out.stdout).expect("ps --json");
    let tcp = v["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == "box/tcp.0"))
        .cloned()
        .expect("tcp.0 listed");
    assert_eq!(tcp["health"], "ok", "{tcp}");
    assert_eq!(tcp["restarts"], 0, "{tcp}");
}
