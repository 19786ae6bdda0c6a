//! Never two, never none: what a fault must not cost (issue 11). Each test
//! makes its fault happen on purpose, the same way every time.

use super::*;

/// Ask the running tree to reload and wait until it has.
fn reload_and_wait(fx: &Fx) -> Value {
    let before = reloads(&fx.ps());
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    fx.wait_ps("the reload", |ps| reloads(ps) > before)
}

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
    for (what, text) in [("emptied", ""), ("cut off", cut), ("comments only", "# wip\n")] {
        fs::write(&file, text).expect("write");
        let ps = reload_and_wait(&fx);
        assert_eq!(snapshot(&ps), snapshot(&ps0), "{what}: something stopped or restarted");
        assert!(all_running(&ps, &refs(&all)), "{what}: {ps}");
        let errors = ps["config_errors"].to_string();
        assert!(errors.contains(&fx.set.s("processes/box.yaml")), "{what}: {errors}");
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
    assert!(ps["config_errors"].as_array().expect("array").is_empty(), "{ps}");
    fs::write(&file, "{}\n").expect("write");
    reload_and_wait(&fx);
    fx.wait_ps("every instance stopped", |ps| insts(ps).is_empty());
}
