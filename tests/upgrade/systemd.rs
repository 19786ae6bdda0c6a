//! systemd integration: sd_notify (READY, RELOADING, MAINPID across an
//! upgrade), socket activation (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID),
//! and systemd/cairn.service passing `systemd-analyze verify`.

use super::*;

/// sd_notify: READY=1 (with MAINPID) once every instance runs,
/// RELOADING=1 then READY=1 around a reload, READY=1 with the same MAINPID
/// after an upgrade.
#[test]
fn sd_notify_ready_reload_and_upgrade() {
    use std::os::unix::net::UnixDatagram;
    let mut w = world!();
    w.sleepers("sleeper", 3);
    let path = w.set.p("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(STEP)).expect("timeout");
    w.env
        .push(("NOTIFY_SOCKET".into(), path.display().to_string()));
    let tree = w.start_tree();
    let recv = || {
        let mut buf = vec![0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notify message in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let has = |m: &str, line: &str| m.lines().any(|l| l == line);
    let mainpid = format!("MAINPID={tree}");
    let m = recv();
    assert!(
        has(&m, "READY=1") && has(&m, &mainpid),
        "first message {m:?}"
    );
    let ps = w.ps().expect("ps right after READY=1");
    assert!(ps.all_running(3), "READY=1 before every instance ran");

    let out = upg_output(Command::new(&w.cli).args(["reload", "-c", &w.master()]));
    assert!(out.status.success());
    let m = recv();
    assert!(has(&m, "RELOADING=1"), "reload: {m:?}");
    assert!(
        m.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "reload: {m:?}"
    );
    let m = recv();
    assert!(has(&m, "READY=1"), "after the reload: {m:?}");

    w.signal_tree(libc::SIGQUIT);
    let t0 = Instant::now();
    loop {
        let m = recv();
        if has(&m, "READY=1") {
            assert!(has(&m, &mainpid), "after the upgrade: {m:?}");
            break;
        }
        assert!(t0.elapsed() < STEP, "no READY=1 after the upgrade");
    }
    let ps = w.wait("the upgrade", STEP, |p| p.upgrades == 1 && p.all_running(3));
    assert_eq!(ps.tree_pid, tree);
}

/// Issue 5: a systemd-activated port variable gives the workload the socket
/// at fd 3 with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID set right.
#[test]
fn systemd_activation_sets_listen_variables() {
    let mut w = world!();
    let port = free_port();
    w.sandbox(&format!("allow-tcp-ports: [{port}]\n"));
    w.container(
        "sd",
        &format!(
            "executable: /bin/sh\nuser-id: {UID}\ngroup-id: {UID}\n\
             environ: {{PATH: /bin}}\n\
             variables: {{sock: !TcpPort {{activation: systemd}}}}\n\
             volumes: {{/state: !Statedir {{}}}}\n\
             arguments:\n- -c\n\
             - 'echo \"$LISTEN_FDS $LISTEN_FDNAMES $LISTEN_PID $$\" > /state/env.tmp; \
             readlink /proc/$$/fd/3 >> /state/env.tmp; mv /state/env.tmp /state/env; \
             exec sleep 100000'\n"
        ),
    );
    w.entry("sd", 1, &format!("variables: {{sock: {port}}}"));
    w.start_tree();
    let ps = w.wait_running(1, START);
    let env_file = w.set.p("run/state/box/sd.0/state/env");
    let t0 = Instant::now();
    while !env_file.exists() {
        assert!(t0.elapsed() < STEP, "{} never appeared", env_file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = fs::read_to_string(&env_file).expect("read env");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    let f: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(f.len(), 4, "{text:?}");
    assert_eq!(f[0], "1", "LISTEN_FDS");
    assert_eq!(f[1], "sock", "LISTEN_FDNAMES");
    assert_eq!(f[2], f[3], "LISTEN_PID must be the workload's own pid");
    assert!(lines[1].starts_with("socket:["), "fd 3 is {:?}", lines[1]);
    // The workload's pid as it sees itself is its pid in the namespace.
    let wl = ps.inst["box/sd.0"].workload.expect("workload pid");
    assert_eq!(ns_pid(wl).map(|p| p.to_string()).as_deref(), Some(f[2]));
    // The socket listens (0.0.0.0:PORT): the kernel completes the
    // handshake from the backlog even though nobody accepts.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect to PORT");
}

/// systemd/cairn.service passes `systemd-analyze verify`.
#[test]
fn systemd_unit_verifies() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    let have = analyze.exists() || Path::new("/bin/systemd-analyze").exists();
    require!(
        have,
        "systemd-analyze is not installed (apt-get install systemd)"
    );
    let set = ConfigSet::new();
    let unit =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/cairn.service"))
            .expect("read systemd/cairn.service");
    let bin = cairn_bin();
    let text = unit.replace("/usr/bin/cairn", &bin.display().to_string());
    assert!(text.contains(&format!("ExecStart={} tree", bin.display())));
    assert!(text.contains(&format!("ExecReload={} reload", bin.display())));
    for key in ["Type=notify", "KillMode=process", "NotifyAccess=main"] {
        assert!(text.lines().any(|l| l == key), "unit lacks {key}");
    }
    let path = set.write("cairn.service", text);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
    // systemd-analyze exits 0 on unknown keys and bad values too (it only
    // warns, naming the file): there must be no such warning.
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cairn.service"))
        .collect();
    assert!(warnings.is_empty(), "systemd-analyze warns: {warnings:#?}");
}
