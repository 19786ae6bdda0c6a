//! The lifecycle table: how long a crashed instance waits (`next_start`),
//! from the first failure to the cap.

use std::time::{Duration, Instant};

use super::tests::{at, life, policy};
use super::*;

#[test]
fn crash_loop_backs_off_exponentially_to_the_cap() {
    let p = policy();
    let t0 = Instant::now();
    let mut l = Life::new();
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..10 {
        step(&mut l, Event::Deadline, now, &p);
        // dies 10 ms after each start
        let died = now + Duration::from_millis(10);
        step(&mut l, Event::Exited { failure: true }, died, &p);
        let next = l.deadline.unwrap();
        delays.push((next - now).as_millis());
        now = next;
    }
    assert_eq!(
        delays,
        [
            1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000
        ]
    );
}

#[test]
fn zero_restart_timeout_still_backs_off() {
    let p = Policy::new(Duration::ZERO, Duration::from_secs(1));
    let t0 = Instant::now();
    let mut l = life(State::Running, t0);
    step(&mut l, Event::Exited { failure: true }, t0, &p);
    assert_eq!(l.deadline, Some(at(t0, 100)));
    // a normal exit with restart-timeout 0 restarts at once
    let mut l = life(State::Running, t0);
    step(&mut l, Event::Exited { failure: false }, at(t0, 5), &p);
    assert_eq!(l.deadline, Some(at(t0, 5)));
}
