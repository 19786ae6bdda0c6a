//! What knots tell the tree: their ready pipe (`r` once the workload runs,
//! `x` once it has ended for good), the pidfd of an adopted knot, and the
//! exit of a knot with the reason its instance dir records.

use std::os::fd::AsFd;
use std::time::SystemTime;

use crate::protocol::{ExitRecord, Failure};
use crate::sys::process::Exit;

use super::lifecycle::{Event, State};
use super::state::{LastExit, rfc3339};
use super::supervisor::Tree;

/// How the tree learns of a knot's end.
enum Ended {
    /// Its exit (reaped, or seen through its pidfd).
    Exit(Exit),
    /// Its report (`x` on the ready pipe), with the records it wrote.
    Recorded(ExitRecord, Option<String>),
}

/// The step and path of a start that failed, for its log line
/// (` [executable /bin/app]`); empty when the knot named no path.
fn failed_at(f: &Failure) -> String {
    f.path
        .as_ref()
        .map_or(String::new(), |p| format!(" [{} {p}]", f.stage.as_str()))
}

/// What a wait status alone says.
fn from_wait(exit: Exit) -> ExitRecord {
    let (status, signal) = match exit {
        Exit::Code(c) => (c, None),
        Exit::Signal(s) => (128 + s, Some(s)),
    };
    ExitRecord {
        status,
        signal,
        oom_killed: false,
        failure: None,
    }
}

impl Tree {
    /// A knot's ready pipe has news.
    pub fn ready_event(&mut self, token: u64) {
        let Some(name) = self.by_token.get(&token).cloned() else {
            return;
        };
        let Some(i) = self.instances.get_mut(&name) else {
            return;
        };
        let Some(r) = &i.ready else { return };
        let mut buf = [0u8; 8];
        let got = nix::unistd::read(r, &mut buf).unwrap_or(0);
        if got == 0 {
            // EOF: the knot is gone; SIGCHLD tells the rest.
            if let Some(r) = i.ready.take() {
                let _ = self.io.poller.delete(r.as_fd());
            }
            return;
        }
        for &b in &buf[..got] {
            match b {
                b'r' => {
                    if let Some(i) = self.instances.get_mut(&name) {
                        i.error = None;
                        i.leaf_ready = true;
                    }
                    self.event(&name, Event::Execd);
                }
                b'x' => {
                    // The workload ended for good and the knot recorded
                    // why; it is now tearing its container down. Go on
                    // without waiting for that: its pid is reaped later.
                    let Some(i) = self.instances.get_mut(&name) else {
                        return;
                    };
                    if let Some(r) = i.ready.take() {
                        let _ = self.io.poller.delete(r.as_fd());
                    }
                    // Unless the record could not be written (a full
                    // disk): then the knot's own exit, which is the
                    // workload's status, is the news. Wait for it.
                    let (Some(record), error) = self.instance_records(&name) else {
                        return;
                    };
                    if let Some(pid) = self.instances.get(&name).and_then(|i| i.pid) {
                        self.by_pid.remove(&pid);
                        self.retiring.insert(pid);
                    }
                    self.knot_ended(&name, Ended::Recorded(record, error));
                    return;
                }
                _ => {}
            }
        }
    }

    /// An adopted knot (not our child) exited: its pidfd became readable.
    pub fn pidfd_event(&mut self, token: u64) {
        let Some(name) = self.by_token.get(&token).cloned() else {
            return;
        };
        let Some(i) = self.instances.get_mut(&name) else {
            return;
        };
        if let Some(p) = i.pidfd.take() {
            let _ = self.io.poller.delete(p.as_fd());
        }
        if let Some(pid) = i.pid {
            self.by_pid.remove(&pid);
        }
        // Not our child: no wait status. The knot's exit-status file says
        // why; without it, it was killed.
        self.knot_exited(&name, Exit::Signal(libc::SIGKILL));
    }

    /// The exit record and error an instance's dir holds, believed only
    /// if root alone could have written them. Read below the state dir
    /// the tree checked (the instance's place in it), not walked from `/`.
    fn instance_records(&self, name: &str) -> (Option<ExitRecord>, Option<String>) {
        let Some(i) = self.instances.get(name) else {
            return (None, None);
        };
        let dir = &i.spec.host.state_dir;
        if dir.as_os_str().is_empty() {
            return (None, None);
        }
        // SANDBOX/LEAF below the checked state dir, as recovery opens it.
        let below = dir.strip_prefix(self.io.state.path()).ok().and_then(|rel| {
            let mut parts = rel.iter().map(|p| p.to_str());
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Some(sandbox)), Some(Some(leaf)), None) => Some((sandbox, leaf)),
                _ => None,
            }
        });
        let found = match below {
            Some((sandbox, leaf)) => super::hostdirs::instance_in(&self.io.state, sandbox, leaf),
            None => super::hostdirs::instance_at(dir),
        };
        match found {
            Some(d) => super::hostdirs::exit_record(&d),
            None => (None, None),
        }
    }

    /// A knot exited: record why, count it, step the lifecycle.
    pub fn knot_exited(&mut self, name: &str, exit: Exit) {
        self.knot_ended(name, Ended::Exit(exit));
    }

    /// A knot's end: its exit (the records in its dir say more, when root
    /// alone wrote them), or the records it left when it reported its end.
    fn knot_ended(&mut self, name: &str, ended: Ended) {
        let killed_in_setup = self
            .instances
            .get(name)
            .is_some_and(|i| i.life.state == State::Starting && i.life.killed);
        let read = match &ended {
            Ended::Recorded(..) => None,
            Ended::Exit(_) if killed_in_setup => None,
            Ended::Exit(_) => Some(self.instance_records(name)),
        };
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        i.pid = None;
        i.start_ticks = None;
        if let Some(p) = i.pidfd.take() {
            let _ = self.io.poller.delete(p.as_fd());
        }
        if let Some(r) = i.ready.take() {
            let _ = self.io.poller.delete(r.as_fd());
        }
        if let Some(n) = i.notify.take() {
            let _ = self.io.poller.delete(n.socket.as_fd());
        }
        let (record, error) = match (ended, read) {
            (Ended::Recorded(r, e), _) => (r, e),
            (Ended::Exit(exit), Some((r, e))) => (r.unwrap_or_else(|| from_wait(exit)), e),
            // Killed at its setup deadline, maybe before it cleared what
            // an earlier run left in its dir: the tree has the reason, the
            // wait status the rest.
            (Ended::Exit(exit), None) => (from_wait(exit), i.error.clone()),
        };
        let ExitRecord {
            status,
            signal,
            oom_killed: oom,
            failure: cause,
        } = record;
        let normal =
            signal.is_none() && error.is_none() && i.spec.normal_exit_codes.contains(&status);
        let failure = !i.life.stop_requested() && !normal;
        // The same config and image would fail the same way: no back-off
        // loop, `failed` until the config changes or a reload.
        let refused = failure && cause.as_ref().is_some_and(|f| f.permanent());
        let at = cause.as_ref().map_or(String::new(), failed_at);
        let c = self.counters.entry(i.key.clone()).or_default();
        c.deaths += 1;
        if failure {
            c.failures += 1;
        }
        if refused {
            c.refused += 1;
        }
        if oom {
            c.oom_kills += 1;
        }
        i.last_exit = Some(LastExit {
            status,
            signal,
            oom_killed: oom,
            failure,
            at: rfc3339(SystemTime::now()),
            error: error.clone(),
            cause,
        });
        let why = match (&error, oom) {
            (Some(e), _) => format!("could not start: {}", e.trim()),
            (None, true) => format!("killed by the OOM killer (status {status})"),
            (None, false) => format!("exited with status {status}"),
        };
        if refused {
            i.error = Some(format!(
                "{}; not started again until its config changes or a reload",
                error.as_deref().unwrap_or("could not start").trim()
            ));
        }
        let msg = format!(
            "{name}: {why}{}{}",
            match (refused, failure) {
                (true, _) => " (failure; not retried until its config changes or a reload)",
                (false, true) => " (failure)",
                (false, false) => "",
            },
            at
        );
        if failure {
            log::warn!("{msg}");
        } else {
            log::info!("{msg}");
        }
        self.sandbox_log(name, &msg);
        self.dirty = true;
        let event = if refused {
            Event::Refused
        } else {
            Event::Exited { failure }
        };
        self.event(name, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Stage;

    #[test]
    fn a_failed_start_names_its_path() {
        let f = |stage, path: Option<&str>| Failure {
            stage,
            errno: Some(libc::ENOENT),
            path: path.map(str::to_string),
        };
        assert_eq!(
            failed_at(&f(Stage::Executable, Some("/bin/web server"))),
            " [executable /bin/web server]"
        );
        assert_eq!(
            failed_at(&f(Stage::Workdir, Some("/srv/app"))),
            " [workdir /srv/app]"
        );
        assert_eq!(failed_at(&f(Stage::Setup, Some("/dev"))), " [setup /dev]");
        assert_eq!(failed_at(&f(Stage::Setup, None)), "");
    }
}
