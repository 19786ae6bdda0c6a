//! runc's CVE-2016-9962 against `cairn exec`: a hostile workload
//! (tests/helpers/execspy.c) watches its pid namespace for the process
//! that joins it, and tries to ptrace it and to read its /proc files
//! (environ, exe, cwd, root, every fd, and through a fd that leads to a
//! host dir, a file in that dir) while it is still privileged. The
//! joining process is held there by tests/helpers/holdjoin.c (ptrace
//! from the host, at a chosen system call), so the attack runs at that
//! moment every time, not by luck.
//!
//! First the same attack against a naive join, `nsenter --target
//! WORKLOAD --mount --uts --ipc --net --pid --setuid --setgid`, started
//! like the `cairn exec` after it: with a host dir open as fd 7 and a
//! secret in its environment. The workload gets both.

use super::*;

const SECRET_ENV: &str = "HOSTSECRET-ENV-5f1c";
const SECRET_FILE: &str = "HOSTSECRET-FILE-9a2e";

/// The spy's report on the process whose pid in the container is `pid`.
fn report_on(fx: &Fx, pid: i32) -> String {
    let want = format!("SPY pid={pid} ");
    wait_for(WAIT, &format!("the spy's report on pid {pid}"), || {
        let log = fs::read_to_string(fx.set.p("log/stdio/box.log")).ok()?;
        let line = log.lines().find(|l| l.contains(&want))?;
        line.contains(" END").then(|| line.to_string())
    })
}

/// `cmd`, run through `sh` with `dir` open as fd 7 (not close-on-exec),
/// and an environment holding only PATH and the secret.
fn with_host_fd(dir: &Path, cmd: &[&str]) -> Command {
    let mut c = Command::new("/bin/sh");
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CAIRN_TEST_SECRET", SECRET_ENV)
        .current_dir(dir)
        .args(["-c", "exec 7<\"$0\"; exec \"$@\""])
        .arg(dir)
        .args(cmd);
    c
}

/// The container pid of host pid `pid`.
fn inside(pid: i32) -> i32 {
    *nspids(pid).last().expect("NSpid")
}

#[test]
fn a_watching_workload_gets_nothing_of_the_joining_process() {
    let mut fx = fixture!();
    require!(have("nsenter"), "util-linux nsenter needed");
    let spy = common::build_helper("execspy", &["-static"], &fx.set.p("images/bb/bin/execspy"));
    require!(spy.is_ok(), spy.err().unwrap_or_default());
    let holdjoin = fx.set.p("holdjoin");
    let built = common::build_helper("holdjoin", &[], &holdjoin);
    require!(built.is_ok(), built.err().unwrap_or_default());
    // A host dir with a secret in it.
    let secrets = fx.set.p("secrets");
    fx.set.write("secrets/secret.txt", SECRET_FILE);
    fx.container(
        "spy",
        &format!(
            "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/execspy\n\
             kill-timeout: 1\nenviron:\n  PATH: /bin\n"
        ),
    );
    fx.processes(&[("spy", 1)]);
    fx.start();
    let ps = fx.wait_ps("spy.0 running", |ps| all_running(ps, &["box/spy.0"]));
    let (_, workload) = pids(&ps, "box/spy.0");
    wait_for(WAIT, "the spy ready", || {
        let log = fs::read_to_string(fx.set.p("log/stdio/box.log")).ok()?;
        log.contains("SPY ready").then_some(())
    });

    // The naive join: the workload reads the joined process's environment
    // and, through its fd 7, a host file; it may even ptrace it.
    let w = workload.to_string();
    let (u, g) = (UID.to_string(), GID.to_string());
    let mut naive = with_host_fd(
        &secrets,
        &[
            "nsenter",
            "--target",
            &w,
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--setuid",
            &u,
            "--setgid",
            &g,
            "--",
            "/bin/sleep",
            "30",
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn nsenter");
    let joined = wait_for(Duration::from_secs(5), "nsenter's child", || {
        descendants(naive.id() as i32).into_iter().find(|&p| {
            nspids(p).len() == 2
                && fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
    });
    kill(joined, libc::SIGSTOP);
    let report = report_on(&fx, inside(joined));
    kill(joined, libc::SIGKILL);
    let _ = naive.kill();
    let _ = naive.wait();
    assert!(report.contains("ptrace=ok"), "{report}");
    assert!(report.contains(SECRET_ENV), "{report}");
    assert!(
        report.contains(&format!("fd7={}", secrets.display())),
        "{report}"
    );
    assert!(
        report.contains(&format!("fd7secret={SECRET_FILE}")),
        "{report}"
    );

    // cairn exec, held while still root with every capability, then held
    // again after its ids changed, right before its filter and exec: the
    // workload can neither trace it nor read anything of it.
    for (point, uid) in [
        ("privileged", "|0|0|0|0"),
        ("filtered", "|1000|1000|1000|1000"),
    ] {
        let hold_err = fx.set.p(&format!("hold-{point}.err"));
        let log = fs::File::create(&hold_err).expect("hold log");
        let master = fx.master_path();
        let holdjoin = holdjoin.display().to_string();
        let cairn = cairn_bin().display().to_string();
        let mut run = with_host_fd(
            &secrets,
            &[
                &holdjoin,
                point,
                &cairn,
                "exec",
                "-c",
                &master,
                "box/spy.0",
                "true",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn holdjoin");
        let held = wait_for(WAIT, "the joining process held", || {
            fs::read_to_string(&hold_err)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("held ")?.trim().parse::<i32>().ok())
        });
        let report = report_on(&fx, inside(held));
        kill(held, libc::SIGCONT);
        let status = wait_child(&mut run, WAIT).expect("cairn exec ended");
        assert_eq!(
            status.code(),
            Some(0),
            "{point}: {}",
            fs::read_to_string(&hold_err).unwrap_or_default()
        );
        // It was attacked at that point (its ids then), and got nothing.
        assert!(report.contains(&format!("uid={uid} ")), "{point}: {report}");
        for (what, want) in [
            ("ptrace", "EPERM"),
            ("environ", "EACCES"),
            ("exe", "EACCES"),
            ("cwd", "EACCES"),
            ("root", "EACCES"),
            ("cwdsecret", "EACCES"),
            ("fds", "EACCES"),
        ] {
            assert!(
                report.contains(&format!(" {what}={want} ")),
                "{point}: {what}: {report}"
            );
        }
        assert!(!report.contains("HOSTSECRET"), "{point}: {report}");
    }
}
