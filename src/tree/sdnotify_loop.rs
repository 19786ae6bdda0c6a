//! The event loop's side of `ready: !Notify` (see `tree::sdnotify`): the
//! socket of each start, reading datagrams and checking their senders,
//! `READY=1` to the lifecycle table, `STATUS=`, `STOPPING=1`,
//! `EXTEND_TIMEOUT_USEC=`, and the watchdog.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::spec::{InstanceSpec, Ready};
use crate::sys::{dgram, proc, process};

use super::lifecycle::{Event, State};
use super::probe::KIND_NOTIFY;
use super::sdnotify::{self, DATAGRAM_MAX, NotifySock, Verdict};
use super::supervisor::Tree;

/// Datagrams read per wakeup at most: a chatty (or hostile) instance
/// cannot hold the loop; the rest waits for the next turn.
const BATCH: usize = 64;

impl Tree {
    /// For a `!Notify` instance's start: its new socket (bound, in the
    /// poller) and an `O_PATH` fd of the socket file for the knot to bind
    /// into the container. `None` for other instances.
    pub(super) fn bind_notify(
        &mut self,
        name: &str,
    ) -> Result<Option<(NotifySock, OwnedFd)>, String> {
        let Some(i) = self.instances.get(name) else {
            return Ok(None);
        };
        if i.spec.service.ready != Some(Ready::Notify) {
            return Ok(None);
        }
        let token = Self::token_of(i.token, KIND_NOTIFY);
        let dir = self
            .io
            .runtime
            .sub(Path::new(sdnotify::DIR), Some(0o700))
            .map_err(|e| format!("notify socket dir: {e}"))?
            .ok_or_else(|| "notify socket dir: not created".to_string())?;
        let file = sdnotify::file_name(name);
        let b = dgram::bind_notify(dir.fd(), &file, self.io.proc_pid)
            .map_err(|e| format!("notify socket {}/{file}: {e}", dir.path().display()))?;
        self.io
            .poller
            .add(b.socket.as_fd(), token)
            .map_err(|e| format!("notify socket: {e}"))?;
        Ok(Some((NotifySock::new(b.socket), b.file)))
    }

    /// The instance is removed: its socket file goes too.
    pub(super) fn unlink_notify(&self, spec: &InstanceSpec) {
        if spec.service.ready != Some(Ready::Notify) {
            return;
        }
        let file = sdnotify::file_name(&spec.name);
        if let Ok(Some(dir)) = self.io.runtime.sub(Path::new(sdnotify::DIR), None)
            && let Err(e) = dgram::unlink_notify(dir.fd(), &file)
        {
            log::warn!("{}: {e}", spec.name);
        }
    }

    /// The notify socket of `name` is readable.
    pub(super) fn notify_event(&mut self, name: &str) {
        let mut buf = vec![0u8; DATAGRAM_MAX];
        for _ in 0..BATCH {
            let Some(i) = self.instances.get_mut(name) else {
                return;
            };
            let (Some(n), knot) = (i.notify.as_mut(), i.pid) else {
                return;
            };
            let got = match dgram::recv_with_sender(n.socket.as_fd(), &mut buf) {
                Ok(Some(d)) => d,
                Ok(None) => return,
                Err(e) => {
                    log::warn!("{name}: {e}");
                    return;
                }
            };
            if n.pid_ns.is_none() {
                n.pid_ns = knot.and_then(proc::pid_ns);
            }
            let pid = got.sender.map(|s| s.pid);
            let sender_ns = pid.filter(|p| *p > 0).and_then(proc::pid_ns);
            let proc_is_ours = self.io.proc_pid == process::getpid();
            let verdict =
                sdnotify::decide(pid, sender_ns.as_deref(), n.pid_ns.as_deref(), proc_is_ours);
            match verdict {
                Verdict::Refuse(why) => self.refused(name, got.sender, why),
                Verdict::Accept if got.truncated => {
                    log::warn!("{name}: notify datagram longer than {DATAGRAM_MAX} bytes; dropped");
                }
                Verdict::Accept => {
                    let m = sdnotify::parse(&buf[..got.len]);
                    self.notified(name, m);
                }
            }
        }
    }

    /// A datagram from someone not of the instance: counted, logged
    /// sparsely (1st, 10th, 100th... of this start).
    fn refused(&mut self, name: &str, sender: Option<dgram::Sender>, why: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let Some(n) = i.notify.as_mut() else { return };
        n.refused += 1;
        let count = n.refused;
        self.counters
            .entry(i.key.clone())
            .or_default()
            .notify_refused += 1;
        self.dirty = true;
        if sdnotify::log_refusal(count) {
            let who = sender.map_or("unknown".to_string(), |s| {
                format!("pid {} uid {}", s.pid, s.uid)
            });
            let msg = format!("{name}: notify datagram from {who} refused: {why} ({count} so far)");
            log::warn!("{msg}");
            self.sandbox_log(name, &msg);
        }
    }

    /// What a process of the instance said.
    fn notified(&mut self, name: &str, m: sdnotify::Message) {
        let now = Instant::now();
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let watchdog = Duration::from_millis(i.spec.service.watchdog_ms);
        let running = i.life.state == State::Running;
        let Some(n) = i.notify.as_mut() else { return };
        if let Some(s) = m.status {
            if n.status.as_ref() != Some(&s) {
                log::debug!("{name}: status: {s}");
                self.dirty = true;
            }
            n.status = Some(s);
        }
        if m.watchdog && n.watchdog.is_some() {
            n.watchdog = Some(now + watchdog);
        }
        let stopping_now = m.stopping && !n.stopping;
        if stopping_now {
            n.stopping = true;
            // A service on its way out need not ping any more.
            n.watchdog = None;
        }
        if m.ready {
            n.ready_seen = true;
        }
        if stopping_now {
            let msg = format!("{name}: the service says it is stopping (STOPPING=1)");
            log::info!("{msg}");
            self.sandbox_log(name, &msg);
        }
        if m.watchdog_trigger && running {
            log::warn!("{name}: the service asked for its watchdog (WATCHDOG=trigger)");
            self.event(name, Event::Starved);
        }
        if let Some(d) = m.extend {
            self.event(name, Event::Extend(d));
        }
        if m.ready {
            self.said_ready(name);
        }
    }

    /// `READY=1` came: ready, once the program runs (`Execd`); then the
    /// watchdog is armed.
    pub(super) fn said_ready(&mut self, name: &str) {
        let Some(i) = self.instances.get(name) else {
            return;
        };
        let seen = i.notify.as_ref().is_some_and(|n| n.ready_seen);
        if seen && i.life.execd && i.life.state == State::Starting {
            self.became_ready(name);
            self.arm_watchdog(name);
        }
    }

    /// Running with a `watchdog-timeout`: the first ping is due within it.
    pub(super) fn arm_watchdog(&mut self, name: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let ms = i.spec.service.watchdog_ms;
        let running = i.life.state == State::Running;
        if let Some(n) = i.notify.as_mut()
            && ms > 0
            && running
            && !n.stopping
        {
            n.watchdog = Some(Instant::now() + Duration::from_millis(ms));
        }
    }

    /// When the next watchdog bites (none without one: no timer).
    pub(super) fn next_watchdog_at(&self) -> Option<Instant> {
        self.instances
            .values()
            .filter(|i| i.life.state == State::Running)
            .filter_map(|i| i.notify.as_ref()?.watchdog)
            .min()
    }

    /// Watchdogs that bit; an instance no longer running has none.
    pub(super) fn watchdogs(&mut self, now: Instant) {
        let mut bit = Vec::new();
        for (name, i) in self.instances.iter_mut() {
            let running = i.life.state == State::Running;
            let Some(n) = i.notify.as_mut() else { continue };
            match n.watchdog {
                Some(_) if !running => n.watchdog = None,
                Some(t) if t <= now => {
                    n.watchdog = None;
                    bit.push(name.clone());
                }
                _ => {}
            }
        }
        for name in bit {
            self.event(&name, Event::Starved);
        }
    }

    /// The watchdog bit: kill the knot and say why; its exit is then a
    /// failure (back-off).
    pub(super) fn kill_starved(&mut self, name: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        if let Some(n) = i.notify.as_mut() {
            n.watchdog = None;
        }
        let why = format!(
            "no WATCHDOG=1 within watchdog-timeout ({} s); killed",
            i.spec.service.watchdog_ms as f64 / 1000.0
        );
        i.error = Some(why.clone());
        let pid = i.pid;
        self.dirty = true;
        let msg = format!("{name}: {why}");
        log::warn!("{msg}");
        self.sandbox_log(name, &msg);
        if let Some(pid) = pid {
            let _ = process::kill(pid, libc::SIGKILL);
        }
    }
}
