//! The event loop's side of readiness probes and health checks (see
//! `tree::probe`): start and stop them, run connect attempts in the
//! container's network namespace (`!Exec` attempts in `exec_probe`), read
//! the `!Fd` pipe and the HTTP answer, and feed `Ready` or `Unhealthy` to
//! the lifecycle table.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::spec::{Health, InstanceSpec, Ready};
use crate::sys::{namespace, pidfd, socket};

use super::lifecycle::{Event, State};
use super::probe::{
    ATTEMPT, Attempt, FD_PROBE_MAX, KIND_FD_PROBE, KIND_SOCKET, Probe, RETRY, http_request,
    http_status_ok,
};
use super::supervisor::Tree;

impl Tree {
    /// The loop's poller token for one of an instance's fds.
    pub fn token_of(token: u64, kind: u64) -> u64 {
        (token << 2) | kind
    }

    /// A probe fd of an instance is ready (`token`: instance and kind).
    pub(super) fn probe_event(&mut self, token: u64) {
        let Some(name) = self.by_token.get(&(token >> 2)).cloned() else {
            return;
        };
        match token & 3 {
            KIND_FD_PROBE
                if self
                    .instances
                    .get(&name)
                    .is_some_and(|i| i.notify.is_some()) =>
            {
                self.notify_event(&name)
            }
            KIND_FD_PROBE => self.read_fd_probe(&name),
            KIND_SOCKET => self.probe_socket_event(&name),
            _ => {}
        }
    }

    /// The instance's program runs and it has a probe: start it.
    pub(super) fn start_probe(&mut self, name: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        match &i.spec.service.ready {
            Some(Ready::Fd(_)) => self.read_fd_probe(name),
            // READY=1 may have come before the exec was reported.
            Some(Ready::Notify) => self.said_ready(name),
            Some(Ready::Tcp(_) | Ready::Http { .. } | Ready::Exec(_)) => {
                let p = i.probe.get_or_insert_with(Box::default);
                p.next = Some(Instant::now());
                self.probing.insert(name.to_string());
            }
            None => {}
        }
    }

    /// The instance is running and has a health check: check it every
    /// `health-interval`, the first time one interval from now.
    pub(super) fn start_health(&mut self, name: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let Some(h) = &i.spec.service.health else {
            return;
        };
        let next = Instant::now() + Duration::from_millis(h.interval_ms);
        i.probe = Some(Box::new(Probe {
            health: true,
            next: Some(next),
            ..Probe::default()
        }));
        self.probing.insert(name.to_string());
    }

    /// Drop an instance's probe (ready, or no longer in the state its
    /// probe is for).
    pub(super) fn stop_probe(&mut self, name: &str) {
        self.probing.remove(name);
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        if let Some(p) = i.probe.take() {
            if let Some(fd) = &p.pipe {
                let _ = self.io.poller.delete(fd.as_fd());
            }
            if let Some(a) = &p.attempt {
                let _ = self.io.poller.delete(a.fd.as_fd());
            }
            if let Some(a) = &p.exec {
                let _ = self.io.poller.delete(a.pidfd.as_fd());
                super::exec_probe::kill_group(a);
            }
        }
    }

    /// The `!Fd` pipe is readable: look for the newline.
    pub(super) fn read_fd_probe(&mut self, name: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let Some(p) = i.probe.as_mut() else { return };
        if let Some(fd) = &p.pipe {
            let mut buf = [0u8; 256];
            let give_up = loop {
                match crate::sys::fd::read_some(fd.as_fd(), &mut buf) {
                    // Closed by the workload without a newline (or it
                    // ended): nothing more will come.
                    Ok(0) => break true,
                    Ok(n) => {
                        p.read += n;
                        if buf[..n].contains(&b'\n') {
                            p.seen = true;
                            break true;
                        }
                        // A workload that writes and writes but no newline
                        // gets no more of the tree's time: it is not ready
                        // (ready-timeout ends it).
                        if p.read > FD_PROBE_MAX {
                            break true;
                        }
                    }
                    Err(_) => break false,
                }
            };
            if give_up {
                let _ = self.io.poller.delete(fd.as_fd());
                p.pipe = None;
            }
        }
        if p.seen && i.life.execd && i.life.state == State::Starting {
            self.became_ready(name);
        }
    }

    pub(super) fn became_ready(&mut self, name: &str) {
        self.stop_probe(name);
        self.event(name, Event::Ready);
    }

    /// The next time a connect probe wants the loop awake.
    pub(super) fn next_probe_at(&self) -> Option<Instant> {
        self.probing
            .iter()
            .filter_map(|n| self.instances.get(n))
            .filter_map(|i| i.probe.as_ref())
            .filter_map(|p| {
                p.attempt
                    .as_ref()
                    .map(|a| a.until)
                    .or(p.exec.as_ref().map(|a| a.until))
                    .or(p.next)
            })
            .min()
    }

    /// Start due attempts and end attempts that took too long.
    pub(super) fn probe_timers(&mut self, now: Instant) {
        let names: Vec<String> = self.probing.iter().cloned().collect();
        for name in names {
            let Some(p) = self.instances.get(&name).and_then(|i| i.probe.as_ref()) else {
                self.probing.remove(&name);
                continue;
            };
            let late = p.attempt.as_ref().is_some_and(|a| a.until <= now)
                || p.exec.as_ref().is_some_and(|a| a.until <= now);
            if late {
                self.attempt_failed(&name, now);
            } else if p.attempt.is_none() && p.exec.is_none() && p.next.is_some_and(|t| t <= now) {
                self.attempt(&name, now);
            }
        }
    }

    /// One connect attempt, in the container's network namespace.
    fn attempt(&mut self, name: &str, now: Instant) {
        let Some(i) = self.instances.get(name) else {
            return;
        };
        let health = i.probe.as_ref().is_some_and(|p| p.health);
        let Some((target, timeout)) = target(&i.spec, health) else {
            return;
        };
        let port = match target {
            Ready::Tcp(p) | Ready::Http { port: p, .. } => *p,
            Ready::Exec(argv) => {
                let argv = argv.clone();
                return self.exec_attempt(name, &argv, now, timeout);
            }
            _ => return,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let token = Self::token_of(i.token, KIND_SOCKET);
        let made = match (i.spec.network.is_some(), i.pid) {
            (true, Some(pid)) => self.connect_in(pid, addr),
            _ => socket::connect_start(addr).map_err(|e| e.to_string()),
        };
        let Some(p) = self.instances.get_mut(name).and_then(|i| i.probe.as_mut()) else {
            return;
        };
        p.next = None;
        match made {
            Ok((fd, connected)) => {
                let watch = if connected {
                    self.io.poller.add(fd.as_fd(), token)
                } else {
                    self.io.poller.add_out(fd.as_fd(), token)
                };
                if watch.is_err() {
                    p.next = Some(now + RETRY);
                    return;
                }
                p.attempt = Some(Attempt {
                    fd,
                    connecting: !connected,
                    until: now + timeout,
                    buf: Vec::new(),
                });
                if connected {
                    self.attempt_connected(name);
                }
            }
            Err(_) => self.attempt_failed(name, now),
        }
    }

    /// A socket in the network namespace of the instance's knot.
    fn connect_in(&mut self, pid: i32, addr: SocketAddr) -> Result<(OwnedFd, bool), String> {
        if self.io.home_netns.is_none() {
            let own = std::fs::File::open("/proc/self/ns/net").map_err(|e| e.to_string())?;
            self.io.home_netns = Some(own.into());
        }
        let Some(home) = &self.io.home_netns else {
            return Err("own network namespace".into());
        };
        let target = pidfd::open(pid).map_err(|e| e.to_string())?;
        namespace::in_netns(target.as_fd(), home.as_fd(), || socket::connect_start(addr))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    pub(super) fn attempt_failed(&mut self, name: &str, now: Instant) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let health = i
            .spec
            .service
            .health
            .as_ref()
            .map(|h| (h.interval_ms, h.failures));
        let Some(p) = i.probe.as_mut() else { return };
        if let Some(a) = p.attempt.take() {
            let _ = self.io.poller.delete(a.fd.as_fd());
        }
        // Past its timeout: killed (its exit, reaped later, is no news).
        if let Some(a) = p.exec.take() {
            let _ = self.io.poller.delete(a.pidfd.as_fd());
            super::exec_probe::kill_group(&a);
        }
        match (p.health, health) {
            (true, Some((interval, most))) => {
                p.failures += 1;
                self.dirty = true;
                if p.failures >= most {
                    p.next = None;
                    self.event(name, Event::Unhealthy);
                } else {
                    p.next = Some(now + Duration::from_millis(interval));
                }
            }
            _ => p.next = Some(now + RETRY),
        }
    }

    /// An attempt passed: ready, or healthy again.
    pub(super) fn attempt_passed(&mut self, name: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let interval = i.spec.service.health.as_ref().map(|h| h.interval_ms);
        let Some(p) = i.probe.as_mut() else { return };
        if !p.health {
            return self.became_ready(name);
        }
        if let Some(a) = p.attempt.take() {
            let _ = self.io.poller.delete(a.fd.as_fd());
        }
        if p.failures > 0 {
            p.failures = 0;
            self.dirty = true;
        }
        p.next = interval.map(|ms| Instant::now() + Duration::from_millis(ms));
    }

    /// The probe socket is ready for us (connected, or an answer came),
    /// or an `!Exec` attempt's command ended (its pidfd).
    pub(super) fn probe_socket_event(&mut self, name: &str) {
        let now = Instant::now();
        let Some(p) = self.instances.get_mut(name).and_then(|i| i.probe.as_mut()) else {
            return;
        };
        if p.exec.is_some() {
            return self.reap();
        }
        let Some(a) = p.attempt.as_mut() else { return };
        if a.connecting {
            match socket::take_error(a.fd.as_fd()) {
                Ok(None) => {
                    a.connecting = false;
                    self.attempt_connected(name);
                }
                _ => self.attempt_failed(name, now),
            }
            return;
        }
        let mut buf = [0u8; 256];
        let mut verdict = None;
        let mut closed = false;
        loop {
            match crate::sys::fd::read_some(a.fd.as_fd(), &mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    a.buf.extend_from_slice(&buf[..n]);
                    verdict = http_status_ok(&a.buf);
                    if verdict.is_some() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        match verdict {
            Some(true) => self.attempt_passed(name),
            Some(false) => self.attempt_failed(name, now),
            None if closed => self.attempt_failed(name, now),
            None => {}
        }
    }

    /// Connected: a TCP probe is done; an HTTP probe sends its request and
    /// waits for the answer.
    fn attempt_connected(&mut self, name: &str) {
        let now = Instant::now();
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let health = i.probe.as_ref().is_some_and(|p| p.health);
        let (path, port) = match target(&i.spec, health) {
            Some((Ready::Http { path, port }, _)) => (path.clone(), *port),
            _ => return self.attempt_passed(name),
        };
        let token = Self::token_of(i.token, KIND_SOCKET);
        let Some(a) = i.probe.as_mut().and_then(|p| p.attempt.as_mut()) else {
            return;
        };
        let req = http_request(&path, port);
        let sent = crate::sys::fd::send_some(a.fd.as_fd(), &req).ok();
        if sent != Some(req.len()) || self.io.poller.watch_in(a.fd.as_fd(), token).is_err() {
            self.attempt_failed(name, now);
        }
    }
}

/// What a connect probe of `spec` checks, and how long one attempt may
/// take: its health check (`health`) or its readiness probe.
fn target(spec: &InstanceSpec, health: bool) -> Option<(&Ready, Duration)> {
    if health {
        let Health {
            probe, timeout_ms, ..
        } = spec.service.health.as_ref()?;
        Some((probe, Duration::from_millis(*timeout_ms)))
    } else {
        Some((spec.service.ready.as_ref()?, ATTEMPT))
    }
}
