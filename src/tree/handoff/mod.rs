//! Upgrades: the tree replaces itself with the binary at its installed
//! path, keeping its pid, its children, its listening sockets and its
//! state. The state goes into a memfd as JSON; the fds that must survive
//! lose close-on-exec; the new image reads the hand-off, verifies every
//! instance and carries on (DESIGN.md, "Upgrade, reload, recovery").

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sys::process;
use crate::sys::{pidfd, proc};

use super::instance::Instance;
use super::leaves;
use super::lifecycle::{Life, State, Then};
use super::probe::Probe;
use super::supervisor::{Io, Tree};

mod format;

use format::{HInstance, Handoff, instances, write_memfd};
pub use format::{HandoffError, Taken, VERSION, take};

/// The environment variable naming the hand-off fd.
pub const ENV: &str = "CAIRN_HANDOFF_FD";

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(ms).unwrap_or(0)
}

impl Tree {
    /// Serialize, keep the fds, exec. Returns only if the exec failed (the
    /// old image then keeps running unchanged).
    pub fn upgrade(&mut self, began_ns: u64) -> String {
        // Leaves still to be removed are not handed over: finish them.
        self.io
            .leaves
            .drain(self.io.cgroups.as_ref(), &leaves::in_use(&self.instances));
        // Every field of the tree, named: one added to `Tree` must be
        // handed over here or said not to be.
        let Tree {
            master_path: _, // the new image is given the same arguments
            master: _,      // read again from the config by the new image
            instances,
            by_pid: _,          // rebuilt from the instances
            by_token: _,        // rebuilt: new tokens
            next_token: _,      // rebuilt
            want: _,            // planned again from the config
            specs: _,           // planned again from the config
            frozen: _,          // planned again from the config
            config_errors: _,   // found again from the config
            config_problems: _, // found again from the config
            counters,
            unknown_children,
            logged_hash,
            died_away,
            halted,
            generations,
            replies,
            retiring,
            started,
            upgrades,
            reloads,
            last_reload: _, // the new image loads the configs at once
            shutting_down,
            dirty: _, // the new image writes state.json at once
            dirty_since: _,
            last_flush: _,
            flush_failing: _,
            replan: _,          // the new image plans at once
            last_upgrade_ms: _, // measured again by the new image
            ready_sent: _,      // the new image tells systemd again
            probing: _,         // from the instances' probes
            probe_pids,
            io:
                Io {
                    cgroups: _,      // detected again
                    poller: _,       // made again; instances are watched again
                    sigfd: _,        // made again (signals stay blocked over exec)
                    sandbox_logs: _, // opened again on first use
                    sockets,
                    exe: _,      // the new image finds its own
                    args: _,     // passed to the exec
                    notify: _,   // from the environment again
                    init: _,     // the new image's own cairn-init
                    fd_limit: _, // raised again
                    launch: _,   // given again by the entry point
                    join: _,     // given again by the entry point
                    filters: _,  // compiled again on first use
                    _lock,
                    runtime: _,       // checked again
                    state: _,         // checked again
                    oom_score_adj: _, // read again
                    proc_pid: _,      // read again
                    leaves: _,        // drained above
                    stdio_dir: _,     // checked again on first use
                    home_netns: _,    // opened again when needed
                },
        } = &*self;
        let now = Instant::now();
        let mut keep: Vec<RawFd> = vec![_lock.as_raw_fd()];
        let mut instances_out = Vec::with_capacity(instances.len());
        for i in instances.values() {
            // Every field, named: one added to `Instance` must be handed
            // over here or said not to be.
            let Instance {
                spec,
                hash,
                generation,
                key: _,    // from the spec
                policy: _, // from the spec
                life:
                    Life {
                        state,
                        started,
                        deadline,
                        failures,
                        stop,
                        killed,
                        execd,
                        replacement,
                    },
                pid,
                start_ticks,
                ready,
                pidfd,
                token: _, // the new image's poller hands out its own
                since,
                spawns,
                last_exit,
                pending,
                error,
                leaf_ready,
                probe,  // an `!Fd` pipe is handed over; connect and `!Exec` probes start again
                notify, // a `!Notify` socket is handed over with its state
            } = i;
            // An `!Exec` attempt under way is not handed over: it ends here
            // (the new image probes again).
            if let Some(a) = probe.as_ref().and_then(|p| p.exec.as_ref()) {
                crate::tree::exec_probe::kill_group(a);
            }
            let notify = notify.as_ref().map(|n| n.handoff(now));
            keep.extend(notify.as_ref().map(|n| n.fd));
            let pidfd = pidfd.as_ref().map(|f| f.as_raw_fd());
            let ready_fd = ready.as_ref().map(|f| f.as_raw_fd());
            let probe_pipe_fd = probe
                .as_ref()
                .and_then(|p| p.pipe.as_ref())
                .map(|f| f.as_raw_fd());
            keep.extend(pidfd);
            keep.extend(ready_fd);
            keep.extend(probe_pipe_fd);
            instances_out.push(HInstance {
                spec: (**spec).clone(),
                hash: hash.clone(),
                generation: *generation,
                state: *state,
                pid: *pid,
                start_ticks: *start_ticks,
                pidfd,
                ready_fd,
                started_ago_ms: started.map(|s| ms(now.saturating_duration_since(s))),
                deadline_in_ms: deadline.map(|d| ms(d.saturating_duration_since(now))),
                failures: *failures,
                // The hand-off keeps the three flags the table's `stop`
                // replaced, so trees of either kind read each other.
                stop_requested: stop.is_some(),
                killed: *killed,
                spawns: *spawns,
                last_exit: last_exit.clone(),
                replacing: *stop == Some(Then::Replace),
                fresh_replacement: *replacement,
                pending: pending.as_ref().map(|(s, h)| ((**s).clone(), h.clone())),
                error: error.clone(),
                drop_state: *stop == Some(Then::Remove),
                since_unix_ms: unix_ms(*since),
                leaf_ready: *leaf_ready,
                execd: *execd,
                probe_pipe_fd,
                probe_seen: probe.as_ref().is_some_and(|p| p.seen),
                notify,
            });
        }
        keep.extend(sockets.fds());
        let h = Handoff {
            version: VERSION,
            lock_fd: _lock.as_raw_fd(),
            started_unix_ms: unix_ms(*started),
            upgrades: *upgrades,
            reloads: *reloads,
            began_ns,
            instances: Vec::new(),
            follow: instances_out.len() as u32,
            sockets: sockets.handoff(),
            counters: counters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            unknown_children: *unknown_children,
            shutting_down: *shutting_down,
            // `!Exec` probe commands under way were killed above: their
            // exits, reaped by the new image, are no news.
            retiring: retiring.iter().chain(probe_pids.keys()).copied().collect(),
            logged_hash: logged_hash
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            died_away: died_away
                .iter()
                .map(|(k, (rec, err))| (k.clone(), rec.clone(), err.clone()))
                .collect(),
            halted: halted.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            generations: generations.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            replies: replies.clone(),
        };
        let memfd = match write_memfd(&h, &instances_out) {
            Ok(f) => f,
            Err(e) => return format!("upgrade: cannot write the hand-off: {e}"),
        };
        keep.push(memfd.as_raw_fd());
        for fd in &keep {
            if let Err(e) = crate::sys::fd::clear_cloexec(*fd) {
                restore_cloexec(&keep);
                return format!("upgrade: {e}");
            }
        }
        let mut env: Vec<String> = std::env::vars()
            .filter(|(k, _)| k != ENV && k != super::recover::RECOVER_ENV)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(format!("{ENV}={}", memfd.as_raw_fd()));
        let path = self.io.exe.display().to_string();
        log::info!("upgrade: executing {path}");
        let e = process::exec(&path, &self.io.args, &env);
        restore_cloexec(&keep);
        format!(
            "upgrade: exec {path} failed: {}; the running tree goes on",
            e.source
        )
    }

    /// Take over from the previous image.
    pub fn restore(&mut self, taken: Taken) {
        let Taken {
            mut head,
            text,
            rest,
        } = taken;
        let now = Instant::now();
        let h = &mut head;
        self.upgrades = h.upgrades + 1;
        self.reloads = h.reloads;
        self.started = UNIX_EPOCH + Duration::from_millis(h.started_unix_ms);
        self.unknown_children = h.unknown_children;
        self.counters = std::mem::take(&mut h.counters).into_iter().collect();
        self.io.sockets.restore(std::mem::take(&mut h.sockets));
        self.retiring = std::mem::take(&mut h.retiring).into_iter().collect();
        self.logged_hash = std::mem::take(&mut h.logged_hash).into_iter().collect();
        self.died_away = std::mem::take(&mut h.died_away)
            .into_iter()
            .map(|(k, rec, err)| (k, (rec, err)))
            .collect();
        self.halted = std::mem::take(&mut h.halted).into_iter().collect();
        self.generations = std::mem::take(&mut h.generations).into_iter().collect();
        self.replies = std::mem::take(&mut h.replies);
        let mut lost = Vec::new();
        let torn = std::cell::Cell::new(false);
        for hi in instances(h, &text, rest, &torn) {
            let name = hi.spec.name.clone();
            let token = self.new_token();
            let mut inst = Instance::new(std::sync::Arc::new(hi.spec), hi.hash, token);
            inst.life = Life {
                state: hi.state,
                started: hi.started_ago_ms.map(|a| now - Duration::from_millis(a)),
                deadline: hi.deadline_in_ms.map(|d| now + Duration::from_millis(d)),
                failures: hi.failures,
                stop: stop_of(hi.stop_requested, hi.replacing, hi.drop_state),
                killed: hi.killed,
                execd: hi.execd,
                replacement: hi.fresh_replacement,
            };
            inst.generation = hi.generation;
            inst.spawns = hi.spawns;
            inst.last_exit = hi.last_exit;
            inst.pending = hi.pending.map(|(s, hash)| (std::sync::Arc::new(s), hash));
            inst.error = hi.error;
            inst.leaf_ready = hi.leaf_ready;
            inst.since = UNIX_EPOCH + Duration::from_millis(hi.since_unix_ms);
            inst.pidfd = hi.pidfd.and_then(|fd| crate::sys::fs::adopt_fd(fd).ok());
            inst.ready = hi.ready_fd.and_then(|fd| crate::sys::fs::adopt_fd(fd).ok());
            let pipe = hi
                .probe_pipe_fd
                .and_then(|fd| crate::sys::fs::adopt_fd(fd).ok());
            inst.notify = hi.notify.and_then(|n| {
                let fd = crate::sys::fs::adopt_fd(n.fd).ok()?;
                Some(Box::new(super::sdnotify::NotifySock::restore(n, fd, now)))
            });
            if pipe.is_some() || hi.probe_seen {
                inst.probe = Some(Box::new(Probe {
                    pipe,
                    seen: hi.probe_seen,
                    ..Probe::default()
                }));
            }
            if let Some(pid) = hi.pid {
                // Verify: same process (start time), and ours to watch.
                let same = hi.start_ticks.is_some() && proc::start_time(pid) == hi.start_ticks;
                let ours = pidfd::is_our_child(pid) || inst.pidfd.is_some();
                if same && ours {
                    inst.pid = Some(pid);
                    inst.start_ticks = hi.start_ticks;
                    self.by_pid.insert(pid, name.clone());
                } else {
                    log::error!("{name}: knot {pid} is gone or not ours after the upgrade");
                    lost.push(name.clone());
                }
            }
            self.watch(&mut inst);
            self.by_token.insert(token, name.clone());
            self.instances.insert(name, inst);
        }
        self.shutting_down = h.shutting_down;
        // Probes of instances waiting to be ready start again.
        let waiting: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, i)| i.life.state == State::Starting && i.life.execd)
            .map(|(n, _)| n.clone())
            .collect();
        for name in waiting {
            self.start_probe(&name);
        }
        // Health checks of running instances start again (their count of
        // failures in a row too).
        let checked: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, i)| i.life.state == State::Running && i.spec.service.health.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in checked {
            self.start_health(&name);
        }
        for name in lost {
            self.knot_exited(&name, process::Exit::Signal(libc::SIGKILL));
        }
        let took = process::monotonic_ns().saturating_sub(h.began_ns);
        self.last_upgrade_ms = Some(took as f64 / 1e6);
        log::info!(
            "upgrade: supervising {} instances again, {:.2} ms after the signal",
            self.instances.len(),
            took as f64 / 1e6
        );
        self.dirty = true;
        if torn.get() {
            log::error!("upgrade: looking for the instances the hand-off lost");
            self.recover();
        }
        // The hand-off's text and its parse are garbage now.
        process::trim_heap();
    }
}

fn restore_cloexec(fds: &[RawFd]) {
    for fd in fds {
        let _ = crate::sys::fd::set_cloexec(*fd);
    }
}

/// The table's `stop` from the hand-off's flags: a removal (a shutdown, or
/// the entry removed) wins over a replacement, as in the table; a stop
/// with neither flag was a removal (older trees set `drop_state` with
/// every stop that was not a replacement).
fn stop_of(stop_requested: bool, replacing: bool, drop_state: bool) -> Option<Then> {
    match (
        stop_requested || replacing || drop_state,
        replacing && !drop_state,
    ) {
        (false, _) => None,
        (true, true) => Some(Then::Replace),
        (true, false) => Some(Then::Remove),
    }
}

#[cfg(test)]
mod tests {
    use super::{Then, stop_of};

    #[test]
    fn the_stop_flags_of_a_hand_off_read_as_the_tables_stop() {
        // (stop_requested, replacing, drop_state) as trees before and
        // after the table's `stop` write them.
        assert_eq!(stop_of(false, false, false), None);
        assert_eq!(stop_of(true, false, true), Some(Then::Remove));
        assert_eq!(stop_of(true, true, false), Some(Then::Replace));
        // A replacement overtaken by a shutdown: removed.
        assert_eq!(stop_of(true, true, true), Some(Then::Remove));
        // Any one flag alone means a stop was asked for.
        assert_eq!(stop_of(true, false, false), Some(Then::Remove));
        assert_eq!(stop_of(false, true, false), Some(Then::Replace));
        assert_eq!(stop_of(false, false, true), Some(Then::Remove));
    }
}
