//! `ready: !Notify` (sd_notify on the instance's own socket) and
//! `watchdog-timeout`, with real containers: the workload is
//! tests/helpers/notifier.c, built statically into the busybox image.

use super::*;
use std::os::unix::net::UnixDatagram;

/// Skip (or fail under CI) unless the notifier can be built into the image.
macro_rules! notifier {
    ($fx:expr) => {{
        let built = common::build_helper(
            "notifier",
            &["-static"],
            &$fx.set.p("images/bb/bin/notifier"),
        );
        require!(built.is_ok(), built.err().unwrap_or_default());
    }};
}

/// A Daemon running the notifier with `steps`, plus `extra` keys.
fn notifier_yaml(steps: &[&str], extra: &str) -> String {
    let args: Vec<String> = steps.iter().map(|s| json(s)).collect();
    format!(
        "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/notifier\n\
         arguments: [{}]\nready: !Notify\nkill-timeout: 1\n{extra}",
        args.join(", ")
    )
}

/// The host path of an instance's notify socket.
fn socket_of(fx: &Fx, name: &str) -> PathBuf {
    fx.set.p(&format!("run/notify/{}", name.replace('/', ":")))
}

fn execd(fx: &Fx, name: &str) -> Value {
    fx.wait_ps(&format!("{name} exec'd"), |ps| {
        inst(ps, name).is_some_and(|i| i["workload_pid"].is_i64())
    })
}

#[test]
fn notify_ready_waits_for_ready_1_and_refuses_outsiders() {
    let mut fx = fixture!();
    notifier!(fx);
    fx.container(
        "svc",
        &notifier_yaml(
            &["STATUS=warming up", "sleep:1500", "READY=1\nSTATUS=serving"],
            "ready-timeout: 20\n",
        ),
    );
    fx.processes(&[("svc", 1)]);
    let name = "box/svc.0";
    let t0 = Instant::now();
    fx.start();
    let ps = execd(&fx, name);
    let wpid = pid_of(inst(&ps, name).expect("listed"), "workload_pid").expect("pid");

    // The socket is a read-only bind in the container, at NOTIFY_SOCKET.
    let mi = fs::read_to_string(format!("/proc/{wpid}/mountinfo")).expect("mountinfo");
    let line = mi
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/dev/cairn-notify"))
        .unwrap_or_else(|| panic!("no /dev/cairn-notify mount:\n{mi}"));
    let opts = line.split(' ').nth(5).unwrap_or_default();
    assert!(opts.split(',').any(|o| o == "ro"), "{line}");
    let env = fs::read(format!("/proc/{wpid}/environ")).expect("environ");
    assert!(
        env.split(|&b| b == 0)
            .any(|v| v == b"NOTIFY_SOCKET=/dev/cairn-notify"),
        "{}",
        String::from_utf8_lossy(&env)
    );

    // The attack: a host process (this test, root) reaches the socket on
    // the host and says READY=1. It is sent, and refused: the sender is
    // not a process of the instance.
    let host = socket_of(&fx, name);
    let out = UnixDatagram::unbound().expect("socket");
    out.send_to(b"READY=1\nSTATUS=pwned", &host)
        .unwrap_or_else(|e| panic!("send to {}: {e}", host.display()));
    // A host user other than root cannot even reach it (the dir is 0700).
    if have("setpriv") {
        let bin = fx.set.p("images/bb/bin/notifier");
        let mut c = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("READY=1")
            .env("NOTIFY_SOCKET", &host)
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv");
        std::thread::sleep(Duration::from_millis(300));
        kill(c.id() as i32, libc::SIGKILL);
        let _ = c.wait();
        let mut err = String::new();
        use std::io::Read;
        let _ = c.stderr.take().expect("stderr").read_to_string(&mut err);
        assert!(err.contains("Permission denied"), "as uid 65534: {err:?}");
    }
    fx.expect_metrics_at_least(&[("cairn_notify_refused_total", "svc", 1)]);
    let ps = fx.ps();
    let i = inst(&ps, name).expect("listed");
    if t0.elapsed() < Duration::from_millis(1400) {
        assert_eq!(i["state"], "starting", "an outsider made it ready: {i}");
        assert_eq!(i["status"], "warming up", "{i}");
    }
    assert!(
        fx.log().contains(&format!(
            "{name}: notify datagram from pid {} uid 0 refused: sender is not a process of the instance",
            std::process::id()
        )),
        "{}",
        fx.log()
    );

    // The workload's own READY=1, 1.5 s after its start.
    let ps = fx.wait_ps("svc.0 running", |ps| state(ps, name) == Some("running"));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "running after {took:?}"
    );
    let i = inst(&ps, name).expect("listed");
    assert_eq!(i["status"], "serving", "{i}");
    assert_eq!(i["restarts"], 0, "{i}");
}

#[test]
fn a_missing_watchdog_ping_restarts_the_instance() {
    let mut fx = fixture!();
    notifier!(fx);
    fx.container(
        "dog",
        &notifier_yaml(
            &[
                "READY=1",
                "WATCHDOG=1",
                "sleep:300",
                "WATCHDOG=1",
                "sleep:300",
                "WATCHDOG=1",
            ],
            "watchdog-timeout: 1\nrestart-timeout: 30\n",
        ),
    );
    fx.processes(&[("dog", 1)]);
    let name = "box/dog.0";
    let t0 = Instant::now();
    fx.start();
    let ps = execd(&fx, name);
    let wpid = pid_of(inst(&ps, name).expect("listed"), "workload_pid").expect("pid");
    let env = fs::read(format!("/proc/{wpid}/environ")).expect("environ");
    assert!(
        env.split(|&b| b == 0)
            .any(|v| v == b"WATCHDOG_USEC=1000000"),
        "{}",
        String::from_utf8_lossy(&env)
    );
    let ps = fx.wait_ps("dog.0 killed by its watchdog", |ps| {
        state(ps, name) == Some("backoff")
    });
    let took = t0.elapsed();
    // Two pings 0.3 s apart, then silence for 1 s.
    assert!(took >= Duration::from_millis(1500), "killed after {took:?}");
    let i = inst(&ps, name).expect("listed");
    assert!(
        i["error"]
            .as_str()
            .is_some_and(|e| e.contains("no WATCHDOG=1 within watchdog-timeout (1 s); killed")),
        "{i}"
    );
    assert_eq!(i["last_exit"]["failure"], true, "{i}");
    assert_eq!(i["last_exit"]["signal"], 9, "{i}");
    assert!(
        fx.log()
            .contains("box/dog.0: no WATCHDOG=1 within watchdog-timeout (1 s); killed"),
        "{}",
        fx.log()
    );
    fx.expect_metrics(&[("cairn_failures_total", "dog", 1)]);
}

#[test]
fn an_upgrade_while_it_waits_keeps_ready_and_the_watchdog_working() {
    let mut fx = fixture!();
    notifier!(fx);
    fx.container(
        "up",
        &notifier_yaml(
            &["sleep:2500", "READY=1\nSTATUS=up", "ping:250"],
            "watchdog-timeout: 1\nready-timeout: 20\n",
        ),
    );
    fx.processes(&[("up", 1)]);
    let name = "box/up.0";
    let t0 = Instant::now();
    fx.start();
    let ps = execd(&fx, name);
    let wpid = pid_of(inst(&ps, name).expect("listed"), "workload_pid").expect("pid");
    let out = cairn(&["upgrade", "-c", &fx.master_path()]);
    assert!(out.status.success(), "upgrade: {}", stderr(&out));
    fx.wait_ps("the upgrade", |ps| {
        ps["tree"]["upgrades"].as_u64().unwrap_or(0) >= 1
    });
    if t0.elapsed() < Duration::from_millis(2300) {
        assert_eq!(state(&fx.ps(), name), Some("starting"));
    }
    let ps = fx.wait_ps("up.0 running", |ps| state(ps, name) == Some("running"));
    assert!(t0.elapsed() >= Duration::from_millis(2500));
    assert_eq!(inst(&ps, name).expect("listed")["status"], "up");
    // Its pings reach the new image: three watchdog periods, not killed.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let ps = fx.ps();
        let i = inst(&ps, name).expect("listed");
        assert_eq!(i["state"], "running", "{i}\n{}", fx.log());
        assert_eq!(i["restarts"], 0, "{i}");
        assert_eq!(pid_of(i, "workload_pid"), Some(wpid), "{i}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
