//! `!Exec` probes (`ready` and `health-check`), the loop's side: each
//! attempt is a command run inside the instance as `cairn exec` runs one
//! (`protocol::Joiner`, the knot's `join`: the instance's namespaces,
//! cgroup leaf, ids, no capabilities, its filter), with the container's
//! /dev/null as stdio. It is the tree's own child, forked straight into
//! the instance's pid namespace; the tree never waits for it: its pidfd
//! is in the poller, its exit is reaped with the tree's other children
//! (`run::reap` hands it here), and an attempt past its timeout is killed
//! with its process group and counts as failed. Exit 0 passes.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::protocol::{JoinRequest, JoinStdio};
use crate::sys::process::Exit;
use crate::sys::{pidfd, proc, process};

use super::probe::{ExecAttempt, KIND_SOCKET};
use super::supervisor::Tree;

/// The most of a failed attempt's report read (it is a few hundred
/// bytes; see `knot::report`).
const REPORT_MAX: usize = 64 << 10;

impl Tree {
    /// Start one `!Exec` attempt of `argv` for `name`, `timeout` at most.
    pub(super) fn exec_attempt(
        &mut self,
        name: &str,
        argv: &[String],
        now: Instant,
        timeout: Duration,
    ) {
        let forked = self.fork_probe(name, argv, now + timeout);
        let token = self
            .instances
            .get(name)
            .map(|i| Self::token_of(i.token, KIND_SOCKET));
        match (forked, token) {
            (Ok(a), Some(token)) => {
                // Its exit is reaped as the tree's children are (and a
                // stale one is no news); the pidfd wakes the loop.
                self.probe_pids.insert(a.pid, name.to_string());
                if self.io.poller.add(a.pidfd.as_fd(), token).is_err() {
                    kill_group(&a);
                    return self.attempt_failed(name, now);
                }
                match self.instances.get_mut(name).and_then(|i| i.probe.as_mut()) {
                    Some(p) => {
                        p.next = None;
                        p.exec = Some(a);
                    }
                    None => {
                        let _ = self.io.poller.delete(a.pidfd.as_fd());
                        kill_group(&a);
                    }
                }
            }
            (Ok(a), None) => {
                self.probe_pids.insert(a.pid, name.to_string());
                kill_group(&a);
            }
            (Err(e), _) => {
                self.probe_problem(name, &format!("!Exec probe: {e}"));
                self.attempt_failed(name, now);
            }
        }
    }

    /// Fork the command of an attempt into the instance.
    fn fork_probe(
        &mut self,
        name: &str,
        argv: &[String],
        until: Instant,
    ) -> Result<ExecAttempt, String> {
        let i = self.instances.get(name).ok_or("gone")?;
        let spec = i.spec.clone();
        let pid = i.pid.ok_or("its knot does not run")?;
        // An adopted knot is held by its pidfd; our own child's pid is
        // ours until we reap it.
        let pid1 = match &i.pidfd {
            Some(p) => p.try_clone().map_err(|e| e.to_string())?,
            None => pidfd::open(pid).map_err(|e| e.to_string())?,
        };
        let userns = if spec.uid_map.is_empty() && spec.gid_map.is_empty() {
            None
        } else {
            let dir = super::hostdirs::instance_at(&spec.host.state_dir)
                .ok_or("its instance dir is not cairn's alone")?;
            Some(super::joining::instance_userns(&dir, pid)?)
        };
        let filter = match crate::protocol::join_filter_profile(&spec)? {
            Some(profile) => Some(
                self.io
                    .filters
                    .get(&profile)
                    .map_err(|e| format!("system call filter: {e}"))?,
            ),
            None => None,
        };
        let search_path = spec.environ.get("PATH").cloned().unwrap_or_else(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
        });
        let cgroup = match (&self.io.cgroups, &spec.host.cgroup) {
            (Some(cg), Some(leaf)) => Some((cg, leaf.as_str())),
            _ => None,
        };
        let req = JoinRequest {
            instance: name,
            pid1: pid1.as_fd(),
            userns: userns.as_ref().map(|f| f.as_fd()),
            image: (&spec.image_dir, &spec.image),
            cgroup,
            uid: spec.uid,
            gid: spec.gid,
            groups: spec.groups.clone(),
            env: spec.joined_environ("dumb"),
            workdir: spec.workdir.clone(),
            argv: argv.to_vec(),
            search_path,
            // Ours, which every knot and workload inherited too.
            rlimits: Vec::new(),
            fileno: spec.limits.fileno,
            umask: proc::umask_of(self.io.proc_pid).unwrap_or(0o022),
            filter: filter.as_deref(),
            init: self.io.init.as_ref().map(|f| f.as_fd()),
            stdio: JoinStdio::Null,
        };
        let joined = (self.io.join.start)(&req).map_err(|e| e.to_string())?;
        let held = pidfd::open(joined.pid).and_then(|fd| {
            crate::sys::fd::set_nonblocking(joined.report.as_fd())?;
            Ok(fd)
        });
        match held {
            Ok(pidfd) => Ok(ExecAttempt {
                pid: joined.pid,
                pidfd,
                report: joined.report,
                alive: joined.alive,
                until,
            }),
            Err(e) => {
                // Not watched: end it now (it is reaped as a stale probe).
                let _ = process::kill(joined.pid, libc::SIGKILL);
                self.probe_pids.insert(joined.pid, name.to_string());
                Err(e.to_string())
            }
        }
    }

    /// A probe command of `name` ended (reaped by `run::reap`).
    pub(super) fn exec_probe_exited(&mut self, name: &str, pid: i32, exit: Exit) {
        let now = Instant::now();
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let command = match probe_argv(&i.spec, i.probe.as_ref().is_some_and(|p| p.health)) {
            Some(argv) => argv.first().cloned().unwrap_or_default(),
            None => String::new(),
        };
        let Some(p) = i.probe.as_mut() else { return };
        // One that timed out (and was killed) is no news.
        if p.exec.as_ref().map(|a| a.pid) != Some(pid) {
            return;
        }
        let Some(a) = p.exec.take() else { return };
        let _ = self.io.poller.delete(a.pidfd.as_fd());
        let mut report = Vec::new();
        let mut buf = [0u8; 4096];
        while report.len() <= REPORT_MAX {
            match crate::sys::fd::read_some(a.report.as_fd(), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => report.extend_from_slice(&buf[..n]),
            }
        }
        match ((self.io.join.failure)(&command, &report), exit) {
            (None, Exit::Code(0)) => self.attempt_passed(name),
            (Some((status, why)), _) => {
                self.probe_problem(name, &format!("!Exec probe: {why} (status {status})"));
                self.attempt_failed(name, now);
            }
            (None, exit) => {
                log::debug!(
                    "{name}: !Exec probe {}: status {}",
                    crate::text::escape(&command),
                    exit.as_status()
                );
                self.attempt_failed(name, now);
            }
        }
    }

    /// Log a probe's trouble once, until it changes (an attempt every
    /// 250 ms must not fill the log with the same line).
    fn probe_problem(&mut self, name: &str, why: &str) {
        let Some(p) = self.instances.get_mut(name).and_then(|i| i.probe.as_mut()) else {
            return;
        };
        if p.last_problem.as_deref() != Some(why) {
            log::warn!("{name}: {}", crate::text::escape(why));
            p.last_problem = Some(why.to_string());
        }
    }
}

/// End an attempt still under way: SIGKILL to its process group (what it
/// started in it goes too; it leads a session of its own).
pub(super) fn kill_group(a: &ExecAttempt) {
    // Our child, not reaped yet: its pid, and so its group's id, is ours.
    let _ = process::kill(-a.pid, libc::SIGKILL);
    let _ = pidfd::send_signal(a.pidfd.as_fd(), libc::SIGKILL);
}

/// The command of `spec`'s `!Exec` health check (`health`) or readiness
/// probe.
fn probe_argv(spec: &crate::spec::InstanceSpec, health: bool) -> Option<&Vec<String>> {
    let probe = if health {
        &spec.service.health.as_ref()?.probe
    } else {
        spec.service.ready.as_ref()?
    };
    match probe {
        crate::spec::Ready::Exec(argv) => Some(argv),
        _ => None,
    }
}
