//! Losing the tree and finding the instances again: after `kill -9` a new
//! tree adopts them, after a fatal signal (before or after an upgrade) the
//! tree re-executes itself and adopts them, without cgroups too. Adopted
//! instances stay watched across an upgrade, keep their own kill-timeout
//! and are restarted when they die; an instance whose config changed while
//! no tree ran restarts, one that died meanwhile starts once; a knot that
//! lost its tree before it could be found never runs; an adopted instance
//! without its config is never started from its placeholder.

use super::*;

/// Issue 5, "Done when" 3: after `kill -9` of the tree, a new tree adopts
/// the same 50 workloads (no duplicates: the same processes in the same
/// cgroups, none started) and still restarts an adopted instance when its
/// workload dies.
#[test]
fn kill9_then_new_tree_adopts_the_same_fifty_and_restarts_them_later() {
    let mut w = world!();
    w.sleepers("sleeper", 50);
    w.start_tree();
    let before = w.wait_running(50, START);
    let census0 = w.census();
    w.assert_census_matches(&census0, &before);

    w.kill9_tree();
    assert_eq!(w.census(), census0, "killing the tree killed workloads");
    for (name, i) in &before.inst {
        assert!(!exited(i.pid.unwrap()), "{name}: knot died with the tree");
    }

    let tree2 = w.start_tree();
    let after = w.wait_running(50, START);
    assert_eq!(after.tree_pid, tree2);
    assert_eq!(after.pids(), before.pids(), "not the same knots/workloads");
    for (name, i) in &after.inst {
        assert_eq!(i.restarts, 0, "{name} restarted");
        assert_eq!(i.hash, before.inst[name].hash, "{name}: config hash");
    }
    let census1 = w.census();
    assert_eq!(census1, census0, "the processes in the cgroups changed");
    w.assert_census_matches(&census1, &after);
    let knots = census1
        .values()
        .flatten()
        .filter(|p| ns_pid(**p) == Some(1))
        .count();
    assert_eq!(knots, 50, "knots in the cgroups");
    assert!(
        descendants(tree2).is_empty(),
        "the new tree started processes of its own: {:?}",
        descendants(tree2)
    );

    // An adopted instance (not the new tree's child) dies later: it is
    // noticed (pidfd), its exit status is read from the knot's exit-status
    // file (SIGTERM, 143: without the file the tree could only guess
    // SIGKILL), and it is restarted.
    let victim = "box/sleeper.7";
    let (old_knot, old_wl) = (
        before.inst[victim].pid.unwrap(),
        before.inst[victim].workload.unwrap(),
    );
    kill(old_wl, libc::SIGTERM);
    let ps = w.wait("the adopted instance to restart", STEP, |p| {
        p.all_running(50)
            && p.inst[victim].workload.is_some_and(|x| x != old_wl)
            && p.inst[victim].restarts == 1
    });
    let v = &ps.inst[victim];
    assert_ne!(v.pid, Some(old_knot));
    assert_eq!(v.last_exit["signal"], 15, "last_exit {}", v.last_exit);
    assert_eq!(v.last_exit["status"], 143, "last_exit {}", v.last_exit);
    assert_eq!(v.last_exit["failure"], true, "last_exit {}", v.last_exit);
    for (name, i) in &ps.inst {
        if name != victim {
            assert_eq!((i.pid, i.workload), before.pids()[name], "{name}");
            assert_eq!(i.restarts, 0, "{name}");
        }
    }
    let census2 = w.census();
    w.assert_census_matches(&census2, &ps);
    let leaf = victim.replacen('/', ":", 1);
    let mine: BTreeSet<i32> = descendants(tree2).into_iter().collect();
    assert_eq!(
        mine, census2[&leaf],
        "the new tree runs exactly the restart"
    );
    w.assert_tree_alive();
}

/// Crash safety: a fatal signal makes the tree re-execute itself (same pid)
/// and adopt its running instances; none restarts; and it keeps
/// supervising them afterwards.
#[test]
fn fatal_signal_reexecs_the_tree_and_keeps_workloads() {
    let mut w = world!();
    w.sleepers("sleeper", 4);
    let tree = w.start_tree();
    let before = w.wait_running(4, START);
    let state = w.set.p("run/state.json");
    for sig in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
    ] {
        let crashes = w.log_count("restarted after a crash");
        // The old image rewrites state.json only on a change, and nothing
        // changes: a new state.json comes from the new image.
        fs::remove_file(&state).expect("remove state.json");
        w.signal_tree(sig);
        let ps = w.wait(&format!("recovery from signal {sig}"), STEP, |p| {
            p.all_running(4) && w.log_count("restarted after a crash") > crashes
        });
        w.assert_tree_alive();
        assert_eq!(ps.tree_pid, tree, "signal {sig}: the tree's pid changed");
        assert_eq!(ps.pids(), before.pids(), "signal {sig}: workloads changed");
        assert!(ps.inst.values().all(|i| i.restarts == 0), "signal {sig}");
        let census = w.census();
        w.assert_census_matches(&census, &ps);
    }
    w.assert_second_tree_refused();
    // Still supervising: a workload that dies now is restarted.
    let victim = "box/sleeper.2";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("a restart after the crashes", STEP, |p| {
        p.all_running(4) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    assert_eq!(ps.inst[victim].restarts, 1);
    assert_eq!(ps.tree_pid, tree);
}

/// Adopted instances (watched by pidfd, not the tree's children) stay
/// watched across a later upgrade: the pidfds go through the hand-off.
#[test]
fn adopted_instances_stay_watched_across_an_upgrade() {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    w.start_tree();
    w.wait_running(3, START);
    let before = upg_lose_the_tree(&mut w, "kill9", 3);
    let ps = w.upgrade_to(1, 3);
    assert_eq!(ps.pids(), before.pids());
    let victim = "box/sleeper.1";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("the adopted instance to restart", STEP, |p| {
        p.all_running(3) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    assert_eq!(ps.inst[victim].restarts, 1);
    for n in ["box/sleeper.0", "box/sleeper.2"] {
        assert_eq!(ps.inst[n].workload, before.inst[n].workload);
    }
}

/// A config that changed while no tree ran: the new tree adopts every
/// instance, then restarts only those whose config hash differs.
#[test]
fn config_changed_while_no_tree_ran_restarts_only_that_entry() {
    let mut w = world!();
    w.sleepers("keep", 2);
    w.sleepers("change", 1);
    w.start_tree();
    let before = w.wait_running(3, START);
    w.kill9_tree();
    w.container(
        "change",
        &format!(
            "executable: /bin/sleep\narguments: ['100001']\nuser-id: {UID}\n\
             group-id: {UID}\nrestart-timeout: 0\nkill-timeout: 2\n"
        ),
    );
    w.start_tree();
    let n = "box/change.0";
    let ps = w.wait("the changed entry to restart", START, |p| {
        p.all_running(3) && p.inst[n].hash != before.inst[n].hash
    });
    assert_ne!(ps.inst[n].workload, before.inst[n].workload);
    assert!(
        exited(before.inst[n].workload.unwrap()),
        "old one still runs"
    );
    for k in ["box/keep.0", "box/keep.1"] {
        assert_eq!(ps.inst[k].workload, before.inst[k].workload, "{k}");
        assert_eq!(ps.inst[k].restarts, 0, "{k}");
    }
    let census = w.census();
    w.assert_census_matches(&census, &ps);
}

/// Make this test process a child subreaper (on) or not (off): orphans of
/// a killed tree then come to us, and we reap the ones we wait for, as
/// systemd or any init would.
fn upg_subreaper(on: bool) {
    // SAFETY: prctl(2) with integer arguments.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            libc::c_ulong::from(on),
            0,
            0,
            0,
        )
    };
    assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER");
}

/// An instance that died while no tree ran is started again, once; the
/// others are adopted; its death is reported from the knot's exit-status
/// file. The old tree's knots are reparented to this test process (a
/// subreaper while the tree dies), so the test decides: `reap` the dead
/// knot before the new tree starts (as systemd or any init would), or leave
/// it a zombie until the new tree has taken over (as under an init that
/// does not reap).
fn upg_died_while_no_tree_ran(reap: bool) {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    w.start_tree();
    let before = w.wait_running(3, START);
    upg_subreaper(true);
    w.kill9_tree();
    upg_subreaper(false);
    let victim = "box/sleeper.1";
    let knot = before.inst[victim].pid.unwrap();
    kill(before.inst[victim].workload.unwrap(), libc::SIGTERM);
    let reap_knot = || {
        let mut status = 0;
        // SAFETY: waitpid(2) for one process that is now our child.
        let r = unsafe { libc::waitpid(knot, &mut status, 0) };
        assert_eq!(
            r,
            knot,
            "reap the knot: {}",
            std::io::Error::last_os_error()
        );
    };
    if reap {
        reap_knot();
    } else {
        let t0 = Instant::now();
        while !exited(knot) {
            assert!(t0.elapsed() < STEP, "knot {knot} does not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let tree2 = w.start_tree();
    let ps = w.wait("the dead instance to run again", START, |p| {
        p.all_running(3) && p.inst[victim].workload != before.inst[victim].workload
    });
    if !reap {
        reap_knot();
    }
    for k in ["box/sleeper.0", "box/sleeper.2"] {
        assert_eq!(ps.inst[k].workload, before.inst[k].workload, "{k}");
        assert_eq!(ps.inst[k].restarts, 0, "{k}");
    }
    let census = w.census();
    w.assert_census_matches(&census, &ps);
    let leaf = victim.replacen('/', ":", 1);
    let mine: BTreeSet<i32> = descendants(tree2).into_iter().collect();
    assert_eq!(mine, census[&leaf], "the new tree started exactly one");
    let v = &ps.inst[victim];
    assert_eq!(
        v.last_exit["status"], 143,
        "{victim}: last_exit {}",
        v.last_exit
    );
    assert_eq!(
        v.last_exit["signal"], 15,
        "{victim}: last_exit {}",
        v.last_exit
    );
    assert_eq!(v.restarts, 1, "{victim}: the death counts as a restart");
}

#[test]
fn instance_that_died_while_no_tree_ran_is_started_once() {
    upg_died_while_no_tree_ran(false);
}

#[test]
fn instance_reaped_while_no_tree_ran_is_started_once_and_reported() {
    upg_died_while_no_tree_ran(true);
}

/// With cgroups off, adoption after `kill -9` relies on the knot files in
/// the state dirs alone: the same instances, none started twice, and an
/// adopted one is still restarted when it dies.
#[test]
fn kill9_without_cgroups_adopts_from_the_knot_files() {
    let mut w = world!();
    w.master_yaml("cgroup-name: null\n");
    w.sleepers("sleeper", 3);
    w.start_tree();
    let before = w.wait_running(3, START);
    w.remember(&before);
    w.kill9_tree();
    let tree2 = w.start_tree();
    let after = w.wait_running(3, START);
    assert_eq!(after.pids(), before.pids(), "not the same instances");
    assert!(after.inst.values().all(|i| i.restarts == 0));
    assert!(
        descendants(tree2).is_empty(),
        "the new tree started processes: {:?}",
        descendants(tree2)
    );
    let victim = "box/sleeper.0";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("the adopted instance to restart", STEP, |p| {
        p.all_running(3) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    w.remember(&ps);
    assert_eq!(ps.inst[victim].restarts, 1);
    let knot = fs::read_to_string(w.set.p("run/state/box/sleeper.0/knot")).expect("knot file");
    assert!(
        knot.starts_with(&format!("{} ", ps.inst[victim].pid.unwrap())),
        "knot file {knot:?}"
    );
}

/// A crash after an upgrade recovers just like a crash before one (the
/// crash path must not trip over anything the upgrade left behind, such
/// as the pid file lock).
#[test]
fn crash_after_an_upgrade_still_recovers() {
    let mut w = world!();
    w.sleepers("sleeper", 2);
    let tree = w.start_tree();
    let before = w.wait_running(2, START);
    w.upgrade_to(1, 2);
    fs::remove_file(w.set.p("run/state.json")).expect("remove state.json");
    let crashes = w.log_count("restarted after a crash");
    w.signal_tree(libc::SIGSEGV);
    let ps = w.wait("recovery after the crash", STEP, |p| {
        p.all_running(2) && w.log_count("restarted after a crash") > crashes
    });
    w.assert_tree_alive();
    assert_eq!(ps.tree_pid, tree);
    assert_eq!(ps.pids(), before.pids());
    w.assert_second_tree_refused();
}

/// Build tests/helpers/holdknot.c (a ptrace helper that holds the next
/// knot a tree clones) into the test's bin dir.
fn upg_holdknot(w: &World) -> Result<PathBuf, String> {
    let bin = w.set.p("bin/holdknot");
    common::build_helper("holdknot", &[], &bin)?;
    Ok(bin)
}

/// The next line holdknot prints, within `STEP`.
fn upg_line(lines: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    lines
        .recv_timeout(STEP)
        .unwrap_or_else(|_| panic!("holdknot: no `{what}` line"))
}

/// Issue 11, item 1: a knot that the tree has cloned but that no new tree
/// could find yet (no `knot` file, no cgroup leaf) when the tree is killed
/// must never run. The knot of a new instance is held right after its
/// clone (ptrace, tests/helpers/holdknot.c), the tree is killed with -9, a
/// new tree starts (and, finding nothing, starts that instance itself),
/// and then the held knot is let go. Before the fix it went on to set up a
/// second container of the same instance: two knots and two workloads in
/// one cgroup leaf, with `ps` showing nothing wrong. Now it ends at once
/// (the tree that started it is gone), and every leaf holds exactly the
/// knot and workload `ps` names.
#[test]
fn a_knot_that_lost_its_tree_before_it_was_findable_never_runs() {
    use std::io::{BufRead, BufReader, Write};
    let mut w = world!();
    let holdknot = upg_holdknot(&w);
    require!(holdknot.is_ok(), holdknot.clone().err().unwrap_or_default());
    w.sleepers("sleeper", 1);
    w.start_tree();
    w.wait_running(1, START);
    let mut holder = Command::new(holdknot.expect("checked above"))
        .arg(w.tree_pid().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start holdknot");
    let (tx, lines) = std::sync::mpsc::channel();
    let out = holder.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    assert_eq!(upg_line(&lines, "ready"), "ready");
    // A second instance: the tree clones its knot, which is held.
    w.sleepers("sleeper", 2);
    let out = upg_output(Command::new(&w.cli).args(["reload", "-c", &w.master()]));
    assert!(out.status.success(), "reload failed");
    let held: i32 = upg_line(&lines, "held PID")
        .strip_prefix("held ")
        .and_then(|p| p.parse().ok())
        .expect("held PID");
    let held_since = upg_start_time(held).expect("the held knot");
    w.strays.push((held, held_since));
    assert_eq!(ns_pid(held), Some(1), "held {held} is not a knot");

    w.kill9_tree();
    w.start_tree();
    let ps = w.wait_running(2, START);
    // Let the orphaned knot go, and give it time to build a container.
    let mut stdin = holder.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("tell holdknot");
    let said = upg_line(&lines, "released");
    assert!(said == "released" || said == "gone", "holdknot: {said}");
    let _ = holder.wait();
    let gone = || upg_start_time(held) != Some(held_since) || proc_state(held) == Some('Z');
    let t0 = Instant::now();
    while !gone() && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Exactly the knot and workload `ps` names in each leaf: a knot that
    // went on would show here as a second knot and workload.
    let after = w.wait_running(2, STEP);
    assert_eq!(after.pids(), ps.pids(), "instances changed");
    let census = w.census();
    w.assert_census_matches(&census, &after);
    assert!(gone(), "the orphaned knot {held} still runs");
    assert!(
        w.log_has("the tree that started this knot is gone"),
        "{}",
        w.log_tail(30)
    );
}

/// The state letter of /proc/PID/stat (`Z` for a zombie), if it exists.
fn proc_state(pid: i32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].trim_start().chars().next()
}

/// Issue 11, item 4: an adopted instance keeps the stop policy its config
/// gave it, also when no config names it any more. A workload that drains
/// for 7 s on SIGTERM, with `kill-timeout: 20`, runs; the tree is killed
/// with -9 and its entry removed; the new tree adopts the instance and
/// stops it. Before the fix the adopted instance had the default
/// kill-timeout (5 s) and was killed mid-drain; now it drains and exits.
#[test]
fn an_adopted_instance_is_stopped_with_its_own_kill_timeout() {
    let mut w = world!();
    w.container(
        "drainer",
        &format!(
            "executable: /bin/sh\narguments: [-c, \"trap 'sleep 7; echo drained; exit 0' TERM; \
             echo up; sleep 100000 & wait\"]\nuser-id: {UID}\ngroup-id: {UID}\n\
             kill-timeout: 20\n"
        ),
    );
    w.entry("drainer", 1, "");
    w.start_tree();
    let before = w.wait_running(1, START);
    w.remember(&before);
    w.kill9_tree();
    w.entries.clear();
    w.set.write("processes/box.yaml", "{}\n");
    let t0 = Instant::now();
    let tree = w.start_tree();
    w.wait("the adopted instance stopped", STEP, |p| {
        p.tree_pid == tree && p.inst.is_empty()
    });
    let log = fs::read_to_string(w.set.p("log/stdio/box.log")).unwrap_or_default();
    assert!(
        log.contains("drained"),
        "killed before it drained (after {:?}); stdio log:\n{log}\n{}",
        t0.elapsed(),
        w.log_tail(30)
    );
}

/// An adopted instance whose config could not be read when the new tree
/// started keeps running on a placeholder (no image, no executable, uid
/// 0). When its workload dies, the placeholder is never started: the
/// instance shows `failed` with the reason, and starts again once its
/// config loads.
#[test]
fn an_adopted_instance_without_its_config_is_never_started_from_a_placeholder() {
    let mut w = world!();
    w.sleepers("sleeper", 1);
    w.start_tree();
    let before = w.wait_running(1, START);
    let n = "box/sleeper.0";
    w.kill9_tree();
    // Its container config is broken while no tree runs.
    let cfg = w.set.p("images/bb/config/sleeper.yaml");
    let good = fs::read_to_string(&cfg).expect("config");
    fs::write(&cfg, "executable: [\n").expect("break it");
    w.start_tree();
    let adopted = w.wait_running(1, START);
    assert_eq!(adopted.pids(), before.pids(), "not adopted");
    kill(before.inst[n].workload.expect("workload"), libc::SIGKILL);
    let ps = w.wait("the instance to fail", STEP, |p| {
        p.inst[n].state == "failed"
    });
    std::thread::sleep(Duration::from_millis(1500));
    let later = w.ps().expect("ps");
    assert_eq!(later.inst[n].state, "failed", "{:?}", later.inst[n]);
    assert_eq!(later.inst[n].pid, None, "a knot runs: {:?}", later.inst[n]);
    assert!(
        w.log_has("its config could not be read"),
        "{}",
        w.log_tail(20)
    );
    drop(ps);
    // The config is fixed and the tree reloads: it runs again.
    fs::write(&cfg, good).expect("fix it");
    let out = upg_output(Command::new(&w.cli).args(["reload", "-c", &w.master()]));
    assert!(out.status.success());
    let ps = w.wait("the instance to run again", STEP, |p| p.all_running(1));
    assert_ne!(ps.inst[n].workload, before.inst[n].workload);
}
