//! The lifecycle table: what a `!Notify` service may say besides
//! `READY=1` (`Extend`, from `EXTEND_TIMEOUT_USEC=`) and its watchdog
//! (`Starved`), cell by cell.

use std::time::{Duration, Instant};

use super::tests::{at, life, policy};
use super::*;

fn all_states() -> [State; 5] {
    [
        State::Starting,
        State::Running,
        State::Stopping,
        State::Backoff,
        State::Failed,
    ]
}

#[test]
fn extend_moves_the_ready_deadline_later_only() {
    let t0 = Instant::now();
    let p = policy();
    let mut l = life(State::Starting, t0);
    l.execd = true;
    l.deadline = Some(at(t0, 3_000));
    let ext = |ms| Event::Extend(Duration::from_millis(ms));
    assert!(step(&mut l, ext(10_000), at(t0, 1_000), &p).is_empty());
    assert_eq!(
        (l.state, l.deadline),
        (State::Starting, Some(at(t0, 11_000)))
    );
    // Shorter than what is left: the deadline stays.
    assert!(step(&mut l, ext(1_000), at(t0, 2_000), &p).is_empty());
    assert_eq!(l.deadline, Some(at(t0, 11_000)));
    // Once the deadline killed it, no more time.
    l.killed = true;
    l.deadline = None;
    assert!(step(&mut l, ext(10_000), at(t0, 12_000), &p).is_empty());
    assert_eq!(l.deadline, None);
}

#[test]
fn extend_does_nothing_in_any_other_cell() {
    let t0 = Instant::now();
    let p = policy();
    for s in all_states() {
        // Starting before the exec: the setup deadline is master.yaml's.
        let mut l = life(s, t0);
        l.deadline = Some(at(t0, 5_000));
        let before = l.clone();
        let a = step(&mut l, Event::Extend(Duration::from_secs(60)), t0, &p);
        assert!(a.is_empty(), "{s:?}");
        assert_eq!(l, before, "{s:?}");
    }
}

#[test]
fn a_starved_running_instance_is_killed_once() {
    let t0 = Instant::now();
    let p = policy();
    let mut l = life(State::Running, t0);
    assert_eq!(
        step(&mut l, Event::Starved, at(t0, 500), &p),
        [Action::KillStarved]
    );
    assert_eq!((l.state, l.killed), (State::Running, true));
    assert!(step(&mut l, Event::Starved, at(t0, 550), &p).is_empty());
    // Its exit is a failure: back-off, and the next start is not killed.
    assert!(step(&mut l, Event::Exited { failure: true }, at(t0, 600), &p).is_empty());
    assert_eq!((l.state, l.failures), (State::Backoff, 1));
    let d = l.deadline.expect("next start");
    assert_eq!(step(&mut l, Event::Deadline, d, &p), [Action::Spawn]);
    assert!(!l.killed);
}

#[test]
fn starved_does_nothing_unless_running() {
    let t0 = Instant::now();
    let p = policy();
    for s in all_states().into_iter().filter(|s| *s != State::Running) {
        let mut l = life(s, t0);
        let before = l.clone();
        assert!(step(&mut l, Event::Starved, t0, &p).is_empty(), "{s:?}");
        assert_eq!(l, before, "{s:?}");
    }
}
