//! Config changes on a running tree: `cairn switch` scaling an entry up
//! and down and refusing an invalid file, a config broken on disk then
//! reloaded (everything keeps running, the error is reported), and rolling
//! restarts of a changed config, one instance at a time.

use super::*;

#[test]
fn switch_scales_exactly_the_right_instances() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 3)]);
    fx.start();
    let three = names("web", 3);
    let ps = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&three)));
    let first: BTreeMap<String, (i32, i32)> =
        three.iter().map(|n| (n.clone(), pids(&ps, n))).collect();

    let five_yaml = processes_yaml(&[("web", 5)]);
    let out = fx.switch("five.yaml", &five_yaml);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("installed"), "{}", stdout(&out));
    assert_eq!(
        fs::read_to_string(fx.set.p("processes/box.yaml")).expect("installed"),
        five_yaml
    );
    let five = names("web", 5);
    let ps = fx.wait_ps("5 running", |ps| {
        insts(ps).len() == 5 && all_running(ps, &refs(&five))
    });
    for (name, p) in &first {
        assert_eq!(pids(&ps, name), *p, "{name} was restarted by scaling up");
    }
    let old: BTreeSet<i32> = first.values().flat_map(|(k, w)| [*k, *w]).collect();
    let mut removed = Vec::new();
    for name in &five[3..] {
        let (k, w) = pids(&ps, name);
        assert!(!old.contains(&k) && !old.contains(&w), "{name} reuses pids");
        assert_eq!(inst(&ps, name).expect("listed")["restarts"], 0);
        removed.extend([k, w]);
    }
    for name in &five[1..3] {
        let (k, w) = pids(&ps, name);
        removed.extend([k, w]);
    }

    let out = fx.switch("one.yaml", &processes_yaml(&[("web", 1)]));
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = fx.wait_ps("only web.0", |ps| {
        insts(ps).len() == 1 && all_running(ps, &["box/web.0"])
    });
    let (k0, w0) = pids(&ps, "box/web.0");
    assert_eq!((k0, w0), first["box/web.0"], "web.0 was restarted");
    for pid in &removed {
        assert!(!alive(*pid), "pid {pid} of a removed instance lives on");
    }
    // Exactly one leaf is left in every hierarchy, holding only web.0.
    for root in fx.cgroup_roots() {
        assert!(
            cgroup_procs(&root).is_empty(),
            "{} holds pids",
            root.display()
        );
    }
    let leaves = cgroup_leaves(&fx.cgroup.name);
    assert!(!leaves.is_empty());
    let mut in_cgroups = BTreeSet::new();
    for leaf in &leaves {
        assert_eq!(
            leaf.file_name().and_then(|n| n.to_str()),
            Some("box:web.0"),
            "leaf left behind: {}",
            leaf.display()
        );
        in_cgroups.extend(cgroup_procs(leaf));
    }
    let mine: BTreeSet<i32> = std::iter::once(k0).chain(descendants(k0)).collect();
    assert!(
        in_cgroups.is_subset(&mine),
        "cgroups hold {in_cgroups:?}, web.0 is {mine:?}"
    );
    let log = fx.log();
    for n in 1..5 {
        assert!(
            log.contains(&format!("box/web.{n}: stopping (removed")),
            "{log}"
        );
    }
}

#[test]
fn switch_refuses_an_invalid_file_and_changes_nothing() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.container("root", &sleeper("").replace("user-id: 1000", "user-id: 0"));
    fx.processes(&[("web", 2)]);
    fx.start();
    let web = names("web", 2);
    let before = fx.wait_ps("2 running", |ps| all_running(ps, &refs(&web)));
    let installed = fs::read(fx.set.p("processes/box.yaml")).expect("processes");
    let cases = [
        (
            "syntax.yaml",
            "web:\n  image: bb: x\n  config: /config/web.yaml\n".to_string(),
            "YAML syntax error",
        ),
        (
            "unknown-key.yaml",
            "web:\n  image: bb\n  colour: red\n  config: /config/web.yaml\n".to_string(),
            "web.colour: unknown key",
        ),
        (
            "negative.yaml",
            "web:\n  image: bb\n  config: /config/web.yaml\n  instances: -1\n".to_string(),
            "is not a number",
        ),
        (
            "missing.yaml",
            "web:\n  image: bb\n  config: /config/nope.yaml\n".to_string(),
            "no such file in the image",
        ),
        ("root.yaml", processes_yaml(&[("root", 1)]), "user-id"),
    ];
    for (file, content, needle) in &cases {
        let out = fx.switch(file, content);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{file} was accepted: {err}");
        assert!(err.contains(needle), "{file}: want {needle:?} in:\n{err}");
        let named = if *file == "missing.yaml" || *file == "root.yaml" {
            // The problem is in the container config the entry names.
            fx.set.s("images/bb/config")
        } else {
            fx.set.s(file)
        };
        assert!(
            err.contains(&named),
            "{file}: message must name {named}:\n{err}"
        );
        assert!(err.contains("was not installed"), "{err}");
        assert_eq!(
            fs::read(fx.set.p("processes/box.yaml")).expect("processes"),
            installed,
            "{file} changed the installed config"
        );
    }
    let good = fx.set.write("good.yaml", processes_yaml(&[("web", 2)]));
    let out = cairn(&[
        "switch",
        "-c",
        &fx.master_path(),
        "nosuch",
        good.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no sandbox named \"nosuch\""),
        "{}",
        stderr(&out)
    );
    // A SIGHUP would have been handled within milliseconds.
    std::thread::sleep(Duration::from_millis(300));
    let after = fx.ps();
    assert_eq!(reloads(&after), reloads(&before), "the tree reloaded");
    for name in &web {
        assert_eq!(pids(&after, name), pids(&before, name), "{name} restarted");
        assert_eq!(inst(&after, name).expect("listed")["restarts"], 0);
    }
    assert!(after["config_errors"].as_array().expect("array").is_empty());
}

#[test]
fn config_broken_on_disk_keeps_everything_running() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.container("api", &sleeper(""));
    fx.processes(&[("web", 2), ("api", 1)]);
    fx.start();
    let all = ["box/web.0", "box/web.1", "box/api.0"];
    let ps0 = fx.wait_ps("all running", |ps| all_running(ps, &all));
    let snapshot = |ps: &Value| -> Vec<(i32, i32)> { all.iter().map(|n| pids(ps, n)).collect() };
    let good = fs::read_to_string(fx.set.p("processes/box.yaml")).expect("processes");
    let reload = |fx: &Fx| {
        let out = cairn(&["reload", "-c", &fx.master_path()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("tree pid {}", fx.tree_pid())),
            "{}",
            stdout(&out)
        );
    };

    // The process config: invalid YAML on line 2.
    fx.set.write(
        "processes/box.yaml",
        "web:\n  image: bb: x\n  config: /config/web.yaml\n",
    );
    reload(&fx);
    let r0 = reloads(&ps0);
    let ps = fx.wait_ps("the error in ps", |ps| {
        reloads(ps) == r0 + 1 && !ps["config_errors"].as_array().expect("array").is_empty()
    });
    let errors = ps["config_errors"].to_string();
    let where_ = format!("{}:2:", fx.set.s("processes/box.yaml"));
    assert!(errors.contains(&where_), "want {where_} in {errors}");
    assert!(errors.contains("YAML syntax error"), "{errors}");
    assert_eq!(snapshot(&ps), snapshot(&ps0), "something restarted");
    assert!(all_running(&ps, &all));
    assert!(
        fx.log().contains(&format!("config: {where_}")),
        "{}",
        fx.log()
    );

    // The container config inside the image: the entry keeps its instances.
    fx.set.write("processes/box.yaml", &good);
    fx.container("web", "executable: [\nuser-id: 1000\n");
    reload(&fx);
    let ps = fx.wait_ps("the container config error in ps", |ps| {
        reloads(ps) == r0 + 2 && ps["config_errors"].to_string().contains("web.yaml")
    });
    let errors = ps["config_errors"].to_string();
    let where_ = format!("{}:2:", fx.set.s("images/bb/config/web.yaml"));
    assert!(errors.contains(&where_), "want {where_} in {errors}");
    assert_eq!(snapshot(&ps), snapshot(&ps0), "something restarted");

    // master.yaml itself. The commands need it to find the tree, so they
    // refuse, naming the problem; a plain SIGHUP still reaches the tree,
    // which keeps everything and reports the error in state.json.
    fx.container("web", &sleeper(""));
    let master = fs::read_to_string(fx.set.p("master.yaml")).expect("master");
    fx.set
        .write("master.yaml", format!("{master}no-such-key: 1\n"));
    let where_ = format!("{}:6: no-such-key", fx.master_path());
    for cmd in ["reload", "ps"] {
        let out = cairn(&[cmd, "-c", &fx.master_path()]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(stderr(&out).contains(&where_), "{cmd}: {}", stderr(&out));
    }
    kill(fx.tree_pid(), libc::SIGHUP);
    let state_file = fx.set.p("run/state.json");
    let st = wait_for(
        Duration::from_secs(5),
        "the master error in state.json",
        || {
            let v: Value = serde_json::from_slice(&fs::read(&state_file).ok()?).ok()?;
            (reloads(&v) == r0 + 3 && v["config_errors"].to_string().contains(&where_)).then_some(v)
        },
    );
    for (n, (knot, _)) in all.iter().zip(snapshot(&ps0)) {
        let i = inst(&st, n).expect("listed");
        assert_eq!(
            (&i["state"], &i["pid"]),
            (&"running".into(), &knot.into()),
            "{n}"
        );
    }

    // Repaired: the errors go, and since nothing really changed, nothing
    // restarts.
    fx.set.write("master.yaml", &master);
    reload(&fx);
    let ps = fx.wait_ps("no config errors", |ps| {
        reloads(ps) == r0 + 4 && ps["config_errors"].as_array().expect("array").is_empty()
    });
    assert_eq!(snapshot(&ps), snapshot(&ps0), "something restarted");
    for n in all {
        assert_eq!(inst(&ps, n).expect("listed")["restarts"], 0);
    }
}

/// A workload that takes 0.2 s to stop, so a rollout is slow enough to
/// watch.
fn versioned(version: &str) -> String {
    sh_env(
        "trap 'sleep 0.2; exit 0' TERM; sleep 1000 & wait",
        &[("VERSION", version)],
        "kill-timeout: 5\n",
    )
}

#[test]
fn broken_new_config_stops_the_rollout_at_one_instance() {
    let mut fx = fixture!();
    fx.container("web", &versioned("1"));
    fx.processes(&[("web", 3)]);
    fx.start();
    let web = names("web", 3);
    let ps0 = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&web)));
    // Valid config, but the program does not exist: it cannot come up.
    fx.container(
        "web",
        &sleeper("restart-timeout: 0.1\n").replace("/bin/sleep", "/bin/no-such-program"),
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The first instance is replaced and crash-loops; the rollout waits.
    let ps = fx.wait_ps("web.0 failing with the new config", |ps| {
        inst(ps, "box/web.0").is_some_and(|i| i["last_exit"]["status"] == 127)
    });
    let new_hash = inst(&ps, "box/web.0").expect("listed")["config_hash"].clone();
    // Give it time to move on, if it wrongly would (a few back-offs).
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        let ps = fx.ps();
        for name in &web[1..] {
            assert_eq!(pids(&ps, name), pids(&ps0, name), "{name} was touched");
            assert_eq!(state(&ps, name), Some("running"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ps = fx.ps();
    let i = inst(&ps, "box/web.0").expect("listed");
    assert_eq!(i["config_hash"], new_hash);
    assert!(
        i["last_exit"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("/bin/no-such-program")),
        "{i}"
    );
    // Repaired: the rollout goes on through every instance.
    fx.container("web", &versioned("2"));
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = fx.wait_ps("all on the repaired config", |ps| {
        all_running(ps, &refs(&web)) && web[1..].iter().all(|n| pids(ps, n) != pids(&ps0, n))
    });
    for name in &web {
        let (_, w) = pids(&ps, name);
        let env = fs::read(format!("/proc/{w}/environ")).expect("environ");
        assert!(
            String::from_utf8_lossy(&env).contains("VERSION=2"),
            "{name}"
        );
    }
}

#[test]
fn changed_config_rolls_one_instance_at_a_time() {
    let mut fx = fixture!();
    fx.master(&format!("config-log-dir: {}\n", fx.set.s("log/config")));
    fx.container("web", &versioned("1"));
    fx.processes(&[("web", 3)]);
    fx.start();
    let web = names("web", 3);
    let ps0 = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&web)));
    let old: BTreeMap<&str, ((i32, i32), String)> = web
        .iter()
        .map(|n| {
            let hash = inst(&ps0, n).expect("listed")["config_hash"]
                .as_str()
                .expect("hash")
                .to_string();
            (n.as_str(), (pids(&ps0, n), hash))
        })
        .collect();
    fx.container("web", &versioned("2"));
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state_file = fx.set.p("run/state.json");
    let start = Instant::now();
    let mut samples = 0;
    let mut worst = 0;
    let ps = loop {
        assert!(start.elapsed() < WAIT, "rollout did not finish");
        // state.json is replaced atomically: never a torn file.
        let raw = fs::read(&state_file).expect("state.json");
        serde_json::from_slice::<Value>(&raw).expect("state.json parses");
        let ps = fx.ps();
        samples += 1;
        let down = web
            .iter()
            .filter(|n| state(&ps, n) != Some("running"))
            .count();
        worst = worst.max(down);
        assert!(down <= 1, "{down} instances down at once: {ps}");
        let done = web.iter().all(|n| {
            let i = inst(&ps, n).expect("listed");
            i["state"] == "running" && i["config_hash"] != old[n.as_str()].1.as_str()
        });
        if done {
            break ps;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        worst == 1 && samples > 3,
        "never saw the rollout ({samples} samples)"
    );
    for n in &web {
        let (k, w) = pids(&ps, n);
        let (ok, ow) = old[n.as_str()].0;
        assert!(k != ok && w != ow, "{n} kept its pids");
        assert!(!alive(ok) && !alive(ow));
        assert_eq!(
            fs::read_to_string(format!("/proc/{w}/environ"))
                .map(|e| e.contains("VERSION=2"))
                .ok(),
            Some(true),
            "{n} runs the old config"
        );
    }
    // The log shows the order: each replacement started before the next
    // instance was touched.
    let log = fx.log();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in log:\n{log}"))
    };
    let mut prev_started = 0;
    for (n, name) in web.iter().enumerate() {
        let changed = at(&format!("{name}: config changed"));
        assert!(
            changed >= prev_started,
            "{name} was touched too early:\n{log}"
        );
        let new_hash = inst(&ps, name).expect("listed")["config_hash"]
            .as_str()
            .expect("hash")
            .to_string();
        prev_started = at(&format!(
            "{name}: started (knot pid {}, config {new_hash})",
            pids(&ps, name).0
        ));
        assert!(prev_started > changed, "{n}");
    }
    // The config log has both versions of every instance.
    let config_log = fs::read_to_string(fx.set.p("log/config/box.log")).expect("config log");
    for (name, (_, hash)) in &old {
        assert!(
            config_log.contains(&format!(" {name} {hash} ")),
            "{config_log}"
        );
    }
    assert_eq!(config_log.lines().count(), 6, "{config_log}");
    fx.expect_metrics(&[
        ("cairn_started_total", "web", 6),
        ("cairn_deaths_total", "web", 3),
        ("cairn_failures_total", "web", 0),
    ]);
}
