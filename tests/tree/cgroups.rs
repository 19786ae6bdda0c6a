//! Instance cgroups: a leaf that cannot be removed yet is removed later
//! without stalling the tree, and the limits a config sets survive
//! restarts and are rewritten when the config changes.

use super::*;

/// The tree never sleeps waiting for a cgroup leaf it cannot remove yet
/// (issue 18, item 6): something still holds the leaf of a removed
/// instance (here a cgroup below it, in every hierarchy, so `rmdir`
/// answers EBUSY the same way on cgroup v1 and v2). The instance is gone
/// from `ps` at once, the leaf stays while it is held, and once it is let
/// go the tree removes it on its own. Before, the tree slept up to 0.2 s
/// retrying, then gave up for good: the leaf stayed after it was let go.
#[test]
fn a_busy_cgroup_leaf_is_removed_later_without_stalling_the_tree() {
    let mut fx = fixture!();
    fx.container("s", &sleeper(""));
    fx.processes(&[("s", 2)]);
    fx.start();
    let all = names("s", 2);
    fx.wait_ps("both running", |ps| all_running(ps, &refs(&all)));
    let leaves: Vec<PathBuf> = fx
        .cgroup_roots()
        .iter()
        .map(|r| r.join("box:s.1"))
        .collect();
    assert!(!leaves.is_empty());
    let held: Vec<PathBuf> = leaves.iter().map(|l| l.join("held")).collect();
    for h in &held {
        fs::create_dir(h).expect("mkdir a cgroup below the leaf");
    }
    fx.processes(&[("s", 1)]);
    let before = reloads(&fx.ps());
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    fx.wait_ps("s.1 removed", |ps| {
        reloads(ps) > before && inst(ps, "box/s.1").is_none()
    });
    // Held for longer than the old code tried.
    std::thread::sleep(Duration::from_millis(800));
    assert!(leaves.iter().all(|l| l.is_dir()), "the held leaf went");
    for h in &held {
        fs::remove_dir(h).expect("rmdir the cgroup below the leaf");
    }
    wait_for(
        Duration::from_secs(5),
        "the leaf removed by the tree",
        || leaves.iter().all(|l| !l.exists()).then_some(()),
    );
    assert!(!fx.log().contains("cgroup cleanup"), "{}", fx.log());
    // And the other instance never noticed.
    let ps = fx.ps();
    assert!(all_running(&ps, &["box/s.0"]), "{ps}");
}

/// The memory limit of the test's single instance leaf, in bytes.
fn memory_limit(fx: &Fx) -> Option<(PathBuf, u64)> {
    cgroup_leaves(&fx.cgroup.name).into_iter().find_map(|leaf| {
        ["memory.limit_in_bytes", "memory.max"]
            .iter()
            .find_map(|f| {
                let v = fs::read_to_string(leaf.join(f)).ok()?.trim().parse().ok()?;
                Some((leaf.clone(), v))
            })
    })
}

#[test]
fn restart_keeps_the_cgroup_limits_and_a_changed_config_rewrites_them() {
    let mut fx = fixture!();
    fx.container(
        "web",
        &sleeper("memory-limit: 64Mi\nrestart-timeout: 0.2\n"),
    );
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let (leaf, limit) = memory_limit(&fx).expect("a memory leaf with a limit");
    assert_eq!(limit, 64 << 20);
    // A restart with the same config joins the same leaf, limit in place.
    let (knot, work) = pids(&ps, "box/web.0");
    std::thread::sleep(Duration::from_millis(250));
    kill(work, libc::SIGKILL);
    let ps = fx.wait_ps("a new web.0", |ps| {
        all_running(ps, &["box/web.0"]) && pids(ps, "box/web.0").0 != knot
    });
    let (knot, work) = pids(&ps, "box/web.0");
    assert_eq!(memory_limit(&fx), Some((leaf.clone(), 64 << 20)));
    let procs = cgroup_procs(&leaf);
    assert!(
        procs.contains(&knot) && procs.contains(&work),
        "{procs:?} lacks knot {knot} or workload {work}"
    );
    // A changed config restarts the instance with the new limit written.
    let hash = inst(&ps, "box/web.0").expect("listed")["config_hash"].clone();
    fx.container(
        "web",
        &sleeper("memory-limit: 32Mi\nrestart-timeout: 0.2\n"),
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    fx.wait_ps("web.0 on the new config", |ps| {
        all_running(ps, &["box/web.0"])
            && inst(ps, "box/web.0").is_some_and(|i| i["config_hash"] != hash)
    });
    assert_eq!(memory_limit(&fx), Some((leaf, 32 << 20)));
}
