//! Starts that cannot succeed: a knot that could not start the workload
//! for a reason a retry cannot change (the executable or workdir is not in
//! the image) leaves the instance `failed` with the reason, instead of a
//! back-off loop that restarts it forever; a reload tries it again.

use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn a_missing_executable_fails_once_and_a_reload_tries_it_again() {
    let mut fx = fixture!();
    fx.container(
        "web",
        &format!(
            "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/web-server\n\
             kill-timeout: 1\nrestart-timeout: 0\n"
        ),
    );
    fx.container("lost", &sleeper("workdir: /srv/app\nrestart-timeout: 0\n"));
    fx.processes(&[("web", 1), ("lost", 1)]);
    fx.start();
    let ps = fx.wait_ps("both failed", |ps| {
        state(ps, "box/web.0") == Some("failed") && state(ps, "box/lost.0") == Some("failed")
    });
    for (name, stage, needle) in [
        ("box/web.0", "executable", "cannot execute /bin/web-server"),
        ("box/lost.0", "workdir", "workdir /srv/app"),
    ] {
        let i = inst(&ps, name).expect("instance");
        let error = i["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{name}: {i}");
        assert!(error.contains("not started again until its config changes or a reload"));
        let exit = &i["last_exit"];
        assert_eq!(exit["cause"]["stage"], stage, "{name}: {i}");
        assert_eq!(exit["cause"]["errno"], libc::ENOENT, "{name}: {i}");
        assert_eq!(exit["failure"], true, "{name}: {i}");
    }
    let path = |name| inst(&ps, name).expect("instance")["last_exit"]["cause"]["path"].clone();
    assert_eq!(path("box/web.0"), "/bin/web-server");
    assert_eq!(path("box/lost.0"), "/srv/app");
    // Given time to loop (restart-timeout 0: a back-off starts it again
    // within 0.1 s, then 0.2 s, 0.4 s, ...), it does not.
    std::thread::sleep(Duration::from_millis(1500));
    let ps = fx.ps();
    for name in ["box/web.0", "box/lost.0"] {
        let i = inst(&ps, name).expect("instance");
        assert_eq!(i["state"], "failed", "{name}: {i}");
        assert_eq!(i["restarts"], 0, "{name} was started again: {i}");
    }
    fx.expect_metrics(&[
        ("cairn_started_total", "web", 1),
        ("cairn_refused_starts_total", "web", 1),
        ("cairn_refused_starts_total", "lost", 1),
    ]);
    assert!(
        fx.log().contains(
            "box/web.0: could not start: cannot execute /bin/web-server: No such file or directory \
             (os error 2) (failure; not retried until its config changes or a reload) \
             [executable /bin/web-server]"
        ),
        "{}",
        fx.log()
    );

    // The operator puts the missing files into the image and reloads.
    let server = fx.set.p("images/bb/bin/web-server");
    fs::write(&server, "#!/bin/sh\nexec sleep 1000\n").expect("write");
    fs::set_permissions(&server, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::create_dir_all(fx.set.p("images/bb/srv/app")).expect("mkdir");
    reload_and_wait(&fx);
    let ps = fx.wait_ps("both running", |ps| {
        all_running(ps, &["box/web.0", "box/lost.0"])
    });
    for name in ["box/web.0", "box/lost.0"] {
        assert!(
            inst(&ps, name).expect("instance")["error"].is_null(),
            "{ps}"
        );
    }
}

/// Failures a retry may cure still back off and retry: a workload that
/// exits with 127 itself (a shell that did not find a command) is an
/// ordinary failure, not a refused start.
#[test]
fn a_workload_that_exits_127_itself_is_retried() {
    let mut fx = fixture!();
    fx.container("shell", &sh("exit 127", "restart-timeout: 0\n"));
    fx.processes(&[("shell", 1)]);
    fx.start();
    let ps = fx.wait_ps("restarted twice", |ps| {
        inst(ps, "box/shell.0").is_some_and(|i| i["restarts"].as_u64() >= Some(2))
    });
    let i = inst(&ps, "box/shell.0").expect("instance");
    assert_ne!(i["state"], "failed", "{i}");
    assert!(i["last_exit"]["cause"].is_null(), "{i}");
}

/// A failure to build the container is recorded with its errno, and it is
/// retried with back-off (it may pass: the image may be being unpacked).
#[test]
fn a_setup_failure_records_its_errno_and_is_retried() {
    let mut fx = fixture!();
    fx.container("web", &sleeper("restart-timeout: 0\n"));
    fx.processes(&[("web", 1)]);
    // No /dev in the image: the build stops there.
    fs::remove_dir(fx.set.p("images/bb/dev")).expect("rmdir dev");
    fx.start();
    let ps = fx.wait_ps("two failed starts", |ps| {
        inst(ps, "box/web.0").is_some_and(|i| i["restarts"].as_u64() >= Some(2))
    });
    let i = inst(&ps, "box/web.0").expect("instance");
    assert_ne!(i["state"], "failed", "{i}");
    let exit = &i["last_exit"];
    assert_eq!(exit["status"], 125, "{i}");
    assert_eq!(exit["cause"]["stage"], "setup", "{i}");
    assert_eq!(exit["cause"]["errno"], libc::ENOENT, "{i}");
    assert_eq!(exit["cause"]["path"], "/dev", "{i}");
    assert!(
        exit["error"]
            .as_str()
            .is_some_and(|e| e.contains("dev does not exist in the image")),
        "{i}"
    );
    // Once the image has it, the next try runs.
    fs::create_dir(fx.set.p("images/bb/dev")).expect("mkdir dev");
    fx.wait_ps("running", |ps| all_running(ps, &["box/web.0"]));
}

/// The path in `last_exit.cause` is the config's, byte for byte, however
/// hostile (it crosses the error pipe from the workload's child to the
/// knot, and the exit record to the tree), and a failure with no path
/// has none.
#[test]
fn a_missing_executable_is_named_in_the_cause() {
    let mut fx = fixture!();
    let exe = "/bin/my web server\n1999-01-01T00:00:00Z INFO forged [x]";
    fx.container(
        "web",
        &format!(
            "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: {exe:?}\n\
             restart-timeout: 0\n"
        ),
    );
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("failed", |ps| state(ps, "box/web.0") == Some("failed"));
    let i = inst(&ps, "box/web.0").expect("instance");
    let cause = &i["last_exit"]["cause"];
    assert_eq!(cause["stage"], "executable", "{i}");
    assert_eq!(cause["errno"], libc::ENOENT, "{i}");
    assert_eq!(cause["path"], exe, "{i}");
    assert_eq!(i["last_exit"]["status"], 127, "{i}");
    // In the log, escaped like the rest of the line.
    let log = fx.log();
    assert!(
        log.contains("[executable /bin/my web server\\n1999-01-01T00:00:00Z INFO forged [x]]"),
        "{log}"
    );
    assert!(!log.lines().any(|l| l.starts_with("1999")), "{log}");
}
