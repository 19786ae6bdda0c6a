//! `--wait` and `cairn restart`: a command that waits returns 0 only once
//! every instance runs its wanted config and is ready, 1 naming a stopped
//! rollout's instance and cause or a refused config's file and line, 124
//! on timeout; `cairn restart` rolls instances one at a time with their
//! config unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// A service that is ready (`!Fd 3`) `delay` seconds after it starts.
fn slow_ready(delay: &str, version: &str) -> String {
    sh_env(
        &format!("sleep {delay}; echo ready >&3; exec sleep 1000"),
        &[("VERSION", version)],
        "ready: !Fd 3\nkill-timeout: 1\n",
    )
}

/// `processes/box.yaml` content: entry `web`, `n` instances of
/// `/config/CONFIG.yaml`, plus `extra` keys.
fn web_yaml(config: &str, n: u32, extra: &str) -> String {
    format!("web:\n  image: bb\n  config: /config/{config}.yaml\n  instances: {n}\n{extra}")
}

fn hash(ps: &Value, name: &str) -> String {
    inst(ps, name).expect("listed")["config_hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `cairn ARGS... -c MASTER` with the fixture's master, timed.
fn run(fx: &Fx, args: &[&str]) -> (std::process::Output, Duration) {
    let t0 = Instant::now();
    let mut all: Vec<&str> = args.to_vec();
    let master = fx.master_path();
    all.extend(["-c", &master]);
    let out = cairn(&all);
    (out, t0.elapsed())
}

fn switch_wait(fx: &Fx, file: &str, content: &str, extra: &[&str]) -> std::process::Output {
    let path = fx.set.write(file, content);
    let mut args = vec!["switch", "--wait"];
    args.extend(extra);
    args.extend(["box", path.to_str().expect("utf-8")]);
    run(fx, &args).0
}

#[test]
fn switch_wait_returns_once_every_instance_runs_the_new_config_and_is_ready() {
    let mut fx = fixture!();
    fx.container("web", &slow_ready("1", "1"));
    fx.container("web2", &slow_ready("1", "2"));
    fx.set.write("processes/box.yaml", web_yaml("web", 3, ""));
    fx.start();
    let all = names("web", 3);
    let ps0 = fx.wait_ps("3 ready", |ps| all_running(ps, &refs(&all)));
    let t0 = Instant::now();
    let out = switch_wait(&fx, "v2.yaml", &web_yaml("web2", 3, ""), &[]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Right after it returned: every instance replaced, running, ready.
    let ps = fx.ps();
    assert!(all_running(&ps, &refs(&all)), "{ps}");
    for n in &all {
        assert_ne!(hash(&ps, n), hash(&ps0, n), "{n} has the old config");
        assert!(inst(&ps, n).expect("listed")["ready_since"].is_string());
    }
    assert_eq!(ps["rollouts"], serde_json::json!([]), "{ps}");
    // One at a time, each 1 s to be ready.
    assert!(took >= Duration::from_secs(3), "returned after {took:?}");
    assert!(
        stdout(&out).contains("switch of box done: 3 instances"),
        "{}",
        stdout(&out)
    );
    // Nothing to do: at once.
    let (out, took) = run(&fx, &["reload", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// The version of `a_version_that_crashes_stops_the_rollout_after_the_first_instance`,
/// waited for: exit 1 naming the instance and the cause.
#[test]
fn switch_wait_of_a_version_that_crashes_exits_1_naming_the_instance_and_cause() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.container(
        "crash",
        &sh("sleep 0.5; exit 1", "kill-timeout: 1\nrestart-timeout: 1\n"),
    );
    fx.set
        .write("processes/box.yaml", web_yaml("web", 3, "  min-ready: 2\n"));
    fx.start();
    let all = names("web", 3);
    fx.wait_ps("3 running", |ps| all_running(ps, &refs(&all)));
    let out = switch_wait(
        &fx,
        "v2.yaml",
        &web_yaml("crash", 3, "  min-ready: 2\n"),
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("box/web: rollout stopped: box/web.0 exited with status 1 within min-ready"),
        "{err}"
    );
}

/// A file that does not check is not installed (exit 1, naming file, line
/// and key); a container config that breaks on disk is refused by the
/// reload, and `reload --wait` exits 1 naming it.
#[test]
fn a_refused_config_exits_1_naming_file_line_and_key() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    fx.start();
    fx.wait_ps("running", |ps| all_running(ps, &["box/web.0"]));
    let out = switch_wait(
        &fx,
        "bad.yaml",
        "web:\n  image: bb\n  colour: red\n  config: /config/web.yaml\n",
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&fx.set.s("bad.yaml")), "{err}");
    assert!(err.contains("web.colour: unknown key"), "{err}");
    fx.container("web", "executable: [\nuser-id: 1000\n");
    let (out, _) = run(&fx, &["reload", "--wait", "--timeout", "20"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let where_ = format!("config error: {}:2:", fx.set.s("images/bb/config/web.yaml"));
    assert!(err.contains(&where_), "want {where_} in {err}");
}

#[test]
fn a_wait_that_outlasts_its_timeout_exits_124_saying_what_is_under_way() {
    let mut fx = fixture!();
    fx.container("web", &slow_ready("0", "1"));
    fx.processes(&[("web", 2)]);
    fx.start();
    let all = names("web", 2);
    fx.wait_ps("2 running", |ps| all_running(ps, &refs(&all)));
    fx.container("web", &slow_ready("3", "2"));
    let (out, took) = run(&fx, &["reload", "--wait", "--timeout", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(124), "{err}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(err.contains("timed out after 1 s"), "{err}");
    assert!(err.contains("box/web: rollout in progress"), "{err}");
}

/// Polls ps until stopped: the most instances of `names` seen not
/// `running` at once, each one's knot pids in the order seen, and the
/// config hashes seen of each.
type Hashes = BTreeMap<String, BTreeSet<String>>;

struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, BTreeMap<String, Vec<i64>>, Hashes)>,
}

impl Watch {
    fn start(fx: &Fx, names: &[String]) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let master = fx.master_path();
        let names = names.to_vec();
        let thread = std::thread::spawn(move || {
            let mut most_down = 0;
            let mut pids: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            let mut hashes = Hashes::new();
            while !s.load(Ordering::Relaxed) {
                let out = cairn(&["ps", "-c", &master, "--json"]);
                let Ok(ps) = serde_json::from_slice::<Value>(&out.stdout) else {
                    continue;
                };
                let down = names
                    .iter()
                    .filter(|n| state(&ps, n) != Some("running"))
                    .count();
                most_down = most_down.max(down);
                for n in &names {
                    let Some(i) = inst(&ps, n) else { continue };
                    let h = i["config_hash"].as_str().unwrap_or_default().to_string();
                    hashes.entry(n.clone()).or_default().insert(h);
                    if let Some(p) = i["pid"].as_i64() {
                        let seen = pids.entry(n.clone()).or_default();
                        if seen.last() != Some(&p) {
                            seen.push(p);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (most_down, pids, hashes)
        });
        Watch { stop, thread }
    }

    fn finish(self) -> (usize, BTreeMap<String, Vec<i64>>, Hashes) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("watcher")
    }
}

#[test]
fn restart_rolls_each_instance_once_one_at_a_time_keeping_its_config() {
    let mut fx = fixture!();
    fx.container("web", &slow_ready("0.5", "1"));
    fx.processes(&[("web", 3)]);
    fx.start();
    let all = names("web", 3);
    let ps0 = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&all)));
    let watch = Watch::start(&fx, &all);
    std::thread::sleep(Duration::from_millis(200));
    let (out, took) = run(&fx, &["restart", "--wait", "box/web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ps = fx.ps();
    let (most_down, seen, hashes) = watch.finish();
    assert!(all_running(&ps, &refs(&all)), "{ps}");
    assert_eq!(ps["rollouts"], serde_json::json!([]), "{ps}");
    assert!(took >= Duration::from_millis(1500), "restarted in {took:?}");
    assert_eq!(most_down, 1, "instances down at once: {most_down}");
    for n in &all {
        assert_eq!(hash(&ps, n), hash(&ps0, n), "{n}: config changed");
        assert_eq!(hashes[n].len(), 1, "{n}: config hashes seen: {hashes:?}");
        let first = i64::from(pids(&ps0, n).0);
        let now = i64::from(pids(&ps, n).0);
        assert_ne!(now, first, "{n} was not restarted");
        // Seen with its old pid and its new one, nothing in between.
        assert_eq!(seen[n], [first, now], "{n}: knot pids seen");
    }
    assert!(
        fx.log()
            .contains("box/web.1: restart requested, restarting"),
        "{}",
        fx.log()
    );

    // One instance: only that one.
    let (out, _) = run(&fx, &["restart", "--wait", "box/web.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = fx.ps();
    assert!(all_running(&after, &refs(&all)), "{after}");
    assert_ne!(pids(&after, "box/web.1").0, pids(&ps, "box/web.1").0);
    for n in ["box/web.0", "box/web.2"] {
        assert_eq!(pids(&after, n), pids(&ps, n), "{n} was restarted");
    }

    // Unknown targets: exit 1 naming them, nothing restarted.
    for bad in ["box/nope", "nosuch", "box/web.7"] {
        let (out, _) = run(&fx, &["restart", bad]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(err.contains(&format!("unknown target \"{bad}\"")), "{err}");
    }
    let last = fx.ps();
    for n in &all {
        assert_eq!(pids(&last, n), pids(&after, n), "{n} was restarted");
    }
}

/// A restart under way survives an upgrade: the new image goes on with
/// it, `upgrade --wait` returns once it is done, and the waiting restart
/// gets its answer from the new image.
#[test]
fn a_restart_survives_an_upgrade_and_upgrade_wait_waits_for_it() {
    let mut fx = fixture!();
    fx.container("web", &slow_ready("1", "1"));
    fx.processes(&[("web", 3)]);
    fx.start();
    let all = names("web", 3);
    let ps0 = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&all)));
    let mut restart = Command::new(cairn_bin())
        .args(["restart", "--wait", "-c", &fx.master_path(), "box/web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn restart");
    fx.wait_ps("the restart under way", |ps| {
        ps["rollouts"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["state"] == "in-progress"))
    });
    let (out, _) = run(&fx, &["upgrade", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ps = fx.ps();
    assert_eq!(ps["tree"]["upgrades"], 1, "{ps}");
    assert_eq!(ps["tree"]["pid"], fx.tree_pid());
    assert!(all_running(&ps, &refs(&all)), "{ps}");
    assert_eq!(ps["rollouts"], serde_json::json!([]), "{ps}");
    for n in &all {
        assert_ne!(pids(&ps, n).0, pids(&ps0, n).0, "{n} was not restarted");
    }
    let status = wait_child(&mut restart, WAIT).expect("restart returned");
    let mut err = String::new();
    if let Some(mut e) = restart.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
    }
    assert!(status.success(), "{err}");
}
