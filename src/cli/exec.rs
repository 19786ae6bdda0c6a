//! `cairn exec [-c MASTER] [--user UID[:GID]] [-t] SANDBOX/PROCESS.N [--]
//! CMD [ARG...]`: run a command inside a running instance, as a process
//! of that instance (see `knot::join` for how it joins, `exec_target` for
//! how the instance is found and checked, `exec_relay` for its stdio).
//!
//! Exit status: the command's; 128+N if it died of signal N; 126 if it
//! could not be executed, 127 if it was not found; 125 if it could not be
//! started at all (no such instance, not running, not root, `--user` not
//! allowed, a config that does not load), with the reason on stderr.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use super::exec_relay::Relay;
use super::exec_target::{self, Target};
use crate::config::master::Master;
use crate::protocol::{self, JoinRequest, JoinStdio, SETUP_FAILED};
use crate::sys::process::{self, Exit};
use crate::sys::{pty, rlimit, seccomp, signal, socket};
use crate::text::escape;

/// Where a command is looked up when the container's environ has no PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `cairn exec` was asked.
pub struct Options<'a> {
    pub master: &'a Path,
    /// `--user UID[:GID]`.
    pub user: Option<&'a str>,
    /// `-t`: a new terminal.
    pub tty: bool,
    pub instance: &'a str,
    pub argv: &'a [String],
}

const FAILED: u8 = SETUP_FAILED as u8;

fn fail(instance: &str, what: &str) -> u8 {
    eprintln!("cairn exec: {}", escape(&format!("{instance}: {what}")));
    FAILED
}

/// `--user UID[:GID]` → (uid, gid if given).
pub fn parse_user(s: &str) -> Option<(u32, Option<u32>)> {
    match s.split_once(':') {
        Some((u, g)) => Some((u.parse().ok()?, Some(g.parse().ok()?))),
        None => Some((s.parse().ok()?, None)),
    }
}

pub fn run(o: &Options<'_>) -> u8 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("cairn exec: must run as root (it joins a container's namespaces)");
        return FAILED;
    }
    // Never traced or read through /proc by anyone but root, from here on
    // (the joined child is made so in any case; see `knot::join`).
    if let Err(e) = process::set_dumpable(false) {
        return fail(o.instance, &e.to_string());
    }
    let master = match Master::load(o.master) {
        Ok(m) => m,
        Err(p) => {
            super::eprint_problems(&p);
            return FAILED;
        }
    };
    let target = match exec_target::find(&master, o.instance) {
        Ok(t) => t,
        Err(e) => {
            // One line per problem, each escaped (they quote configs).
            for line in e.to_string().lines() {
                eprintln!("cairn exec: {}", escape(line));
            }
            return FAILED;
        }
    };
    let spec = &target.spec;
    let (uid, gid, groups) = match o.user.map(parse_user) {
        None => (spec.uid, spec.gid, spec.groups.clone()),
        Some(None) => return fail(o.instance, "--user: not UID or UID:GID"),
        Some(Some((uid, gid))) => {
            let gid = gid.unwrap_or(spec.gid);
            let allowed = crate::config::ids::check_joined(
                uid,
                gid,
                &target.sandbox,
                &spec.uid_map,
                &spec.gid_map,
            );
            if let Err(why) = allowed {
                return fail(o.instance, &format!("--user {uid}:{gid}: {why}"));
            }
            // Another user gets no additional groups of the instance's.
            let groups = if uid == spec.uid {
                spec.groups.clone()
            } else {
                Vec::new()
            };
            (uid, gid, groups)
        }
    };
    match execute(o, &target, (uid, gid, groups)) {
        Ok(code) => code,
        Err(e) => fail(o.instance, &e),
    }
}

/// The limits the workload inherited: pid 1's (the tree's, which every
/// knot inherits), but `RLIMIT_NOFILE`, which is the instance's own.
fn inherited_limits(pid1: i32) -> Result<Vec<(rlimit::Resource, u64, u64, &'static str)>, String> {
    rlimit::ALL
        .iter()
        .filter(|(r, _)| *r != rlimit::RLIMIT_NOFILE)
        .map(|&(r, what)| {
            let (soft, hard) = rlimit::limit_of(pid1, r).map_err(|e| e.to_string())?;
            Ok((r, soft, hard, what))
        })
        .collect()
}

/// Start the command, relay its stdio, return its status.
fn execute(
    o: &Options<'_>,
    t: &Target,
    (uid, gid, groups): (u32, u32, Vec<u32>),
) -> Result<u8, String> {
    let spec = &t.spec;
    let profile = protocol::join_filter_profile(spec)?;
    let filter = match &profile {
        Some(p) => Some(seccomp::compile(p).map_err(|e| format!("system call filter: {e}"))?),
        None => None,
    };
    let init = crate::sys::embedded::init_memfd().map_err(|e| {
        format!("{e} (cairn-init runs from a memfd; a host with vm.memfd_noexec = 2 forbids that)")
    })?;
    let rlimits = inherited_limits(t.pid1_pid)?;
    let search_path = spec
        .environ
        .get("PATH")
        .cloned()
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    // Signals are read from a signalfd from here on; what the command
    // should get is passed on (see `exec_relay`).
    let old_mask = signal::block_all_signals().map_err(|e| e.to_string())?;
    let sigfd = signal::signalfd_all().map_err(|e| e.to_string())?;
    // stdio: pipes, or a terminal made in the container.
    let mut ours: Vec<OwnedFd> = Vec::new(); // the command's ends, ours to close once it runs
    let (stdio, input, outputs, pty_sock) = if o.tty {
        let (mine, theirs) = socket::seqpacket_pair().map_err(|e| e.to_string())?;
        let raw = theirs.as_raw_fd();
        ours.push(theirs);
        (JoinStdio::Pty(raw), None, Vec::new(), Some(mine))
    } else {
        let pipe = || crate::sys::fd::pipe().map_err(|e| e.to_string());
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
        ours.extend([in_r, out_w, err_w]);
        for f in [&in_w, &out_r, &err_r] {
            crate::sys::fd::set_nonblocking(f.as_fd()).map_err(|e| e.to_string())?;
        }
        (
            JoinStdio::Fds(fds),
            Some(in_w),
            vec![(out_r, 1), (err_r, 2)],
            None,
        )
    };
    let cgroup = match (&t.cgroups, &spec.host.cgroup) {
        (Some(cg), Some(leaf)) => Some((cg, leaf.as_str())),
        _ => None,
    };
    let req = JoinRequest {
        instance: &spec.name,
        pid1: t.pid1.as_fd(),
        userns: t.userns.as_ref().map(|f| f.as_fd()),
        image: (&spec.image_dir, &spec.image),
        cgroup,
        uid,
        gid,
        groups,
        env: spec.joined_environ(&std::env::var("TERM").unwrap_or_else(|_| "dumb".into())),
        workdir: spec.workdir.clone(),
        argv: o.argv.to_vec(),
        search_path,
        rlimits,
        fileno: spec.limits.fileno,
        umask: exec_target::workload_umask(t.tree_pid),
        filter: filter.as_ref(),
        init: init.as_ref().map(|f| f.as_fd()),
        stdio,
    };
    let joined = crate::knot::join::start(&req).map_err(|e| e.to_string())?;
    drop(ours);
    let command = o.argv.first().map(String::as_str).unwrap_or("");
    // `-t`: the terminal's master comes back from the container; it is
    // sized as ours before the command goes on.
    let mut raw_mode = None;
    let master = match pty_sock {
        Some(sock) => match socket::recv_fd(sock.as_fd()) {
            Ok(Some((b'm', Some(m)))) if pty::is_master(m.as_fd()) => {
                let _ = pty::set_window_size(m.as_fd(), pty::caller_size().unwrap_or((24, 80)));
                crate::sys::fd::set_nonblocking(m.as_fd()).map_err(|e| e.to_string())?;
                raw_mode = pty::raw_stdin().map_err(|e| e.to_string())?;
                socket::send_byte(sock.as_fd(), b'g').map_err(|e| e.to_string())?;
                Some(m)
            }
            // The child failed before (its report says why), or sent
            // something else than a terminal's master: it gets no go.
            _ => None,
        },
        None => None,
    };
    let started = crate::knot::join::outcome(command, joined.report);
    drop(joined.alive);
    if let Err(e) = started {
        drop(raw_mode);
        let _ = process::wait_for(joined.pid);
        eprintln!("cairn exec: {}: {}", escape(o.instance), escape(&e.message));
        return Ok(e.code.clamp(0, 255) as u8);
    }
    let relay = match master {
        Some(m) => {
            let copy = m.try_clone().map_err(|e| e.to_string())?;
            let input = m.try_clone().map_err(|e| e.to_string())?;
            Relay {
                child: joined.pid,
                sigfd,
                input: Some(input),
                outputs: vec![(copy, 1)],
                master: Some(m),
            }
        }
        None => Relay {
            child: joined.pid,
            sigfd,
            input,
            outputs,
            master: None,
        },
    };
    let exit = relay.run();
    drop(raw_mode);
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&old_mask),
        None,
    );
    Ok(match exit {
        Exit::Code(c) => c.clamp(0, 255) as u8,
        Exit::Signal(s) => (128 + s).clamp(0, 255) as u8,
    })
}
