//! The instance lifecycle as an explicit table: states × events, one named
//! handler per cell (STYLE.md 4). Pure: no syscalls, time comes in as an
//! argument, effects go out as `Action`s for the event loop to perform.
//!
//! ```text
//!              Execd        Ready     Exited          Refused       Deadline          Stop(then)   Retry
//! Starting     Running/†    Running‡  Backoff/Gone*   Failed/Gone*  Starting (KILL)** Stopping     -
//! Running      -            -         Backoff/Gone*   Failed/Gone*  (proven)§         Stopping     -
//! Stopping     -            -         Gone            Gone          Stopping (KILL)   Stopping***  -
//! Backoff      -            -         -               -             Starting (spawn)  Gone         -
//! Failed       -            -         -               -             -                 Gone         Starting (spawn)
//! ```
//! `Execd`: the knot reports that the workload's program runs. Without a
//! readiness probe that is ready: Running. (†) With one, the instance
//! stays Starting with `execd` set, the deadline becomes `ready-timeout`
//! from now, and the loop probes (`Action::Probe`); (‡) `Ready` (the probe
//! passed) then makes it Running; a `Ready` before `Execd` is ignored. A
//! probe deadline that passes kills the knot once (`Action::KillUnready`),
//! and its exit is a failed start, as for the setup deadline.
//! `Unhealthy` (the health check failed `health-failures` times in a row)
//! kills a Running instance once (`Action::KillUnhealthy`); its exit is a
//! failure and backs off; in any other state it is ignored.
//! (§) A rollout's replacement stays one while it runs for `min_ready`
//! (`Policy::min_ready`) after it became ready: that deadline passing
//! proves it, and the rollout may go on.
//! A stop says what follows it (`Then`): the instance is removed for good
//! (its state dir too), or a changed config starts in its place (a
//! rollout's step). `Gone` hands that on to the event loop
//! (`Action::Forget(then)`). (***) A second stop while stopping changes
//! nothing, except that a removal overrides a replacement (a shutdown, or
//! the entry removed, during a rollout).
//! A `replacement` (an instance a rollout started in place of an old one)
//! stays one until its workload runs: the rollout waits for it.
//! `Refused`: the knot exited without starting the workload for a reason
//! a retry with the same config and image cannot change
//! (`protocol::Failure::permanent`); the instance waits in Failed, with
//! the reason, until its config changes or a reload asks for a `Retry`.
//! (*) Gone when a stop was asked for while it ran; `Gone` means the
//! instance leaves the table (and is started again from the desired set
//! when it is still wanted, e.g. after a config change).
//! `Extend(d)` (`EXTEND_TIMEOUT_USEC=` on a `!Notify` socket) moves the
//! ready deadline of a Starting instance whose program runs to `d` from
//! now, when that is later; in any other cell it does nothing.
//! `Starved` (the watchdog of a Running instance bit: no `WATCHDOG=1`
//! within `watchdog-timeout`) kills the knot once
//! (`Action::KillStarved`); its exit is a failure and backs off. The
//! watchdog's own deadline is kept by the loop (`tree::sdnotify_loop`),
//! so an instance without one has no timer.
//! (**) The setup deadline (`Policy::setup_timeout` after the spawn): the
//! knot is killed once and the instance waits in Starting for its exit,
//! which is then an ordinary failed start (back-off). It never has two
//! knots: a knot the kernel cannot kill at once (stuck in uninterruptible
//! I/O) keeps its instance here until it dies, but no longer holds up
//! readiness (`Life::settling`).

use std::time::{Duration, Instant};

/// Where an instance is in its life (as `as_str` names it, in `ps` and
/// in the upgrade hand-off too).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A knot was started; its workload has not exec'd yet.
    Starting,
    /// The workload runs.
    Running,
    /// TERM was sent; KILL follows at the deadline.
    Stopping,
    /// Waiting before the next start (restart-timeout, crash back-off).
    Backoff,
    /// Cannot be started with its current config (see the reason).
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Backoff => "backoff",
            State::Failed => "failed",
        }
    }
}

/// Something that happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The knot reports that the workload's program runs (exec'd).
    Execd,
    /// The readiness probe passed.
    Ready,
    /// The health check failed `health-failures` times in a row.
    Unhealthy,
    /// The knot exited; `failure` per FEATURES.md (not TERM from the tree,
    /// not a normal exit code).
    Exited { failure: bool },
    /// The knot exited without starting the workload, and a retry with the
    /// same config and image would fail the same way.
    Refused,
    /// Try a failed instance again (a reload: the image may be fixed).
    Retry,
    /// The instance's deadline passed.
    Deadline,
    /// The service asks for more time to be ready (`EXTEND_TIMEOUT_USEC`).
    Extend(Duration),
    /// The watchdog bit: no `WATCHDOG=1` within `watchdog-timeout`.
    Starved,
    /// The tree wants it stopped (removed, changed, shutdown), and what
    /// follows.
    Stop(Then),
}

/// What the event loop must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a knot now.
    Spawn,
    /// Send SIGTERM to the knot.
    Term,
    /// Send SIGKILL to the knot (kill-timeout passed while stopping).
    Kill,
    /// Send SIGKILL to the knot: its setup outlived the setup deadline.
    /// The event loop records why (`ps`, the logs).
    KillSetup,
    /// Start probing the workload's readiness.
    Probe,
    /// Send SIGKILL to the knot: the workload was not ready within
    /// `ready-timeout`. The event loop records why.
    KillUnready,
    /// Send SIGKILL to the knot: its health check failed too often. The
    /// event loop records why; the exit is a failure (back-off).
    KillUnhealthy,
    /// Send SIGKILL to the knot: the running workload's watchdog bit.
    /// The event loop records why.
    KillStarved,
    /// The instance is gone: remove it (its cgroup leaf, and its state
    /// dir for `Then::Remove`), then start its replacement for
    /// `Then::Replace`.
    Forget(Then),
}

/// What follows a stop the tree asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Gone for good (removed from the config, or the tree stops): the
    /// state dir goes too.
    Remove,
    /// A changed config starts in its place, with the same state dir.
    Replace,
}

/// Restart policy numbers of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Minimum time between two starts.
    pub restart_timeout: Duration,
    /// TERM → KILL.
    pub kill_timeout: Duration,
    /// Longest back-off.
    pub max_backoff: Duration,
    /// A run at least this long resets the back-off.
    pub healthy_after: Duration,
    /// Spawn → the knot reports the workload runs (master.yaml's
    /// `setup-timeout`).
    pub setup_timeout: Duration,
    /// Exec → ready, when the service has a readiness probe
    /// (`ready-timeout`); `None`: ready at exec.
    pub ready_timeout: Option<Duration>,
    /// How long a rollout's replacement must stay ready before the
    /// rollout goes on (the process entry's `min-ready`).
    pub min_ready: Duration,
}

impl Policy {
    pub fn new(restart_timeout: Duration, kill_timeout: Duration) -> Policy {
        Policy {
            restart_timeout,
            kill_timeout,
            max_backoff: Duration::from_secs(60),
            healthy_after: restart_timeout.max(Duration::from_secs(1)),
            setup_timeout: crate::config::master::DEFAULT_SETUP_TIMEOUT,
            ready_timeout: None,
            min_ready: Duration::ZERO,
        }
    }
}

/// The part of an instance the table reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Life {
    pub state: State,
    /// When the current (or last) knot was started.
    pub started: Option<Instant>,
    /// The deadline of Starting (setup), Stopping (KILL) or Backoff (next
    /// start).
    pub deadline: Option<Instant>,
    /// Failures in a row (crash loop length).
    pub failures: u32,
    /// A stop was asked for, and what follows it: when the knot exits,
    /// the instance is gone.
    pub stop: Option<Then>,
    /// KILL was already sent.
    pub killed: bool,
    /// Starting, and the workload's program runs: what is left is its
    /// readiness probe.
    pub execd: bool,
    /// Started by a rollout in place of an old instance, and its workload
    /// has not run yet: the rollout waits for it (`plan`).
    pub replacement: bool,
}

impl Life {
    /// A new instance, to be started now.
    pub fn new() -> Life {
        Life {
            state: State::Backoff,
            started: None,
            deadline: None,
            failures: 0,
            stop: None,
            killed: false,
            execd: false,
            replacement: false,
        }
    }

    /// A rollout's new instance, to be started now.
    pub fn replacement() -> Life {
        Life {
            replacement: true,
            ..Life::new()
        }
    }

    /// Whether a stop was asked for.
    pub fn stop_requested(&self) -> bool {
        self.stop.is_some()
    }

    /// A stop to make way for a changed config.
    pub fn replacing(&self) -> bool {
        self.stop == Some(Then::Replace)
    }

    /// An instance that cannot start (bad config).
    pub fn failed() -> Life {
        Life {
            state: State::Failed,
            ..Life::new()
        }
    }

    /// An adopted instance that already runs.
    pub fn running(started: Instant) -> Life {
        Life {
            state: State::Running,
            started: Some(started),
            ..Life::new()
        }
    }

    /// Still on its way up: Starting and within its setup deadline. The
    /// tree tells systemd it is ready once no instance is settling, so a
    /// knot stuck in setup holds readiness up for setup-timeout at most.
    pub fn settling(&self) -> bool {
        self.state == State::Starting && !self.killed
    }
}

impl Default for Life {
    fn default() -> Self {
        Life::new()
    }
}

/// The back-off before the next start, after a death at `now`.
pub fn next_start(life: &Life, failure: bool, now: Instant, p: &Policy) -> (Instant, u32) {
    let earliest = life.started.map_or(now, |s| s + p.restart_timeout).max(now);
    // Only a workload that ran can have been healthy: a setup that failed
    // slowly (killed at its deadline) is a failure in a row like a quick one.
    let ran = match (life.state, life.started) {
        (State::Running, Some(s)) => now.saturating_duration_since(s),
        _ => Duration::ZERO,
    };
    if !failure || ran >= p.healthy_after {
        // A normal exit or a healthy run: only restart-timeout applies.
        return (earliest, 0);
    }
    let failures = life.failures.saturating_add(1);
    // restart-timeout doubles with each failure in a row, up to the cap; a
    // restart-timeout of 0 still backs off from 100 ms.
    let base = p.restart_timeout.max(Duration::from_millis(100));
    let shift = (failures - 1).min(20);
    let delay = base.saturating_mul(1u32 << shift).min(p.max_backoff);
    let at = life.started.map_or(now, |s| s + delay).max(earliest);
    (at, failures)
}

/// Apply `event` to `life`. Returns the actions to perform, in order.
pub fn step(life: &mut Life, event: Event, now: Instant, p: &Policy) -> Vec<Action> {
    use Event::*;
    use State::*;
    match (life.state, event) {
        (Starting, Execd) => execd(life, now, p),
        (Starting, Ready) if life.execd => ready(life, now, p),
        (Starting, Deadline) if life.execd => not_ready_in_time(life),
        (Starting, Deadline) => setup_expired(life),
        (Running, Deadline) if life.replacement => proven(life),
        (Running, Unhealthy) => unhealthy(life),
        (Starting, Extend(d)) if life.execd => extend(life, now, d),
        (Running, Starved) => starved(life),
        (Starting | Running, Exited { failure }) => died(life, failure, now, p),
        (Starting | Running, Refused) => refused(life),
        (Stopping, Refused) => stopped(life),
        (Failed, Retry) => start(life, now, p),
        (Starting | Running, Stop(then)) => stop_running(life, then, now, p),
        (Stopping, Stop(then)) => stop_again(life, then),
        (Stopping, Exited { .. }) => stopped(life),
        (Stopping, Deadline) => kill_after_timeout(life),
        (Backoff, Deadline) => start(life, now, p),
        (Backoff | Failed, Stop(then)) => forget_idle(life, then),
        // Every other cell is "nothing to do": a late Ready, a second Stop,
        // a Deadline that is no longer ours, an exit we already handled.
        _ => Vec::new(),
    }
}

fn execd(life: &mut Life, now: Instant, p: &Policy) -> Vec<Action> {
    match p.ready_timeout {
        None => ready(life, now, p),
        Some(t) => {
            life.execd = true;
            life.deadline = Some(now + t);
            vec![Action::Probe]
        }
    }
}

fn ready(life: &mut Life, now: Instant, p: &Policy) -> Vec<Action> {
    life.state = State::Running;
    life.execd = false;
    // The setup (or ready) deadline is met. A running instance has no
    // deadline, but a rollout's replacement: it must stay up `min_ready`
    // before the rollout goes on.
    if life.replacement && !p.min_ready.is_zero() {
        life.deadline = Some(now + p.min_ready);
    } else {
        life.deadline = None;
        life.replacement = false;
    }
    Vec::new()
}

fn not_ready_in_time(life: &mut Life) -> Vec<Action> {
    life.deadline = None;
    if life.killed {
        return Vec::new();
    }
    life.killed = true;
    vec![Action::KillUnready]
}

/// The health check failed too often: kill once; the exit backs off.
fn unhealthy(life: &mut Life) -> Vec<Action> {
    if life.killed {
        return Vec::new();
    }
    life.killed = true;
    vec![Action::KillUnhealthy]
}

/// More time to be ready: the deadline moves to `d` from now, never
/// earlier than it was.
fn extend(life: &mut Life, now: Instant, d: Duration) -> Vec<Action> {
    if !life.killed {
        life.deadline = life.deadline.max(Some(now + d));
    }
    Vec::new()
}

/// The watchdog bit: kill the knot once; its exit is a failure.
fn starved(life: &mut Life) -> Vec<Action> {
    if life.killed {
        return Vec::new();
    }
    life.killed = true;
    vec![Action::KillStarved]
}

/// A replacement that stayed up for `min_ready`: the rollout may go on.
fn proven(life: &mut Life) -> Vec<Action> {
    life.deadline = None;
    life.replacement = false;
    Vec::new()
}

fn setup_expired(life: &mut Life) -> Vec<Action> {
    life.deadline = None;
    if life.killed {
        return Vec::new();
    }
    life.killed = true;
    vec![Action::KillSetup]
}

fn died(life: &mut Life, failure: bool, now: Instant, p: &Policy) -> Vec<Action> {
    if life.stop.is_some() {
        return stopped(life);
    }
    let (at, failures) = next_start(life, failure, now, p);
    life.failures = failures;
    life.state = State::Backoff;
    life.deadline = Some(at);
    Vec::new()
}

fn refused(life: &mut Life) -> Vec<Action> {
    if life.stop.is_some() {
        return stopped(life);
    }
    life.state = State::Failed;
    life.deadline = None;
    life.failures = life.failures.saturating_add(1);
    Vec::new()
}

fn stop_running(life: &mut Life, then: Then, now: Instant, p: &Policy) -> Vec<Action> {
    life.state = State::Stopping;
    life.stop = Some(then);
    life.deadline = Some(now + p.kill_timeout);
    vec![Action::Term]
}

/// A stop while stopping: a removal overrides a replacement; nothing
/// else changes (the TERM was sent, the KILL deadline stands).
fn stop_again(life: &mut Life, then: Then) -> Vec<Action> {
    if then == Then::Remove {
        life.stop = Some(Then::Remove);
    }
    Vec::new()
}

fn stopped(life: &mut Life) -> Vec<Action> {
    life.deadline = None;
    vec![Action::Forget(life.stop.unwrap_or(Then::Remove))]
}

fn kill_after_timeout(life: &mut Life) -> Vec<Action> {
    life.deadline = None;
    if life.killed {
        return Vec::new();
    }
    life.killed = true;
    vec![Action::Kill]
}

fn start(life: &mut Life, now: Instant, p: &Policy) -> Vec<Action> {
    life.state = State::Starting;
    life.started = Some(now);
    life.deadline = Some(now + p.setup_timeout);
    life.killed = false;
    life.execd = false;
    vec![Action::Spawn]
}

fn forget_idle(life: &mut Life, then: Then) -> Vec<Action> {
    life.stop = Some(then);
    life.deadline = None;
    vec![Action::Forget(then)]
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "lifecycle_stop_tests.rs"]
mod stop_tests;

#[cfg(test)]
#[path = "lifecycle_ready_tests.rs"]
mod ready_tests;

#[cfg(test)]
#[path = "lifecycle_notify_tests.rs"]
mod notify_tests;

#[cfg(test)]
#[path = "lifecycle_backoff_tests.rs"]
mod backoff_tests;
