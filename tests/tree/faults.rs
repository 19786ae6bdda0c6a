//! Never two, never none: what a fault must not cost (issue 11). Each test
//! makes its fault happen on purpose, the same way every time.

use super::*;

/// A process config caught half-written by a reload (a non-atomic writer:
/// `: > file`, or a file cut off after `instances: 1` of `instances: 10`)
/// stopped the instances it no longer listed. It is now refused as
/// unfinished: every instance keeps running, unrestarted, the error names
/// the file, and `cairn check` says the same. An explicit `{}` still
/// removes everything on purpose.
#[test]
fn a_half_written_process_config_stops_nothing() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 10)]);
    fx.start();
    let all = names("web", 10);
    let ps0 = fx.wait_ps("all running", |ps| all_running(ps, &refs(&all)));
    let snapshot = |ps: &Value| -> Vec<(i32, i32)> { all.iter().map(|n| pids(ps, n)).collect() };
    let file = fx.set.p("processes/box.yaml");
    let good = fs::read_to_string(&file).expect("processes");
    let cut = good
        .find("instances: 10")
        .map(|at| &good[..at + "instances: 1".len()])
        .expect("instances key");
    for (what, text) in [
        ("emptied", ""),
        ("cut off", cut),
        ("comments only", "# wip\n"),
    ] {
        fs::write(&file, text).expect("write");
        let ps = reload_and_wait(&fx);
        assert_eq!(
            snapshot(&ps),
            snapshot(&ps0),
            "{what}: something stopped or restarted"
        );
        assert!(all_running(&ps, &refs(&all)), "{what}: {ps}");
        let errors = ps["config_errors"].to_string();
        assert!(
            errors.contains(&fx.set.s("processes/box.yaml")),
            "{what}: {errors}"
        );
        let check = cairn(&["check", "-c", &fx.master_path()]);
        assert_eq!(check.status.code(), Some(1), "{what}: {}", stderr(&check));
        assert!(
            stderr(&check).contains(&fx.set.s("processes/box.yaml")),
            "{what}: {}",
            stderr(&check)
        );
    }
    // Written whole again: nothing restarts. An explicit empty mapping
    // then stops everything, as asked.
    fs::write(&file, &good).expect("write");
    let ps = reload_and_wait(&fx);
    assert_eq!(snapshot(&ps), snapshot(&ps0), "something restarted");
    assert!(
        ps["config_errors"].as_array().expect("array").is_empty(),
        "{ps}"
    );
    fs::write(&file, "{}\n").expect("write");
    reload_and_wait(&fx);
    fx.wait_ps("every instance stopped", |ps| insts(ps).is_empty());
}

/// Start the tree with RLIMIT_NOFILE `soft`/`hard`, as a shell with a low
/// `ulimit -n` would.
fn start_with_fd_limit(fx: &mut Fx, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(cairn_bin());
    cmd.args([
        "tree",
        "-c",
        &fx.master_path(),
        "--log-stderr",
        "--log-level",
        "debug",
    ]);
    // SAFETY: setrlimit(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    fx.spawn_tree(cmd);
    fx.tree_pid = Some(fx.tree.as_ref().expect("spawned").id() as i32);
    fx.wait_ps("the tree's first state.json", |_| true);
}

/// Started from a shell whose soft limit is low, the tree ran out of fds
/// and some instances stayed in back-off for good with no error shown. It
/// raises its soft limit to the hard one, so all start.
#[test]
fn a_low_soft_fd_limit_does_not_keep_instances_down() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 60)]);
    start_with_fd_limit(&mut fx, 48, 4096);
    let all = names("web", 60);
    let ps = fx.wait_ps("all 60 running", |ps| all_running(ps, &refs(&all)));
    assert!(
        ps["config_errors"].as_array().expect("array").is_empty(),
        "{ps}"
    );
    let limits = fs::read_to_string(format!("/proc/{}/limits", fx.tree_pid())).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    assert_eq!(
        line.split_whitespace().skip(3).take(2).collect::<Vec<_>>(),
        ["4096", "4096"],
        "{line}"
    );
}

/// Where the hard limit itself is too low, the tree says so at the load
/// (in `config_errors` and the log), and each start that fails for lack of
/// fds shows why on its instance.
#[test]
fn a_hard_fd_limit_too_low_is_reported_on_the_instances() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 60)]);
    start_with_fd_limit(&mut fx, 48, 48);
    let ps = fx.wait_ps("a start failing for lack of fds, with its reason", |ps| {
        insts(ps).iter().any(|i| {
            i["error"]
                .as_str()
                .is_some_and(|e| e.contains("Too many open files"))
        })
    });
    let errors = ps["config_errors"].to_string();
    assert!(
        errors.contains("open files") && errors.contains("48"),
        "{errors}"
    );
    assert!(fx.log().contains("need about"), "{}", fx.log());
}

/// A container config of `version` whose workload takes `drain` seconds to
/// stop after TERM.
fn draining(version: &str, drain: &str) -> String {
    sh_env(
        &format!("trap 'sleep {drain}; exit 0' TERM; sleep 1000 & wait"),
        &[("VERSION", version)],
        "kill-timeout: 10\n",
    )
}

/// Sample `ps` until `done`, failing if two of `names` are ever down at
/// once; returns the last `ps`.
fn watch_rollout(fx: &Fx, names: &[String], mut done: impl FnMut(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < WAIT,
            "rollout did not finish: {}",
            fx.ps()
        );
        let ps = fx.ps();
        let down: Vec<&String> = names
            .iter()
            .filter(|n| state(&ps, n) != Some("running"))
            .collect();
        assert!(down.len() <= 1, "{down:?} down at once: {ps}");
        if done(&ps) {
            return ps;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A container config that breaks while an instance is being replaced
/// dropped that instance: once its old workload stopped it was neither
/// running nor failed, not even listed, and when a good config came back
/// it was started as if new while the rollout took the next one down too.
/// Now the replacement starts with the config the rollout began with, and
/// the good config that follows rolls on one instance at a time.
#[test]
fn a_config_broken_mid_rollout_keeps_the_instance_and_one_down_at_most() {
    let mut fx = fixture!();
    fx.container("web", &draining("1", "1.5"));
    fx.processes(&[("web", 3)]);
    fx.start();
    let web = names("web", 3);
    fx.wait_ps("3 running", |ps| all_running(ps, &refs(&web)));
    // Version 2: the rollout takes web.0 down first; it drains for 1.5 s.
    fx.container("web", &draining("2", "0.2"));
    reload_and_wait(&fx);
    fx.wait_ps("web.0 stopping", |ps| {
        state(ps, "box/web.0") == Some("stopping")
    });
    // Meanwhile the config is rewritten in place and read half-written.
    fx.container("web", "kind: Daemon\nuser-id: [\n");
    let ps = reload_and_wait(&fx);
    assert!(ps["config_errors"].to_string().contains("web.yaml"), "{ps}");
    // web.0 comes back, with version 2, and stays listed throughout.
    let ps = fx.wait_ps("web.0 running again", |ps| {
        assert!(inst(ps, "box/web.0").is_some(), "web.0 is gone: {ps}");
        all_running(ps, &refs(&web))
    });
    let w = pid_of(inst(&ps, "box/web.0").expect("listed"), "workload_pid").expect("pid");
    let env = fs::read_to_string(format!("/proc/{w}/environ")).expect("environ");
    assert!(env.contains("VERSION=2"), "{env:?}");
    // A good version 3 rolls out one instance at a time.
    fx.container("web", &draining("3", "0.2"));
    reload_and_wait(&fx);
    let v3 = |ps: &Value, n: &str| -> bool {
        pid_of(inst(ps, n).expect("listed"), "workload_pid")
            .and_then(|w| fs::read_to_string(format!("/proc/{w}/environ")).ok())
            .is_some_and(|e| e.contains("VERSION=3"))
    };
    watch_rollout(&fx, &web, |ps| {
        all_running(ps, &refs(&web)) && web.iter().all(|n| v3(ps, n))
    });
}

/// The tree's resident memory, in KiB.
fn tree_rss_kb(fx: &Fx) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", fx.tree_pid())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// A reload or an upgrade resolved every spec again and held both copies
/// until the end, and an upgrade first read every instance of the hand-off
/// into one list: the tree's memory grew by 1.3 MiB at 1000 instances (1.5
/// to 1.9 MiB in the static build) and stayed there. Now an unchanged
/// instance keeps its spec and the fresh copy goes at once, and the
/// hand-off is read an instance at a time.
#[test]
fn upgrades_do_not_grow_the_tree() {
    let mut fx = fixture!();
    fx.container("idle", &sleeper(""));
    fx.processes(&[("idle", 1000)]);
    fx.start();
    let all = names("idle", 1000);
    fx.wait_ps("1000 running", |ps| all_running(ps, &refs(&all)));
    let settle = |fx: &Fx| {
        // state.json is written 5-50 ms after the last change.
        std::thread::sleep(Duration::from_millis(300));
        tree_rss_kb(fx)
    };
    let cold = settle(&fx);
    let pid = fx.tree_pid();
    for _ in 0..2 {
        let upgrades = fx.ps()["tree"]["upgrades"].as_u64().unwrap_or(0);
        let out = cairn(&["upgrade", "-c", &fx.master_path()]);
        assert!(out.status.success(), "{}", stderr(&out));
        fx.wait_ps("the upgrade", |ps| {
            ps["tree"]["upgrades"].as_u64().unwrap_or(0) > upgrades
        });
    }
    let after = settle(&fx);
    assert_eq!(fx.tree_pid(), pid);
    eprintln!("tree RSS: {cold} KiB cold, {after} KiB after 2 upgrades");
    assert!(
        after <= cold + 512,
        "the tree grew from {cold} KiB to {after} KiB"
    );
}

/// A tmpfs of `size` mounted on `dir` (inside the test's temp dir), taken
/// away again when dropped.
struct TinyFs(PathBuf);

impl TinyFs {
    fn mount(dir: PathBuf, size: &str) -> TinyFs {
        fs::create_dir_all(&dir).expect("mkdir");
        let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
        let (src, target, fstype, data) = (
            c("tmpfs"),
            c(&dir.display().to_string()),
            c("tmpfs"),
            c(&format!("size={size},mode=0755")),
        );
        // SAFETY: valid C strings for mount(2).
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data.as_ptr().cast(),
            )
        };
        assert_eq!(r, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        TinyFs(dir)
    }

    /// Fill it up with one file (returned, to free the space later).
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        if let Ok(c) = std::ffi::CString::new(self.0.display().to_string()) {
            // SAFETY: valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// `state.json` as the tree last wrote it.
fn state_file(fx: &Fx) -> Value {
    serde_json::from_slice(&fs::read(fx.set.p("run/state.json")).expect("state.json"))
        .expect("state.json parses")
}

/// With the runtime dir full, state.json and metrics.prom could not be
/// written and stayed stale once space was back, until some later change;
/// and a workload killed while its instance dir was full was reported with
/// status -1. Now the write is tried again every second until it works,
/// and the knot's own exit (the workload's status) stands in for the
/// record it could not write.
#[test]
fn a_full_disk_leaves_no_stale_state_and_no_made_up_status() {
    let mut fx = fixture!();
    let run = TinyFs::mount(fx.set.p("run"), "1m");
    let dirs = TinyFs::mount(fx.set.p("state"), "1m");
    fx.master(&format!(
        "config-log-dir: null\nstate-dir: {}\n",
        fx.set.s("state")
    ));
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 2)]);
    fx.start();
    let ps = fx.wait_ps("2 running", |ps| {
        all_running(ps, &["box/web.0", "box/web.1"])
    });

    // 1. The runtime dir fills up; web.0's workload dies and is restarted.
    let filler = run.fill();
    let (_, w0) = pids(&ps, "box/web.0");
    kill(w0, libc::SIGKILL);
    // (`ps` shows state.json, stale now: the tree's log tells.)
    wait_for(WAIT, "web.0 restarted", || {
        (fx.log().matches("box/web.0: started").count() == 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        inst(&state_file(&fx), "box/web.0").expect("listed")["restarts"],
        0,
        "the runtime dir is full: state.json cannot have changed"
    );
    fs::remove_file(&filler).expect("free");
    wait_for(Duration::from_secs(5), "state.json written again", || {
        let st = state_file(&fx);
        (inst(&st, "box/web.0")?["restarts"] == 1).then_some(())
    });
    assert!(fx.log().contains("trying again"), "{}", fx.log());

    // 2. The instance dirs fill up; web.1's workload dies: the record of
    // its end cannot be written, its restart cannot start.
    let ps = fx.ps();
    let filler = dirs.fill();
    let (_, w1) = pids(&ps, "box/web.1");
    kill(w1, libc::SIGKILL);
    let ps = fx.wait_ps("web.1's death recorded", |ps| {
        inst(ps, "box/web.1").is_some_and(|i| !i["last_exit"].is_null())
    });
    let last = &inst(&ps, "box/web.1").expect("listed")["last_exit"];
    assert_eq!(last["status"], 137, "{last}");
    fs::remove_file(&filler).expect("free");
    fx.wait_ps("web.1 running again", |ps| {
        state(ps, "box/web.1") == Some("running")
    });
    // The tree first, then the tmpfs mounts, then the temp dir: a
    // mountpoint cannot be removed, and the temp dir would be left behind.
    fx.stop_tree(libc::SIGTERM);
    drop((run, dirs));
    drop(fx);
}
