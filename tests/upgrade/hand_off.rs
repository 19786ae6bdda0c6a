//! The hand-off between the old image and the new one: a hand-off the new
//! binary cannot read, or of a version it does not know, is refused whole
//! and the tree falls back to adoption, as after a `kill -9`.

use super::*;

/// The hand-off is JSON whose only "version" is its field names. A new
/// binary that cannot read the old image's hand-off (here: a copy whose
/// field `started_unix_ms` is spelled differently) must fall back to
/// recovery, adopting the same instances, instead of giving up.
#[test]
fn unreadable_hand_off_falls_back_to_adoption() {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    let tree = w.start_tree();
    let before = w.wait_running(3, START);
    let staged = w.set.p("bin/.cairn.new");
    let n = upg_patched_copy(&w.exe, &staged, b"started_unix_ms", b"started_unix_mz");
    assert!(n > 0, "hand-off field name not found in the binary");
    fs::rename(&staged, &w.exe).expect("rename over the installed path");
    fs::remove_file(w.set.p("run/state.json")).expect("remove state.json");
    w.signal_tree(libc::SIGQUIT);
    let ps = w.wait("the new image to supervise again", STEP, |p| {
        p.all_running(3) && w.log_has("recovering from the cgroups")
    });
    w.assert_tree_alive();
    assert_eq!(ps.tree_pid, tree);
    assert_eq!(ps.pids(), before.pids(), "instances changed");
    assert!(ps.inst.values().all(|i| i.restarts == 0));
    let census = w.census();
    w.assert_census_matches(&census, &ps);
    w.assert_second_tree_refused();
}

/// A hand-off this cairn cannot read (a newer cairn's, after a downgrade)
/// is refused whole: the tree adopts the running instances from the
/// cgroups and state dirs, as after a kill -9, instead of restoring what it
/// half understands. (Before hand-offs had versions, this one was read as
/// far as its keys went: the tree then took fd 9, long closed, for its pid
/// file lock, and exited, leaving every workload unsupervised.)
#[test]
fn a_hand_off_of_an_unknown_version_falls_back_to_adoption() {
    let mut w = world!();
    w.sleepers("sleeper", 3);
    w.start_tree();
    let before = w.wait_running(3, START);
    let census0 = w.census();
    w.kill9_tree();
    let forged = w.set.p("handoff.json");
    fs::write(
        &forged,
        "{\"version\":99,\"lock_fd\":9,\"started_unix_ms\":0,\"upgrades\":1,\
         \"reloads\":0,\"began_ns\":0,\"follow\":0,\"sockets\":[],\"counters\":[],\
         \"unknown_children\":0,\"shutting_down\":false,\"instances_by_sandbox\":{}}\n",
    )
    .expect("write the hand-off");
    w.forged_handoff = Some(forged);
    let tree2 = w.start_tree();
    let after = w.wait_running(3, START);
    assert_eq!(after.tree_pid, tree2);
    assert_eq!(after.pids(), before.pids(), "not the same knots/workloads");
    for (name, i) in &after.inst {
        assert_eq!(i.restarts, 0, "{name} restarted");
    }
    assert_eq!(w.census(), census0, "the processes in the cgroups changed");
    assert!(
        w.log_has("hand-off: version 99 is not one this cairn reads"),
        "{}",
        w.log_tail(30)
    );
    assert!(w.log_has("recovering from the cgroups and state dirs instead"));
}
