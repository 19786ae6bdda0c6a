//! The lifecycle table: what follows a stop (`Then`) and a rollout's
//! replacement, cell by cell.

use std::time::Instant;

use super::tests::{at, life, policy};
use super::*;

#[test]
fn a_stop_for_a_replacement_hands_the_replacement_on_when_the_knot_exits() {
    let t0 = Instant::now();
    let p = policy();
    for s in [State::Starting, State::Running] {
        let mut l = life(s, t0);
        assert_eq!(
            step(&mut l, Event::Stop(Then::Replace), t0, &p),
            [Action::Term]
        );
        assert_eq!((l.state, l.stop), (State::Stopping, Some(Then::Replace)));
        assert!(l.replacing() && l.stop_requested());
        for exit in [
            Event::Exited { failure: true },
            Event::Exited { failure: false },
            Event::Refused,
        ] {
            let mut m = l.clone();
            assert_eq!(
                step(&mut m, exit, at(t0, 5), &p),
                [Action::Forget(Then::Replace)],
                "{s:?} then {exit:?}"
            );
        }
    }
}

#[test]
fn an_idle_instance_is_replaced_or_removed_at_once() {
    let t0 = Instant::now();
    for s in [State::Backoff, State::Failed] {
        for then in [Then::Remove, Then::Replace] {
            let mut l = life(s, t0);
            l.deadline = Some(at(t0, 100));
            assert_eq!(
                step(&mut l, Event::Stop(then), t0, &policy()),
                [Action::Forget(then)],
                "{s:?}"
            );
            assert_eq!((l.stop, l.deadline), (Some(then), None));
        }
    }
}

#[test]
fn stopping_again_lets_a_removal_override_a_replacement_and_nothing_else() {
    let t0 = Instant::now();
    let p = policy();
    // Replacing, then removed (shutdown, or the entry left the config):
    // the removal wins, and the KILL deadline stands.
    let mut l = life(State::Running, t0);
    step(&mut l, Event::Stop(Then::Replace), t0, &p);
    let deadline = l.deadline;
    assert!(step(&mut l, Event::Stop(Then::Remove), at(t0, 1), &p).is_empty());
    assert_eq!((l.stop, l.deadline), (Some(Then::Remove), deadline));
    assert_eq!(
        step(&mut l, Event::Exited { failure: false }, at(t0, 2), &p),
        [Action::Forget(Then::Remove)]
    );
    // Removing, then a replacement asked: still removed.
    let mut l = life(State::Running, t0);
    step(&mut l, Event::Stop(Then::Remove), t0, &p);
    assert!(step(&mut l, Event::Stop(Then::Replace), at(t0, 1), &p).is_empty());
    assert_eq!(l.stop, Some(Then::Remove));
    assert_eq!(l.deadline, deadline);
}

#[test]
fn a_replacement_is_one_until_its_workload_runs() {
    let t0 = Instant::now();
    let p = policy();
    let mut l = Life::replacement();
    assert!(l.replacement);
    assert_eq!(step(&mut l, Event::Deadline, t0, &p), [Action::Spawn]);
    assert!(l.replacement, "still starting");
    // A failed start keeps it one: the rollout keeps waiting on it.
    let mut failed = l.clone();
    step(&mut failed, Event::Exited { failure: true }, at(t0, 10), &p);
    assert!(failed.replacement && failed.state == State::Backoff);
    let mut refused = l.clone();
    step(&mut refused, Event::Refused, at(t0, 10), &p);
    assert!(refused.replacement && refused.state == State::Failed);
    // Its workload runs: no longer.
    step(&mut l, Event::Execd, at(t0, 10), &p);
    assert!(!l.replacement && l.state == State::Running);
    assert!(!Life::new().replacement);
}

#[test]
fn what_a_stop_asked_for_reads_back() {
    let t0 = Instant::now();
    let l = Life::new();
    assert!(!l.stop_requested() && !l.replacing());
    let mut removed = life(State::Running, t0);
    step(&mut removed, Event::Stop(Then::Remove), t0, &policy());
    assert!(removed.stop_requested() && !removed.replacing());
    let mut replaced = life(State::Running, t0);
    step(&mut replaced, Event::Stop(Then::Replace), t0, &policy());
    assert!(replaced.stop_requested() && replaced.replacing());
}
