//! Command-line contract around the tree: usage errors exit 2, no running
//! tree exits 1, and a second tree on the same runtime dir is refused.

use super::*;

#[test]
fn second_tree_on_the_same_runtime_dir_refuses() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("running", |ps| all_running(ps, &["box/web.0"]));
    let first = fx.tree_pid();
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["tree", "-c", &fx.master_path(), "--log-stderr"]);
    let out = output_within(&mut cmd, None, Duration::from_secs(10));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("pid {first}")), "{err}");
    assert!(err.contains(&fx.set.s("run")), "{err}");
    assert_eq!(
        fs::read_to_string(fx.set.p("run/tree.pid"))
            .expect("pid file")
            .trim(),
        first.to_string()
    );
    let after = fx.ps();
    assert_eq!(after["tree"]["pid"], first);
    assert_eq!(pids(&after, "box/web.0"), pids(&ps, "box/web.0"));
    assert!(alive(first));
}

#[test]
fn usage_errors_exit_2_and_missing_tree_exits_1() {
    for args in [
        vec!["tree", "--bogus"],
        vec!["ps", "--bogus"],
        vec!["switch", "box"],
        vec!["reload", "extra"],
        vec!["tree", "--log-level", "loud"],
    ] {
        let out = cairn(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let set = ConfigSet::new();
    set.write("master.yaml", format!("runtime-dir: {}\n", set.s("run")));
    for cmd in ["ps", "reload", "upgrade"] {
        let out = cairn(&[cmd, "-c", &set.master()]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            stderr(&out).contains("no cairn tree runs"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    // A master config that does not load: exit 1 naming it.
    let missing = set.s("nope.yaml");
    for cmd in ["tree", "ps", "reload"] {
        let out = cairn(&[cmd, "-c", &missing]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(stderr(&out).contains(&missing), "{cmd}: {}", stderr(&out));
    }
}

/// After the tree was killed (`kill -9`), `ps` still shows its last state
/// but says the tree is not running, and since when, and exits 1; the JSON
/// says `"running": false`. While it runs: `"running": true`, exit 0.
#[test]
fn ps_says_when_the_tree_is_dead() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    assert_eq!(ps["tree"]["running"], true);
    let (status, _) = fx.stop_tree(libc::SIGKILL);
    assert!(!status.success());
    let out = cairn(&["ps", "-c", &fx.master_path(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("ps --json");
    assert_eq!(v["tree"]["running"], false, "{v}");
    assert!(
        inst(&v, "box/web.0").is_some(),
        "the last state is still shown"
    );
    let err = stderr(&out);
    assert!(
        err.contains("is not running. This is its last state, written 20") && err.contains("s ago"),
        "{err}"
    );
    let out = cairn(&["ps", "-c", &fx.master_path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("box/web.0"), "{}", stdout(&out));
}

/// Run as an ordinary user, `tree` and `cmd` say they must run as root
/// (not "Permission denied" on some dir); `cmd` exits 125, its status for a
/// container that could not be set up.
#[test]
fn tree_and_cmd_say_they_must_run_as_root() {
    require!(have("setpriv"), "util-linux setpriv needed");
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(cairn_bin())
            .args(args);
        output_within(&mut cmd, None, Duration::from_secs(10))
    };
    let out = as_nobody(&["tree", "-c", "/nonexistent/master.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cairn tree: must run as root"),
        "{}",
        stderr(&out)
    );
    let out = as_nobody(&["cmd", "-c", "/nonexistent/master.yaml", "box", "shell"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cairn cmd: must run as root"),
        "{}",
        stderr(&out)
    );
}

/// `cairn cmd` with no tree running leaves no cgroup behind: not its
/// leaf, not the cgroup-name root it made in each hierarchy.
#[test]
fn cmd_leaves_no_cgroup_behind() {
    let fx = fixture!();
    fx.container(
        "once",
        "kind: Command\nuser-id: 1000\ngroup-id: 1000\nexecutable: /bin/true\n",
    );
    fx.set.write(
        "processes/box.yaml",
        "once:\n  kind: Command\n  image: bb\n  config: /config/once.yaml\n",
    );
    let out = cairn(&["cmd", "-c", &fx.master_path(), "box", "once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<_> = cgroup_root_dirs(&fx.cgroup.name)
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `cairn cmd SANDBOX NAME ARG...`: every ARG is the workload's, also one
/// that looks like an option of `cmd` (`-c`).
#[test]
fn cmd_passes_every_argument_after_name_to_the_workload() {
    let fx = fixture!();
    fx.container(
        "say",
        "kind: Command\nuser-id: 1000\ngroup-id: 1000\nexecutable: /bin/echo\n",
    );
    fx.set.write(
        "processes/box.yaml",
        "say:\n  kind: Command\n  image: bb\n  config: /config/say.yaml\n",
    );
    let out = cairn(&[
        "cmd",
        "-c",
        &fx.master_path(),
        "box",
        "say",
        "-c",
        "id",
        "--",
        "x",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "-c id -- x\n");
}

/// `ps --sandbox NAME` and `--state STATE` show only those instances, in
/// the JSON and the text form; an unknown state is a usage error.
#[test]
fn ps_filters_by_sandbox_and_state() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.container("crash", &sh("exit 3", "restart-timeout: 30\n"));
    fx.processes(&[("web", 2), ("crash", 1)]);
    fx.start();
    fx.wait_ps("web running, crash backing off", |ps| {
        all_running(ps, &["box/web.0", "box/web.1"]) && state(ps, "box/crash.0") == Some("backoff")
    });
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ps", "-c"];
        let master = fx.master_path();
        all.push(&master);
        all.push("--json");
        all.extend(args);
        let out = cairn(&all);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        insts(&v)
            .iter()
            .map(|i| i["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(names(&["--state", "backoff"]), ["box/crash.0"]);
    assert_eq!(names(&["--state", "running"]), ["box/web.0", "box/web.1"]);
    assert_eq!(names(&["--sandbox", "box"]).len(), 3);
    assert!(names(&["--sandbox", "other"]).is_empty());
    let out = cairn(&["ps", "-c", &fx.master_path(), "--state", "backoff"]);
    let text = stdout(&out);
    assert!(
        text.contains("box/crash.0") && !text.contains("box/web.0"),
        "{text}"
    );
    assert!(
        text.contains("total: 0 running, 1 backoff, 0 failed"),
        "{text}"
    );
    let out = cairn(&["ps", "-c", &fx.master_path(), "--state", "sleeping"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
