//! The lifecycle table: readiness (`Execd`, then `Ready` when the service
//! has a probe; the ready deadline) and a rollout's `min_ready`, cell by
//! cell.

use std::time::{Duration, Instant};

use super::tests::{at, life, policy};
use super::*;

fn probed() -> Policy {
    Policy {
        ready_timeout: Some(Duration::from_secs(3)),
        ..policy()
    }
}

#[test]
fn without_a_probe_execd_is_ready() {
    let t0 = Instant::now();
    let mut l = life(State::Starting, t0);
    l.deadline = Some(at(t0, 30_000));
    assert!(step(&mut l, Event::Execd, t0, &policy()).is_empty());
    assert_eq!(
        (l.state, l.deadline, l.execd),
        (State::Running, None, false)
    );
}

#[test]
fn with_a_probe_execd_waits_for_ready_within_ready_timeout() {
    let t0 = Instant::now();
    let p = probed();
    let mut l = life(State::Starting, t0);
    l.deadline = Some(at(t0, 30_000));
    assert_eq!(step(&mut l, Event::Execd, at(t0, 100), &p), [Action::Probe]);
    assert_eq!(l.state, State::Starting);
    assert!(l.execd && l.settling());
    // The setup deadline is replaced by ready-timeout from the exec.
    assert_eq!(l.deadline, Some(at(t0, 3_100)));
    // The probe passes: ready, no deadline.
    assert!(step(&mut l, Event::Ready, at(t0, 2_000), &p).is_empty());
    assert_eq!(
        (l.state, l.deadline, l.execd),
        (State::Running, None, false)
    );
}

#[test]
fn ready_before_execd_is_ignored() {
    let t0 = Instant::now();
    let mut l = life(State::Starting, t0);
    l.deadline = Some(at(t0, 30_000));
    assert!(step(&mut l, Event::Ready, t0, &probed()).is_empty());
    assert_eq!(
        (l.state, l.deadline),
        (State::Starting, Some(at(t0, 30_000)))
    );
    // Ready means nothing in any other state either.
    for s in [
        State::Running,
        State::Stopping,
        State::Backoff,
        State::Failed,
    ] {
        let mut l = life(s, t0);
        let before = l.clone();
        assert!(step(&mut l, Event::Ready, t0, &probed()).is_empty());
        assert_eq!(l, before, "{s:?}");
    }
}

#[test]
fn not_ready_in_time_kills_once_and_the_exit_is_a_failure() {
    let t0 = Instant::now();
    let p = probed();
    let mut l = Life::new();
    step(&mut l, Event::Deadline, t0, &p);
    step(&mut l, Event::Execd, at(t0, 10), &p);
    assert_eq!(
        step(&mut l, Event::Deadline, at(t0, 3_010), &p),
        [Action::KillUnready]
    );
    assert!(l.killed && !l.settling() && l.state == State::Starting);
    // Once only.
    assert!(step(&mut l, Event::Deadline, at(t0, 3_020), &p).is_empty());
    // A Ready after the kill was decided is too late: the knot dies.
    step(&mut l, Event::Exited { failure: true }, at(t0, 3_030), &p);
    assert_eq!((l.state, l.failures), (State::Backoff, 1));
    // The next start waits for its exec again.
    step(&mut l, Event::Deadline, at(t0, 10_000), &p);
    assert!(!l.execd && !l.killed && l.state == State::Starting);
}

#[test]
fn the_setup_deadline_still_applies_before_the_exec() {
    let t0 = Instant::now();
    let mut l = Life::new();
    step(&mut l, Event::Deadline, t0, &probed());
    assert_eq!(
        step(&mut l, Event::Deadline, at(t0, 30_000), &probed()),
        [Action::KillSetup]
    );
}

#[test]
fn a_replacement_is_proven_after_min_ready() {
    let t0 = Instant::now();
    let p = Policy {
        min_ready: Duration::from_secs(2),
        ..probed()
    };
    let mut l = Life::replacement();
    step(&mut l, Event::Deadline, t0, &p);
    step(&mut l, Event::Execd, at(t0, 10), &p);
    step(&mut l, Event::Ready, at(t0, 500), &p);
    assert_eq!(l.state, State::Running);
    assert!(l.replacement, "not proven yet");
    assert_eq!(l.deadline, Some(at(t0, 2_500)));
    // Dying within min-ready: still a replacement (its rollout stops).
    let mut died = l.clone();
    step(
        &mut died,
        Event::Exited { failure: true },
        at(t0, 1_000),
        &p,
    );
    assert!(died.replacement && died.state == State::Backoff);
    // Staying up: proven.
    assert!(step(&mut l, Event::Deadline, at(t0, 2_500), &p).is_empty());
    assert!(!l.replacement && l.deadline.is_none() && l.state == State::Running);
    // A Deadline of a running instance that is not a replacement does
    // nothing.
    let mut r = life(State::Running, t0);
    r.deadline = Some(at(t0, 5));
    let before = r.clone();
    assert!(step(&mut r, Event::Deadline, at(t0, 5), &p).is_empty());
    assert_eq!(r, before, "a Deadline is no news to a running instance");
}

#[test]
fn min_ready_zero_proves_at_ready_and_non_replacements_have_no_deadline() {
    let t0 = Instant::now();
    let p = probed();
    let mut l = Life::replacement();
    step(&mut l, Event::Deadline, t0, &p);
    step(&mut l, Event::Execd, t0, &p);
    step(&mut l, Event::Ready, t0, &p);
    assert!(!l.replacement && l.deadline.is_none());
    let p = Policy {
        min_ready: Duration::from_secs(2),
        ..policy()
    };
    let mut l = Life::new();
    step(&mut l, Event::Deadline, t0, &p);
    step(&mut l, Event::Execd, t0, &p);
    assert!(l.state == State::Running && l.deadline.is_none());
}

#[test]
fn unhealthy_kills_a_running_instance_once_and_its_exit_backs_off() {
    let t0 = Instant::now();
    let p = policy();
    let mut l = life(State::Running, t0);
    assert_eq!(
        step(&mut l, Event::Unhealthy, at(t0, 100), &p),
        [Action::KillUnhealthy]
    );
    assert!(l.killed && l.state == State::Running);
    assert!(step(&mut l, Event::Unhealthy, at(t0, 200), &p).is_empty());
    step(&mut l, Event::Exited { failure: true }, at(t0, 300), &p);
    assert_eq!((l.state, l.failures), (State::Backoff, 1));
    // Only a running instance has a health check.
    for s in [
        State::Starting,
        State::Stopping,
        State::Backoff,
        State::Failed,
    ] {
        let mut l = life(s, t0);
        let before = l.clone();
        assert!(step(&mut l, Event::Unhealthy, t0, &p).is_empty(), "{s:?}");
        assert_eq!(l, before, "{s:?}");
    }
}
