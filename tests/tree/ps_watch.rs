//! `cairn ps --watch`: the state once, then one line per change as the
//! tree publishes it, across an in-place upgrade, until the tree's end
//! (exit 1) or a signal (exit 0); `--json` prints one object per change.

use super::*;

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{Receiver, channel};

/// A running `cairn ps --watch`, its stdout read line by line.
struct Watch {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn start(fx: &Fx, extra: &[&str]) -> Watch {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(["ps", "-c", &fx.master_path(), "--watch"])
            .args(extra);
        Watch::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Watch {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ps --watch");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Read lines until one satisfies `want`; that line.
    fn until(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if want(&l) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "ps --watch: no line {what}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Wait for the watch to exit; its status and stderr. What it
    /// printed up to its end is in `seen`.
    fn exit(&mut self) -> (ExitStatus, String) {
        let Some(status) = wait_child(&mut self.child, WAIT) else {
            kill(self.pid(), libc::SIGKILL);
            panic!("ps --watch did not end:\n{}", self.seen.join("\n"))
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        (status, err)
    }

    /// Every line fits 80 columns, but the whole text of a cut one (the
    /// line below it, indented by two spaces).
    fn assert_80_columns(&self) {
        for l in &self.seen {
            assert!(
                l.starts_with("  ") || l.chars().count() <= 80,
                "{} columns: {l}",
                l.chars().count()
            );
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill(self.pid(), libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// `voluntary_ctxt_switches` of a process: how often it went to sleep.
fn wakeups(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .expect("voluntary_ctxt_switches")
}

/// The watch prints the table, then each change as it happens (a killed
/// workload: its exit, restart and new pid; a reload adding an instance);
/// it does not wake up while the tree is idle; it goes on across `cairn
/// upgrade`; and when the tree is killed it says so and exits 1. Every
/// line fits 80 columns, except the whole text of a cut one, below it.
#[test]
fn watch_prints_each_change_goes_on_across_an_upgrade_and_ends_with_the_tree() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web.0 running and ready", |ps| {
        all_running(ps, &["box/web.0"])
            && inst(ps, "box/web.0").is_some_and(|i| i["ready_since"].is_string())
    });
    let (knot, workload) = pids(&ps, "box/web.0");
    let mut w = Watch::start(&fx, &[]);
    w.until("with the table's header", |l| l.starts_with("INSTANCE"));
    w.until("with the summary", |l| l.starts_with("total: 1 running"));

    // Idle tree: the watch sleeps (no polling).
    std::thread::sleep(Duration::from_millis(300));
    let before = wakeups(w.pid());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        wakeups(w.pid()),
        before,
        "ps --watch woke up while nothing changed"
    );

    // A workload killed: its exit, a restart, a new pid.
    kill(workload, libc::SIGKILL);
    let l = w.until("with web.0's exit", |l| {
        l.contains(" box/web.0 ") && l.contains("killed by signal 9")
    });
    assert!(l.contains("(a failure)"), "{l}");
    let ps = fx.wait_ps("web.0 running again", |ps| {
        all_running(ps, &["box/web.0"]) && pids(ps, "box/web.0").0 != knot
    });
    let (knot2, workload2) = pids(&ps, "box/web.0");
    let restarts = inst(&ps, "box/web.0").expect("listed")["restarts"].clone();
    w.until("with the restart", |l| {
        l.contains(&format!("box/web.0 restarted (restart {restarts})"))
    });
    w.until("with the new pid", |l| {
        l.contains(&format!("box/web.0 new pid {knot2}"))
    });

    // A reload that adds an instance.
    fx.processes(&[("web", 2)]);
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    w.until("with the reload", |l| {
        l.contains(" tree ") && l.contains("configs read again (reload 2)")
    });
    // Seen starting, or already running when the tree published both
    // in one write.
    w.until("with web.1", |l| {
        l.contains(" box/web.1 ") && l.contains("appeared, ")
    });
    fx.wait_ps("web.1 running", |ps| {
        all_running(ps, &["box/web.0", "box/web.1"])
    });

    // An in-place upgrade: the same tree pid; the watch goes on.
    let out = cairn(&["upgrade", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    w.until("with the upgrade", |l| {
        l.contains(" tree ") && l.contains("upgraded in place to ") && l.contains("(upgrade 1)")
    });
    fx.wait_ps("upgrade 1 done", |ps| {
        ps["tree"]["upgrades"] == 1 && all_running(ps, &["box/web.0", "box/web.1"])
    });
    kill(workload2, libc::SIGKILL);
    w.until("with web.0's second exit, after the upgrade", |l| {
        l.contains(" box/web.0 ") && l.contains("killed by signal 9")
    });
    fx.wait_ps("web.0 running again", |ps| {
        all_running(ps, &["box/web.0"]) && pids(ps, "box/web.0").0 != knot2
    });

    // The tree killed: the watch says so, and exits 1.
    let tree = fx.tree_pid();
    fx.stop_tree(libc::SIGKILL);
    let l = w.until("with the tree's end", |l| {
        l.contains(" tree ") && l.contains("ended (pid")
    });
    assert!(
        l.contains(&format!("ended (pid {tree}): no cairn tree runs")),
        "{l}"
    );
    let (status, err) = w.exit();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        w.seen
            .iter()
            .any(|l| l.contains("its instances may run on")),
        "{}",
        w.seen.join("\n")
    );
    w.assert_80_columns();
    // Started after the tree died: the last state, as `ps` shows it, and 1
    // at once.
    let out = output_within(
        Command::new(cairn_bin()).args(["ps", "-c", &fx.master_path(), "--watch"]),
        None,
        WAIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("box/web.1"), "{}", stdout(&out));
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
}

/// `--watch --json`: the first line is what `ps --json` prints, then one
/// object per change with its time and event; `--sandbox` keeps that
/// sandbox's changes. SIGTERM (and SIGINT) end the watch with 0.
#[test]
fn watch_json_prints_one_object_per_change_and_a_signal_ends_it_with_0() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let (_, workload) = pids(&ps, "box/web.0");
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut w = Watch::start(&fx, &["--json", "--sandbox", "box"]);
        let first: Value = serde_json::from_str(&w.until("first", |_| true)).expect("json");
        assert_eq!(first["tree"]["pid"], fx.tree_pid(), "{first}");
        assert_eq!(first["tree"]["running"], true, "{first}");
        assert!(inst(&first, "box/web.0").is_some(), "{first}");
        if sig == libc::SIGTERM {
            kill(workload, libc::SIGKILL);
            let l = w.until("with the exit event", |l| l.contains("\"event\":\"exit\""));
            let e: Value = serde_json::from_str(&l).expect("json");
            assert_eq!(e["instance"], "box/web.0", "{e}");
            assert_eq!(e["sandbox"], "box", "{e}");
            assert_eq!(e["process"], "web", "{e}");
            assert_eq!(e["last_exit"]["signal"], 9, "{e}");
            assert_eq!(e["last_exit"]["status"], 137, "{e}");
            // RFC 3339 with milliseconds: 2026-12-03T10:15:07.326Z.
            let at = e["at"].as_str().expect("at");
            assert!(at.len() == 24 && at.as_bytes()[19] == b'.', "{e}");
            epoch(&format!("{}Z", &at[..19]));
            let l = w.until("with the new pid", |l| l.contains("\"event\":\"pid\""));
            let e: Value = serde_json::from_str(&l).expect("json");
            fx.wait_ps("web.0 running again", |ps| all_running(ps, &["box/web.0"]));
            let knot = pids(&fx.ps(), "box/web.0").0;
            assert_eq!(e["to"], knot, "{e}");
        }
        kill(w.pid(), sig);
        let (status, err) = w.exit();
        assert_eq!(status.code(), Some(0), "signal {sig}: {err}");
        for l in &w.seen[1..] {
            let e: Value = serde_json::from_str(l).expect("one object per line");
            assert!(e["event"].is_string() && e["at"].is_string(), "{l}");
        }
    }
}

/// With no tree running, `--watch` prints the last state as `ps` does,
/// says the tree is not running, and exits 1 at once; a tree that stops
/// (SIGTERM) ends the watch with 1 too, saying it stopped its instances.
#[test]
fn watch_exits_1_when_no_tree_runs_or_the_tree_stops() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    fx.start();
    fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let mut w = Watch::start(&fx, &[]);
    w.until("with the summary", |l| l.starts_with("total: "));
    let tree = fx.tree_pid();
    let (status, _) = fx.stop_tree(libc::SIGTERM);
    assert!(status.success());
    let l = w.until("with the tree's end", |l| l.contains("ended (pid"));
    assert!(l.contains(&format!("ended (pid {tree})")), "{l}");
    let (status, err) = w.exit();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        w.seen
            .iter()
            .any(|l| l.contains("it stopped every instance and exited")),
        "{}",
        w.seen.join("\n")
    );
    // No tree, no state: the same message as `ps`, exit 1.
    let out = output_within(
        Command::new(cairn_bin()).args(["ps", "-c", &fx.master_path(), "--watch"]),
        None,
        WAIT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no cairn tree runs"),
        "{}",
        stderr(&out)
    );
}

/// A watch in another pid namespace cannot see the tree's pid (the pid
/// file lock's holder reads as 0 there): it still sees the changes, and
/// the tree's end, from the lock, looked at again when the tree's fd of
/// `tree.pid` closes.
#[test]
fn watch_from_another_pid_namespace_sees_changes_and_the_trees_end() {
    require!(have("unshare"), "unshare (util-linux) is not installed");
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    let (_, workload) = pids(&ps, "box/web.0");
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc"])
        .arg(cairn_bin())
        .args(["ps", "-c", &fx.master_path(), "--watch"]);
    let mut w = Watch::spawn(cmd);
    w.until("with the summary", |l| l.starts_with("total: 1 running"));
    kill(workload, libc::SIGKILL);
    w.until("with web.0's exit", |l| {
        l.contains(" box/web.0 ") && l.contains("killed by signal 9")
    });
    fx.wait_ps("web.0 running again", |ps| all_running(ps, &["box/web.0"]));
    // From there, the tree's pid is not visible (what the watch faced).
    let out = output_within(
        Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
            .arg(cairn_bin())
            .args(["reload", "-c", &fx.master_path()]),
        None,
        WAIT,
    );
    assert!(
        stderr(&out).contains("runs in another pid namespace"),
        "{}",
        stderr(&out)
    );
    let tree = fx.tree_pid();
    fx.stop_tree(libc::SIGKILL);
    let l = w.until("with the tree's end", |l| l.contains("ended (pid"));
    // The pid the tree wrote in its state (its own namespace's: ours).
    assert!(
        l.contains(&format!("ended (pid {tree}): no cairn tree runs")),
        "{l}"
    );
    let (status, err) = w.exit();
    assert_eq!(status.code(), Some(1), "{err}");
}
