//! Exit statuses, signals and stdin through `cairn cmd`.

use super::*;

#[test]
fn exit_codes_propagate() {
    let mut fx = fixture!();
    fx.command("exit", &probe(""));
    for code in [0, 1, 2, 42, 128, 254, 255] {
        let out = fx.run("exit", &[&format!("exit {code}")]);
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    }
}

#[test]
fn death_by_signal_propagates() {
    let mut fx = fixture!();
    fx.command("signal", &probe(""));
    for (sig, code) in [
        ("TERM", 143),
        ("KILL", 137),
        ("SEGV", 139),
        ("INT", 130),
        ("HUP", 129),
        ("USR1", 138),
    ] {
        let out = fx.run("signal", &[&format!("kill -{sig} $$; sleep 5")]);
        assert_eq!(out.status.code(), Some(code), "SIG{sig}: {}", stderr(&out));
    }
}

#[test]
fn missing_or_unexecutable_executable() {
    let mut fx = fixture!();
    fx.command(
        "missing",
        &probe("").replace("executable: /bin/sh", "executable: /bin/nonexistent"),
    );
    let out = fx.run("missing", &[]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/bin/nonexistent"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("box/cmd.missing."),
        "{}",
        stderr(&out)
    );
    fx.command(
        "notexec",
        &probe("").replace("executable: /bin/sh", "executable: /etc/hosts"),
    );
    let out = fx.run("notexec", &[]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(stderr(&out).contains("/etc/hosts"), "{}", stderr(&out));
}

/// 127 means "executable not found" (DESIGN.md, cairn cmd): other setup
/// steps of the workload that fail with ENOENT must not be reported so.
#[test]
fn missing_workdir_is_not_reported_as_missing_executable() {
    let mut fx = fixture!();
    fx.command("nowork", &probe("workdir: /nonexistent\n"));
    let out = fx.run("nowork", &[&format!("echo {STARTED}")]);
    let err = stderr(&out);
    assert!(!stdout(&out).contains(STARTED));
    assert!(err.contains("workdir"), "{err}");
    assert_ne!(
        out.status.code(),
        Some(127),
        "reported as a missing executable: {err}"
    );
}

#[test]
fn sigterm_to_cmd_reaches_the_workload() {
    let mut fx = fixture!();
    fx.command("trap", &probe(""));
    // With a trap: the workload sees TERM and decides its exit code.
    let mut run = fx.spawn(
        "trap",
        &["trap 'echo got-TERM; exit 7' TERM; echo ready; sleep 20 & wait"],
    );
    run.wait_for("ready");
    run.signal(libc::SIGTERM);
    let (status, lines, err, took) = run.finish();
    assert_eq!(status.code(), Some(7), "{lines:?} {err}");
    assert!(lines.iter().any(|l| l == "got-TERM"), "{lines:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    fx.assert_cleaned_up();

    // Without one it dies of TERM: 128 + 15.
    let mut run = fx.spawn("trap", &["echo ready; sleep 20 & wait"]);
    run.wait_for("ready");
    run.signal(libc::SIGTERM);
    let (status, _, err, took) = run.finish();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    fx.assert_cleaned_up();
}

/// `cairn cmd` is the only supervisor of its container: if it is killed
/// outright (SIGKILL, no chance to forward anything), the container must
/// not keep running unsupervised.
#[test]
fn container_does_not_outlive_a_killed_cmd() {
    let mut fx = fixture!();
    fx.command("orphaned", &probe(""));
    let mut run = fx.spawn("orphaned", &["echo ready; sleep 20"]);
    run.wait_for("ready");
    run.kill_cmd();
    // The container's processes are in this test's own cgroup: wait for
    // them to go.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left: Vec<i32>;
    loop {
        left = cgroup_leaves(&fx.cgroup.name)
            .iter()
            .flat_map(|l| common::cgroup_procs(l))
            .collect();
        left.sort_unstable();
        left.dedup();
        if left.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        left.is_empty(),
        "still running after cairn cmd died: {left:?}"
    );
}

#[test]
fn sigint_to_cmd_reaches_the_workload() {
    // Sent with kill(2), interactive or not: one INT reaches the workload
    // (an interactive `cairn cmd` dropped every INT and QUIT, also those
    // sent by a process, since only terminal keys reach it by themselves).
    for extra in ["", "interactive: true\n"] {
        let mut fx = fixture!();
        fx.command("int", &probe(extra));
        let mut run = fx.spawn(
            "int",
            &["trap 'echo got-INT; exit 8' INT; echo ready; sleep 20 & wait"],
        );
        run.wait_for("ready");
        run.signal(libc::SIGINT);
        let (status, lines, err, _) = run.finish();
        assert_eq!(status.code(), Some(8), "{extra:?}: {lines:?} {err}");
        let got = lines.iter().filter(|l| *l == "got-INT").count();
        assert_eq!(got, 1, "{extra:?}: {lines:?}");
        fx.assert_cleaned_up();
    }
}

#[test]
fn interactive_stdin_reaches_the_workload() {
    let mut fx = fixture!();
    fx.command("inter", &probe("interactive: true\n"));
    let out = output_within(&mut fx.cmd("inter", &["cat"]), Some(b"hello\n"), TIMEOUT);
    fx.assert_cleaned_up();
    assert_eq!(ok(&out), "hello\n");
}

#[test]
fn stdin_is_dev_null_unless_interactive() {
    let mut fx = fixture!();
    fx.command("batch", &probe(""));
    let out = output_within(
        &mut fx.cmd("batch", &["readlink /proc/$$/fd/0; cat; echo end"]),
        Some(b"hello\n"),
        TIMEOUT,
    );
    fx.assert_cleaned_up();
    assert_eq!(ok(&out), "/dev/null\nend\n");
}

/// `cairn knot --spec-fd N`: the exec'd init (CAIRN_KNOT_EXEC=1) builds the
/// same container as the forked one: pid 1 is the knot, named after its
/// instance (`cmd.exec.PID` of `box/cmd.exec.PID`), the workload runs
/// as the configured user under the system call filter (which crossed the
/// exec in the JSON context), and its status comes back.
#[test]
fn exec_path_of_the_knot_builds_the_same_container() {
    let mut fx = fixture!();
    fx.command("exec", &probe(""));
    let mut c = fx.cmd(
        "exec",
        &[
            "echo \"$(cat /proc/1/comm) $(id -u) $(grep NoNewPrivs /proc/self/status | cut -f2) \
           $(grep ^Seccomp: /proc/self/status | cut -f2)\"; exit 9",
        ],
    );
    c.env("CAIRN_KNOT_EXEC", "1");
    let out = output_within(&mut c, None, TIMEOUT);
    fx.assert_cleaned_up();
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let got = stdout(&out);
    let (name, rest) = got.trim().split_once(' ').unwrap_or_default();
    assert!(
        name.split_once(".exec.")
            .is_some_and(|(_, pid)| pid.parse::<u32>().is_ok()),
        "{got}{}",
        stderr(&out)
    );
    assert_eq!(rest, format!("{UID} 1 2"), "{}", stderr(&out));
}
