//! Starting an instance's knot: its ready pipe in the poller, its
//! listening sockets, its system call filter, the context it inherits,
//! and the `Launch` the tree was given. A start that cannot even begin
//! (no fds left, a placeholder spec) is a failed start like any other.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::protocol;

use super::lifecycle::Event;
use super::probe::{KIND_FD_PROBE, KIND_READY, Probe};
use super::supervisor::Tree;

impl Tree {
    pub(super) fn spawn(&mut self, name: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        // An adopted instance whose config could not be read has only a
        // placeholder (no image, no executable, uid 0): never started.
        if i.spec.is_placeholder() {
            let why = "adopted from an earlier tree, and its config could not be read since; \
                       not started again until it loads"
                .to_string();
            log::error!("{name}: {why}");
            i.error = Some(why);
            self.event(name, Event::Refused);
            return;
        }
        // A start that fails here (no fds left, say) is an error shown
        // on the instance, like any other failed start.
        let (r, w) = match crate::sys::fd::pipe() {
            Ok(p) => p,
            Err(e) => {
                let why = format!("cannot start: {e}");
                log::error!("{name}: {why}");
                i.error = Some(why);
                self.event(name, Event::Exited { failure: true });
                return;
            }
        };
        // `ready: !Fd N`: the workload gets the write end of a pipe as fd
        // N; the tree reads the read end (`tree::probe`).
        let fd_probe = match fd_probe_pipe(&i.spec) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("cannot start: {e}");
                log::error!("{name}: {why}");
                i.error = Some(why);
                self.event(name, Event::Exited { failure: true });
                return;
            }
        };
        let watched = self
            .io
            .poller
            .add(r.as_fd(), Self::token_of(i.token, KIND_READY))
            .and_then(|()| match &fd_probe {
                Some((_, pr, _)) => self
                    .io
                    .poller
                    .add(pr.as_fd(), Self::token_of(i.token, KIND_FD_PROBE)),
                None => Ok(()),
            });
        if let Err(e) = watched {
            let why = format!("cannot start: {e}");
            log::error!("{name}: {why}");
            i.error = Some(why);
            self.event(name, Event::Exited { failure: true });
            return;
        }
        let (ready_pipe, probe) = match fd_probe {
            Some((n, pr, pw)) => (
                Some((n, pw)),
                Some(Box::new(Probe {
                    pipe: Some(pr),
                    ..Probe::default()
                })),
            ),
            None => (None, None),
        };
        let sockets = match self.io.sockets.for_spec(&i.spec) {
            Ok(s) => s,
            Err(e) => {
                log::error!("{name}: {e}");
                i.error = Some(e);
                self.event(name, Event::Exited { failure: true });
                return;
            }
        };
        let seccomp = match protocol::filter(&i.spec, &mut self.io.filters) {
            Ok(f) => f,
            Err(e) => {
                log::error!("{name}: {e}");
                i.error = Some(e);
                self.event(name, Event::Exited { failure: true });
                return;
            }
        };
        // `ready: !Notify`: a new socket for this start; the knot binds
        // its file into the container (`tree::sdnotify`).
        let notify = match self.bind_notify(name) {
            Ok(n) => n,
            Err(e) => {
                let why = format!("cannot start: {e}");
                log::error!("{name}: {why}");
                if let Some(i) = self.instances.get_mut(name) {
                    i.error = Some(why);
                }
                self.event(name, Event::Exited { failure: true });
                return;
            }
        };
        let stdio_dir_fd = self.stdio_dir_for(name);
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let ctx = protocol::Context {
            stdio_dir_fd,
            seccomp,
            cgroups: self.io.cgroups.clone(),
            sockets,
            term: "dumb".into(),
            extra_args: Vec::new(),
            ready: Some(w.as_raw_fd()),
            ready_pipe: ready_pipe.as_ref().map(|(n, pw)| (*n, pw.as_raw_fd())),
            notify_socket: notify.as_ref().map(|(_, file)| file.as_raw_fd()),
            hash: i.hash.clone(),
            supervised: true,
            tree_pid: Some(self.io.proc_pid),
            parent_pipe: None,
            host_netns: None,
            leaf_ready: i.leaf_ready,
            init_fd: self.io.init.as_ref().map(|f| f.as_raw_fd()),
            oom_score_adj: self.io.oom_score_adj,
            // (Unless state-dir changed since the tree started.)
            state_dir_fd: i
                .spec
                .host
                .state_dir
                .starts_with(self.io.state.path())
                .then(|| self.io.state.fd().as_raw_fd()),
        };
        match (self.io.launch)(&i.spec, &ctx) {
            Ok(pid) => {
                drop(w);
                drop(ready_pipe);
                i.probe = probe;
                i.notify = notify.map(|(n, _)| Box::new(n));
                i.pid = Some(pid);
                i.start_ticks = crate::sys::proc::start_time(pid);
                let again = i.spawns > 0;
                i.spawns += 1;
                i.ready = Some(r);
                self.by_pid.insert(pid, name.to_string());
                let c = self.counters.entry(i.key.clone()).or_default();
                c.started += 1;
                if again {
                    c.restarts += 1;
                }
                let msg = format!("{name}: started (knot pid {pid}, config {})", i.hash);
                log::info!("{msg}");
                self.sandbox_log(name, &msg);
                self.log_config(name);
            }
            Err(e) => {
                let _ = self.io.poller.delete(r.as_fd());
                if let Some((n, _)) = &notify {
                    let _ = self.io.poller.delete(n.socket.as_fd());
                }
                log::error!("{name}: cannot start: {e}");
                i.error = Some(format!("cannot start: {e}"));
                self.event(name, Event::Exited { failure: true });
            }
        }
    }
}

/// For `ready: !Fd N`: (N, read end, write end) of a new pipe whose read
/// end does not block.
fn fd_probe_pipe(
    spec: &crate::spec::InstanceSpec,
) -> crate::sys::Result<Option<(u32, OwnedFd, OwnedFd)>> {
    match &spec.service.ready {
        Some(crate::spec::Ready::Fd(n)) => {
            let (r, w) = crate::sys::fd::pipe_nonblocking_read()?;
            Ok(Some((*n, r, w)))
        }
        _ => Ok(None),
    }
}
