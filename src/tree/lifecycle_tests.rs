use super::*;

pub(super) fn policy() -> Policy {
    Policy::new(Duration::from_secs(1), Duration::from_secs(5))
}

pub(super) fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

pub(super) fn life(state: State, t0: Instant) -> Life {
    Life {
        state,
        started: Some(t0),
        ..Life::new()
    }
}

const ALL_STATES: [State; 5] = [
    State::Starting,
    State::Running,
    State::Stopping,
    State::Backoff,
    State::Failed,
];

fn all_events() -> [Event; 12] {
    [
        Event::Execd,
        Event::Ready,
        Event::Unhealthy,
        Event::Starved,
        Event::Extend(Duration::from_secs(1)),
        Event::Exited { failure: true },
        Event::Exited { failure: false },
        Event::Refused,
        Event::Deadline,
        Event::Stop(Then::Remove),
        Event::Stop(Then::Replace),
        Event::Retry,
    ]
}

// ---- one test per cell of the table ----

#[test]
fn starting_ready_runs() {
    let t0 = Instant::now();
    let mut l = life(State::Starting, t0);
    l.deadline = Some(at(t0, 30_000));
    assert!(step(&mut l, Event::Execd, t0, &policy()).is_empty());
    assert_eq!(l.state, State::Running);
    // The setup deadline is met: a running instance has no deadline (a
    // stale one would wake the tree for nothing, again and again).
    assert_eq!(l.deadline, None);
}

#[test]
fn starting_deadline_kills_once_and_the_exit_backs_off() {
    let t0 = Instant::now();
    let p = policy();
    let mut l = Life::new();
    step(&mut l, Event::Deadline, t0, &p);
    let expiry = l.deadline.expect("a setup deadline");
    assert!(l.settling());
    assert_eq!(
        step(&mut l, Event::Deadline, expiry, &p),
        [Action::KillSetup]
    );
    // Still Starting: the knot is not gone until its exit is seen, and an
    // instance never has two knots.
    assert_eq!(
        (l.state, l.killed, l.deadline),
        (State::Starting, true, None)
    );
    assert!(!l.settling());
    // A second Deadline (none is set, but one may be pending) does nothing.
    assert!(step(&mut l, Event::Deadline, at(expiry, 1), &p).is_empty());
    assert_eq!(l.state, State::Starting);
    // The exit of the killed knot is a failed start: back-off.
    let died = at(expiry, 2);
    assert!(step(&mut l, Event::Exited { failure: true }, died, &p).is_empty());
    assert_eq!((l.state, l.failures), (State::Backoff, 1));
    // 1 s × 2^0 after the start passed long ago: the next start is due.
    assert_eq!(l.deadline, Some(died));
    // The next start has a fresh deadline and may be killed again.
    let again = l.deadline.expect("next start");
    assert_eq!(step(&mut l, Event::Deadline, again, &p), [Action::Spawn]);
    assert_eq!(
        (l.killed, l.deadline),
        (false, Some(again + p.setup_timeout))
    );
    assert!(l.settling());
}

#[test]
fn starting_killed_then_stop_sends_no_second_kill() {
    let t0 = Instant::now();
    let p = policy();
    let mut l = life(State::Starting, t0);
    step(&mut l, Event::Deadline, at(t0, 30_000), &p);
    assert_eq!(
        step(&mut l, Event::Stop(Then::Remove), at(t0, 30_001), &p),
        [Action::Term]
    );
    assert_eq!(l.state, State::Stopping);
    assert!(step(&mut l, Event::Deadline, at(t0, 40_000), &p).is_empty());
    assert_eq!(
        step(&mut l, Event::Exited { failure: false }, at(t0, 40_001), &p),
        [Action::Forget(Then::Remove)]
    );
}

#[test]
fn setup_deadline_comes_from_the_policy() {
    let t0 = Instant::now();
    let mut p = policy();
    assert_eq!(
        p.setup_timeout,
        crate::config::master::DEFAULT_SETUP_TIMEOUT
    );
    p.setup_timeout = Duration::from_millis(1500);
    let mut l = Life::new();
    step(&mut l, Event::Deadline, t0, &p);
    assert_eq!(l.deadline, Some(at(t0, 1500)));
}

#[test]
fn only_a_starting_instance_within_its_deadline_is_settling() {
    let t0 = Instant::now();
    for s in ALL_STATES {
        let mut l = life(s, t0);
        assert_eq!(l.settling(), s == State::Starting, "{s:?}");
        l.killed = true;
        assert!(!l.settling(), "{s:?} killed");
    }
}

#[test]
fn starting_exited_backs_off() {
    let t0 = Instant::now();
    let mut l = life(State::Starting, t0);
    assert!(
        step(
            &mut l,
            Event::Exited { failure: true },
            at(t0, 10),
            &policy()
        )
        .is_empty()
    );
    assert_eq!(l.state, State::Backoff);
    assert_eq!(l.deadline, Some(at(t0, 1000)));
    assert_eq!(l.failures, 1);
}

#[test]
fn starting_exited_after_a_long_setup_is_no_healthy_run() {
    // A knot that took 20 s to fail its setup never ran its workload: the
    // back-off grows as for a quick failure, it is not reset.
    let t0 = Instant::now();
    let mut l = life(State::Starting, t0);
    l.failures = 3;
    step(
        &mut l,
        Event::Exited { failure: true },
        at(t0, 20_000),
        &policy(),
    );
    assert_eq!((l.state, l.failures), (State::Backoff, 4));
    // 1 s × 2^3 from the start is already past: no earlier than now.
    assert_eq!(l.deadline, Some(at(t0, 20_000)));
}

#[test]
fn starting_stop_terms() {
    let t0 = Instant::now();
    let mut l = life(State::Starting, t0);
    assert_eq!(
        step(&mut l, Event::Stop(Then::Remove), t0, &policy()),
        [Action::Term]
    );
    assert_eq!(l.state, State::Stopping);
    assert_eq!(l.deadline, Some(at(t0, 5000)));
}

#[test]
fn running_exited_after_healthy_run_restarts_at_once() {
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    l.failures = 5;
    step(
        &mut l,
        Event::Exited { failure: true },
        at(t0, 60_000),
        &policy(),
    );
    assert_eq!(l.state, State::Backoff);
    assert_eq!(l.deadline, Some(at(t0, 60_000)));
    assert_eq!(l.failures, 0);
}

#[test]
fn running_normal_exit_is_not_a_failure() {
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    l.failures = 3;
    step(
        &mut l,
        Event::Exited { failure: false },
        at(t0, 100),
        &policy(),
    );
    assert_eq!(l.failures, 0);
    // still not sooner than restart-timeout after the previous start
    assert_eq!(l.deadline, Some(at(t0, 1000)));
}

#[test]
fn running_stop_terms() {
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    assert_eq!(
        step(&mut l, Event::Stop(Then::Remove), at(t0, 7), &policy()),
        [Action::Term]
    );
    assert_eq!((l.state, l.stop), (State::Stopping, Some(Then::Remove)));
}

#[test]
fn running_ready_is_ignored() {
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    assert!(step(&mut l, Event::Execd, t0, &policy()).is_empty());
    assert_eq!(l.state, State::Running);
}

#[test]
fn stopping_exited_forgets() {
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    step(&mut l, Event::Stop(Then::Remove), t0, &policy());
    assert_eq!(
        step(
            &mut l,
            Event::Exited { failure: true },
            at(t0, 1),
            &policy()
        ),
        [Action::Forget(Then::Remove)]
    );
}

#[test]
fn stopping_deadline_kills_once() {
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    step(&mut l, Event::Stop(Then::Remove), t0, &policy());
    assert_eq!(
        step(&mut l, Event::Deadline, at(t0, 5000), &policy()),
        [Action::Kill]
    );
    assert_eq!(l.state, State::Stopping);
    assert!(step(&mut l, Event::Deadline, at(t0, 6000), &policy()).is_empty());
    assert_eq!(
        step(
            &mut l,
            Event::Exited { failure: false },
            at(t0, 6001),
            &policy()
        ),
        [Action::Forget(Then::Remove)]
    );
}

#[test]
fn stopping_stop_and_ready_are_ignored() {
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    step(&mut l, Event::Stop(Then::Remove), t0, &policy());
    let before = l.clone();
    assert!(step(&mut l, Event::Stop(Then::Remove), at(t0, 1), &policy()).is_empty());
    assert!(step(&mut l, Event::Execd, at(t0, 1), &policy()).is_empty());
    assert_eq!(l, before);
}

#[test]
fn backoff_deadline_spawns() {
    let t0 = Instant::now();
    let mut l = Life::new();
    l.killed = true;
    assert_eq!(
        step(&mut l, Event::Deadline, t0, &policy()),
        [Action::Spawn]
    );
    assert_eq!((l.state, l.started), (State::Starting, Some(t0)));
    // Entering Starting sets the setup deadline and a fresh kill flag.
    assert_eq!(l.deadline, Some(t0 + policy().setup_timeout));
    assert!(!l.killed);
}

#[test]
fn backoff_stop_forgets() {
    let mut l = Life::new();
    assert_eq!(
        step(&mut l, Event::Stop(Then::Remove), Instant::now(), &policy()),
        [Action::Forget(Then::Remove)]
    );
}

#[test]
fn failed_stop_forgets_and_nothing_else_moves_it() {
    let t0 = Instant::now();
    for ev in [
        Event::Execd,
        Event::Ready,
        Event::Unhealthy,
        Event::Exited { failure: true },
        Event::Deadline,
    ] {
        let mut l = Life::failed();
        assert!(step(&mut l, ev, t0, &policy()).is_empty());
        assert_eq!(l.state, State::Failed);
    }
    let mut l = Life::failed();
    assert_eq!(
        step(&mut l, Event::Stop(Then::Remove), t0, &policy()),
        [Action::Forget(Then::Remove)]
    );
}

#[test]
fn exit_after_stop_request_is_gone_even_when_not_stopping() {
    // Stop asked while Starting, then the knot died on its own first.
    let t0 = Instant::now();
    let mut l = life(State::Starting, t0);
    l.stop = Some(Then::Remove);
    assert_eq!(
        step(&mut l, Event::Exited { failure: true }, t0, &policy()),
        [Action::Forget(Then::Remove)]
    );
}

#[test]
fn every_cell_is_total() {
    // No (state, event) pair panics, and only the documented cells act.
    let t0 = Instant::now();
    for s in ALL_STATES {
        for ev in all_events() {
            let mut l = life(s, t0);
            let acts = step(&mut l, ev, at(t0, 20_000), &policy());
            let expected_nonempty = matches!(
                (s, ev),
                (State::Starting | State::Running, Event::Stop(_))
                    | (State::Starting, Event::Deadline)
                    | (State::Stopping, Event::Exited { .. } | Event::Refused)
                    | (State::Failed, Event::Retry)
                    | (State::Running, Event::Unhealthy)
                    | (State::Running, Event::Starved)
                    | (State::Stopping, Event::Deadline)
                    | (State::Backoff, Event::Deadline)
                    | (State::Backoff | State::Failed, Event::Stop(_))
            );
            assert_eq!(
                !acts.is_empty(),
                expected_nonempty,
                "{s:?} x {ev:?} -> {acts:?}"
            );
        }
    }
}

#[test]
fn starting_refused_fails_and_waits_for_a_retry() {
    let t0 = Instant::now();
    let p = policy();
    let mut l = life(State::Starting, t0);
    assert!(step(&mut l, Event::Refused, at(t0, 5), &p).is_empty());
    assert_eq!((l.state, l.deadline, l.failures), (State::Failed, None, 1));
    // No deadline: it is never started again by itself.
    assert!(step(&mut l, Event::Deadline, at(t0, 60_000), &p).is_empty());
    assert_eq!(l.state, State::Failed);
    // A retry starts it at once, with a setup deadline.
    assert_eq!(
        step(&mut l, Event::Retry, at(t0, 70_000), &p),
        [Action::Spawn]
    );
    assert_eq!(l.state, State::Starting);
    assert_eq!(l.deadline, Some(at(t0, 70_000) + p.setup_timeout));
}

#[test]
fn running_refused_fails_too() {
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    assert!(step(&mut l, Event::Refused, at(t0, 5), &policy()).is_empty());
    assert_eq!(l.state, State::Failed);
}

#[test]
fn refused_while_a_stop_was_asked_for_is_gone() {
    let t0 = Instant::now();
    let p = policy();
    let mut l = life(State::Starting, t0);
    step(&mut l, Event::Stop(Then::Remove), t0, &p);
    assert_eq!(
        step(&mut l, Event::Refused, at(t0, 1), &p),
        [Action::Forget(Then::Remove)]
    );
}

#[test]
fn retry_of_anything_but_failed_does_nothing() {
    let t0 = Instant::now();
    for s in [
        State::Starting,
        State::Running,
        State::Stopping,
        State::Backoff,
    ] {
        let mut l = life(s, t0);
        let before = l.clone();
        assert!(step(&mut l, Event::Retry, at(t0, 1), &policy()).is_empty());
        assert_eq!(l, before, "{s:?}");
    }
}

/// The names are what `cairn ps` shows and what an upgrade hands to the
/// next binary (`handoff::state_from` reads them back).
#[test]
fn state_names_are_pinned() {
    let names: Vec<&str> = ALL_STATES.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        ["starting", "running", "stopping", "backoff", "failed"]
    );
}

/// An adopted instance (recovery) runs since the given time: a stop terms
/// it, and an early crash counts from that start.
#[test]
fn an_adopted_instance_runs() {
    let t0 = Instant::now();
    let p = policy();
    let l = Life::running(t0);
    assert_eq!(l.state, State::Running);
    assert_eq!(l.started, Some(t0));
    assert_eq!(l.deadline, None);
    assert_eq!(l.failures, 0);
    assert!(l.stop.is_none() && !l.killed && !l.settling());
    // It crashes 200 ms after its start: the next start waits for
    // restart-timeout (1 s) from that start.
    let mut crashed = l.clone();
    assert!(
        step(
            &mut crashed,
            Event::Exited { failure: true },
            at(t0, 200),
            &p
        )
        .is_empty()
    );
    assert_eq!(crashed.state, State::Backoff);
    assert_eq!(crashed.deadline, Some(at(t0, 1000)));
    let mut stopped = l;
    assert_eq!(
        step(&mut stopped, Event::Stop(Then::Remove), at(t0, 10), &p),
        [Action::Term]
    );
    assert_eq!(stopped.state, State::Stopping);
}
