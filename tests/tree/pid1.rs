//! PID 1 duties and pid namespaces: the tree as pid 1 of its own namespace
//! (reaping orphans, counting unknown children, starting instances while
//! it sees the host's /proc), `cairn reload` from another pid namespace,
//! and cairn-init as pid 1 of each supervised container.

use super::*;

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn tree_as_pid1_reaps_orphans_and_exits_on_term() {
    let mut fx = fixture!();
    require!(
        have("unshare") && have("nsenter"),
        "util-linux unshare and nsenter needed"
    );
    // The workload leaves an orphan behind in its container.
    fx.container(
        "orphaner",
        &sh("(sh -c 'sleep 0.3; exit 0' &); sleep 1000", ""),
    );
    fx.processes(&[("orphaner", 1)]);
    let tree = fx.start_as_pid1();
    assert_eq!(nspids(tree).last(), Some(&1), "the tree is not pid 1");
    // state.json holds the tree's own (namespace) pids: read it directly
    // rather than through a host `cairn ps`.
    let state_file = fx.set.p("run/state.json");
    wait_for(WAIT, "orphaner.0 running", || {
        let v: Value = serde_json::from_slice(&fs::read(&state_file).ok()?).ok()?;
        (v["tree"]["pid"] == 1 && state(&v, "box/orphaner.0") == Some("running")).then_some(())
    });
    let knot = wait_for(Duration::from_secs(5), "the knot", || {
        children(tree).into_iter().find(|&c| nspids(c).len() == 3)
    });
    // The orphan inside the container is reparented to the knot (its
    // pid 1) and reaped there: no zombie stays anywhere below the tree.
    // (The workload's own command line holds the same text: match the
    // start, and wait until the orphan's parent, a subshell, is gone.)
    let orphan = wait_for(
        Duration::from_secs(5),
        "the orphan, adopted by the knot",
        || {
            descendants(knot).into_iter().find(|&p| {
                cmdline(p).starts_with("sh -c sleep 0.3; exit 0") && ppid(p) == Some(knot)
            })
        },
    );
    let start = Instant::now();
    wait_for(Duration::from_secs(5), "the orphan reaped", || {
        let zombies: Vec<i32> = descendants(tree)
            .into_iter()
            .filter(|&p| proc_state(p) == Some('Z'))
            .collect();
        if start.elapsed() > Duration::from_secs(4) {
            let all: Vec<(i32, Option<char>, String, Option<i32>)> = descendants(tree)
                .into_iter()
                .map(|p| (p, proc_state(p), comm(p), ppid(p)))
                .collect();
            panic!(
                "orphan {orphan}: {:?}; below the tree: {all:?}",
                proc_state(orphan)
            );
        }
        (proc_state(orphan).is_none() && zombies.is_empty()).then_some(())
    });
    // An orphan in the tree's own namespace is reparented to the tree.
    let out = output_within(
        Command::new("nsenter")
            .args(["--target", &tree.to_string(), "--pid", "--"])
            .args(["/bin/sh", "-c", "(sleep 0.5 >/dev/null 2>&1 &); exit 0"]),
        None,
        Duration::from_secs(5),
    );
    assert!(out.status.success(), "nsenter: {}", stderr(&out));
    let stray = wait_for(
        Duration::from_secs(2),
        "the stray sleep under the tree",
        || children(tree).into_iter().find(|&c| comm(c) == "sleep"),
    );
    assert_eq!(ppid(stray), Some(tree));
    wait_for(Duration::from_secs(5), "the stray sleep reaped", || {
        proc_state(stray).is_none().then_some(())
    });
    assert!(
        children(tree).iter().all(|&c| proc_state(c) != Some('Z')),
        "zombie children of the tree"
    );
    // TERM to the tree (pid 1 inside) stops everything; exit 0.
    let (status, _) = fx.stop_tree(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", fx.log());
    assert!(!alive(knot) && !alive(tree));
    assert!(!state_file.exists());
    for root in cgroup_root_dirs(&fx.cgroup.name) {
        assert!(!root.exists(), "cgroup {} is left", root.display());
    }
}

/// A tree that is pid 1 of its own pid namespace but still sees the
/// host's /proc (`unshare --pid --fork`, no `--mount-proc`) starts its
/// instances: a knot checks its parent against the tree's pid as that
/// /proc numbers it, not the tree's own `getpid()` (1), or every knot
/// would take the tree for gone and refuse to start (seen before the fix).
#[test]
fn tree_in_a_pid_namespace_with_the_hosts_proc_starts_instances() {
    require!(have("unshare"), "unshare (util-linux) is not installed");
    let mut fx = fixture!();
    fx.container("s", &sleeper(""));
    fx.processes(&[("s", 2)]);
    fx.start_as_pid1_with(&["--pid", "--fork"]);
    // (Workload pids are not shown here: they are host pids, which the
    // tree's own pid namespace cannot name.)
    let all = names("s", 2);
    fx.wait_ps("both running", |ps| {
        all.iter().all(|n| {
            state(ps, n) == Some("running") && inst(ps, n).is_some_and(|i| i["pid"].is_i64())
        })
    });
    assert!(
        !fx.log().contains("the tree that started this knot is gone"),
        "{}",
        fx.log()
    );
}

/// `cairn_unknown_children_total` counts reaped strays (PID 1 duty).
#[test]
fn unknown_children_are_counted_in_metrics() {
    let mut fx = fixture!();
    require!(
        have("unshare") && have("nsenter"),
        "util-linux unshare and nsenter needed"
    );
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    let tree = fx.start_as_pid1();
    wait_for(WAIT, "metrics.prom", || {
        (fx.metric("cairn_running", "web") == Some(1)).then_some(())
    });
    let out = output_within(
        Command::new("nsenter")
            .args(["--target", &tree.to_string(), "--pid", "--"])
            .args(["/bin/sh", "-c", "(sleep 0.1 >/dev/null 2>&1 &); exit 0"]),
        None,
        Duration::from_secs(5),
    );
    assert!(out.status.success(), "nsenter: {}", stderr(&out));
    let counted = |fx: &Fx| {
        fs::read_to_string(fx.set.p("run/metrics.prom"))
            .is_ok_and(|t| t.contains("cairn_unknown_children_total 1\n"))
    };
    let start = Instant::now();
    while !counted(&fx) && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(POLL);
    }
    if !counted(&fx) {
        // Was it reaped but not written? Any other change flushes it.
        kill(tree, libc::SIGHUP);
        let start = Instant::now();
        while !counted(&fx) && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(POLL);
        }
        panic!(
            "the stray was not counted within 3 s; after a SIGHUP the count {}",
            if counted(&fx) {
                "appeared"
            } else {
                "still is missing"
            }
        );
    }
}

/// Run from another pid namespace, `cairn reload` must not signal a pid
/// that means something else there. The tree runs as pid 1 of namespace B,
/// nested in namespace A whose pid 1 is a shell that records any SIGHUP;
/// `cairn reload` runs in A.
#[test]
fn reload_from_another_pid_namespace_does_not_signal_the_wrong_process() {
    let mut fx = fixture!();
    require!(have("unshare"), "util-linux unshare needed");
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    let script = format!(
        r#"trap 'echo hup >> {mark}' HUP
unshare --pid --fork --mount-proc {cairn} tree -c {master} --log-stderr 2>> {log} &
u=$!
i=0
while [ ! -e {state} ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done
{cairn} reload -c {master} > {out} 2>&1; echo "rc=$?" >> {out}
sleep 0.3
t=$(cat /proc/$u/task/$u/children)
kill -TERM $t
wait $u
"#,
        mark = fx.set.s("hup-at-pid1"),
        cairn = cairn_bin().display(),
        master = fx.master_path(),
        log = fx.set.s("tree.log"),
        state = fx.set.s("run/state.json"),
        out = fx.set.s("reload.out"),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "/bin/sh", "-c", &script]);
    fx.spawn_tree(cmd);
    let outer = fx.tree.as_ref().expect("spawned").id() as i32;
    // Our handle for cleanup: namespace A's pid 1 (killing it ends all).
    fx.tree_pid = Some(wait_for(Duration::from_secs(5), "A's pid 1", || {
        children(outer).first().copied()
    }));
    let mut child = fx.tree.take().expect("spawned");
    let status = wait_child(&mut child, WAIT);
    fx.tree = Some(child);
    assert!(status.is_some(), "the script did not finish");
    let out = fs::read_to_string(fx.set.p("reload.out")).unwrap_or_default();
    assert!(
        !fx.set.p("hup-at-pid1").exists(),
        "cairn reload sent SIGHUP to pid 1 of its own namespace (not the tree):\n{out}"
    );
}

/// Once a supervised workload runs, pid 1 of its container is cairn-init,
/// a few pages run from a sealed memfd (not the forked supervisor): its
/// resident memory is tiny, it names its instance (comm `box/probe.0`,
/// command line `cairn-init box/probe.0 ...`), it is not dumpable, and
/// the workload can reach neither its exe, root nor environ.
#[test]
fn pid1_of_a_supervised_container_is_cairn_init() {
    let mut fx = fixture!();
    fx.container(
        "probe",
        &sh(
            "sleep 0.3; cat /proc/1/exe >/dev/null 2>&1 && echo 'open exe' || echo 'closed exe'; \
             ls /proc/1/root/ >/dev/null 2>&1 && echo 'open root' || echo 'closed root'; \
             cat /proc/1/environ >/dev/null 2>&1 && echo 'open environ' || echo 'closed environ'; \
             echo \"comm $(cat /proc/1/comm)\"; sleep 1000",
            "",
        ),
    );
    fx.processes(&[("probe", 1)]);
    fx.start();
    let ps = fx.wait_ps("probe running", |ps| all_running(ps, &["box/probe.0"]));
    let (knot, _) = pids(&ps, "box/probe.0");
    // Running cairn-init: the knot's exe became the memfd.
    wait_for(Duration::from_secs(5), "pid 1 to become cairn-init", || {
        fs::read_link(format!("/proc/{knot}/exe"))
            .ok()
            .map(|p| p.display().to_string())
            .filter(|p| p.contains("memfd:cairn-init"))
    });
    let status = fs::read_to_string(format!("/proc/{knot}/status")).expect("status");
    let rss: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS");
    assert!(rss <= 64, "cairn-init uses {rss} kB");
    assert_eq!(comm(knot), "box/probe.0");
    assert!(
        cmdline(knot).starts_with("cairn-init box/probe.0 "),
        "{}",
        cmdline(knot)
    );
    let text = wait_for(Duration::from_secs(5), "the probe's findings", || {
        let t = fs::read_to_string(fx.set.p("log/stdio/box.log")).ok()?;
        t.contains("comm ").then_some(t)
    });
    for f in ["exe", "root", "environ"] {
        assert!(
            text.contains(&format!("closed {f}")),
            "/proc/1/{f} is reachable:\n{text}"
        );
    }
    assert!(text.contains("comm box/probe.0"), "{text}");
}

/// Knots and cairn-init say which instance they serve, in `ps` and `top`:
/// a knot (kept as pid 1 with `restart-process-only`) reads `cairn-knot
/// box/keep.0`, cairn-init `cairn-init box/web.0 2 0 0 15` (its arguments
/// follow the title); each is named (`comm`) after its instance, or its
/// `PROCESS.N`, or the last 15 bytes of that, the same rule in the knot
/// and in cairn-init. After a `kill -9` of the tree, a new tree adopts
/// them all (no restart), and they keep their titles.
#[test]
fn knots_and_cairn_init_name_their_instance_and_are_adopted_after_kill_9() {
    let mut fx = fixture!();
    // (process, kept by its knot, its name)
    let cases = [
        ("web", false, "box/web.0"),
        ("keep", true, "box/keep.0"),
        ("long-process", false, "long-process.0"),
        ("kept-process", true, "kept-process.0"),
        ("a-very-long-process-name", false, "-process-name.0"),
        ("another-long-process-name", true, "-process-name.0"),
    ];
    for (p, kept, _) in cases {
        let extra = if kept {
            "restart-process-only: true\n"
        } else {
            ""
        };
        fx.container(p, &sleeper(extra));
    }
    let entries: Vec<(&str, u32)> = cases.iter().map(|(p, _, _)| (*p, 1)).collect();
    fx.processes(&entries);
    fx.start();
    let names: Vec<String> = cases.iter().map(|(p, _, _)| format!("box/{p}.0")).collect();
    let ps = fx.wait_ps("all running", |ps| all_running(ps, &refs(&names)));
    let knots: Vec<i32> = names.iter().map(|n| pids(&ps, n).0).collect();
    let check = |why: &str| {
        for ((p, kept, comm_want), knot) in cases.iter().zip(&knots) {
            let title = if *kept {
                format!("cairn-knot box/{p}.0")
            } else {
                format!("cairn-init box/{p}.0")
            };
            let line = wait_for(Duration::from_secs(5), "pid 1's title", || {
                let c = cmdline(*knot);
                c.starts_with(&title).then_some(c)
            });
            if *kept {
                // The knot's command line is the title alone, one argument.
                assert_eq!(
                    fs::read(format!("/proc/{knot}/cmdline")).expect("cmdline"),
                    format!("{title}\0").into_bytes(),
                    "{why}"
                );
            } else {
                // Then the workload's pid in the container, interactive,
                // OOM kills before, the stop signal; then the stdio log
                // pump's fds and settings, the prefix's name and the log.
                let rest = line
                    .strip_prefix(&format!("{title} 2 0 0 15 "))
                    .unwrap_or_else(|| panic!("{why}: {line:?}"));
                assert!(
                    rest.is_empty() || rest.ends_with(&format!(",1,1 {p}.0 box.log ")),
                    "{why}: {line:?}"
                );
            }
            assert_eq!(comm(*knot), *comm_want, "{why}: {p}");
        }
        // `pgrep` finds them by those titles.
        let out = output_within(
            Command::new("pgrep").args(["-f", "^cairn-(knot|init) box/"]),
            None,
            WAIT,
        );
        let found: BTreeSet<i32> = stdout(&out)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        assert!(
            knots.iter().all(|p| found.contains(p)),
            "{why}: pgrep found {found:?}, want {knots:?}"
        );
    };
    check("started");
    let workload = pids(&ps, "box/web.0").1;
    fx.stop_tree(libc::SIGKILL);
    fx.start();
    let ps = fx.wait_ps("adopted", |ps| {
        ps["tree"]["running"] == true && all_running(ps, &refs(&names))
    });
    for (name, knot) in names.iter().zip(&knots) {
        assert_eq!(pids(&ps, name).0, *knot, "{name} was not adopted");
        assert_eq!(
            inst(&ps, name).expect("listed")["restarts"],
            0,
            "{name} restarted"
        );
    }
    assert_eq!(pids(&ps, "box/web.0").1, workload);
    check("adopted");
}
