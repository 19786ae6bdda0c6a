//! The knot: one per instance, pid 1 of its container. `spawn` clones a
//! child into new pid, mount, UTS and IPC namespaces (and a network
//! namespace when bridged); the child builds the container (`fs`), starts
//! the workload (`exec`) and stays as its init (`init`).
//!
//! The knot is forked, not exec'd: it shares the parent's code pages and
//! costs only the pages it touches, and has its spec in memory. With
//! `CAIRN_KNOT_EXEC=1` the clone execs `cairn knot --spec-fd N` instead (N
//! a memfd with the spec as JSON), which runs the same code from a fresh
//! exec: for debugging, and for the test that checks it builds the same
//! container.

pub mod etc;
pub mod exec;
pub mod fs;
mod handover;
pub mod init;
mod instdir;
pub mod join;
mod kernfs;
pub mod net;
mod privileges;
mod report;
mod seam;
mod secret_files;
mod secrets;
mod spawn;
mod steps;
mod title;
mod workload;

pub use spawn::{ExecInput, KnotError, exec_main, launch, spawn, spawn_exec};

use handover::{hand_over, hands_over};
use instdir::{InstanceDir, instance_dir, knot_file, tied_to_tree};

use std::borrow::Cow;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::protocol::{
    Context, ERROR_FILE, EXIT_FILE, ExitRecord, Failure, KNOT_FILE, SETUP_FAILED, Stage,
    WORKLOAD_PID_FILE,
};
use crate::spec::InstanceSpec;
use crate::sys::cgroup::{Cgroups, Limits};
use crate::sys::fs as sfs;
use crate::sys::process::{self, Exit};
use crate::sys::signal;

/// The umask the knot works with.
const KNOT_UMASK: u32 = 0o022;

/// The umask the knot was started with, for the workload (the knot itself
/// works with `KNOT_UMASK`).
pub(crate) static WORKLOAD_UMASK: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(0o022);

/// The knot's oom_score_adj (what a workload inherits, to be reset to 0
/// unless it is 0 already).
pub(crate) static KNOT_OOM_SCORE_ADJ: std::sync::atomic::AtomicI32 =
    std::sync::atomic::AtomicI32::new(-1);

/// Record a setup failure where the supervisor and the operator look.
fn fail(spec: &InstanceSpec, inst: Option<&OwnedFd>, msg: &str) -> i32 {
    if let Some(dir) = inst {
        let _ = sfs::replace_file(dir.as_fd(), ERROR_FILE, msg.as_bytes(), 0o644);
    }
    eprintln!("cairn: {}: {}", spec.name, crate::text::escape(msg));
    SETUP_FAILED
}

/// The knot's life, in the cloned child. Returns its exit status.
pub fn main(spec: &InstanceSpec, ctx: &Context) -> i32 {
    // A crash of ours must not re-exec a supervisor (the tree's handler).
    crate::sys::crash::reset_fatal();
    // Not dumpable before anything else: no ptrace, no /proc/1/exe, root,
    // environ or mem for the workload (and no core dumps of our memory).
    if let Err(e) = process::set_dumpable(false) {
        return fail(spec, None, &e.to_string());
    }
    // Forked, we read as the tree in `ps` and `top`: say which instance
    // we serve (knot::title). Only a name: a failure is told, not fatal.
    let named = crate::sys::proctitle::set_cmdline(&title::cmdline(title::KNOT, &spec.name))
        .map(drop)
        .and_then(|()| crate::sys::proctitle::set_name(&title::comm(&spec.name)));
    if let Err(e) = named {
        eprintln!(
            "cairn: {}: process title: {}",
            crate::text::escape(&spec.name),
            crate::text::escape(&e.to_string())
        );
    }
    // A command's container must not outlive `cairn cmd` (killed with -9
    // it could not clean up): die with it.
    if let Some(fd) = ctx.parent_pipe {
        if process::set_pdeathsig(libc::SIGKILL).is_err() || crate::sys::fd::pipe_closed(fd) {
            return SETUP_FAILED;
        }
    }
    // A knot of the tree cannot be found by a new tree (after a kill -9)
    // until its `knot` file is written: until then it dies with the tree,
    // and one that lost the tree before this line never starts, or a new
    // tree would start the same instance a second time.
    let host = match ctx.tree_pid {
        Some(tree) => match tied_to_tree(tree) {
            Some(host) => Some(host),
            None => {
                eprintln!(
                    "cairn: {}: the tree that started this knot is gone; not starting",
                    crate::text::escape(&spec.name)
                );
                return SETUP_FAILED;
            }
        },
        None => None,
    };
    // Nothing we create is writable by group or others unless we say so
    // (a missed mode must not give a local user a root-written file);
    // where a mode matters it is set exactly (sys::hostfs, mknod, mkdir).
    // The workload gets the caller's umask back.
    WORKLOAD_UMASK.store(
        process::set_umask(KNOT_UMASK),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut keep: Vec<RawFd> = ctx.sockets.iter().map(|(_, fd)| *fd).collect();
    keep.extend(ctx.ready);
    keep.extend(ctx.ready_pipe.map(|(_, fd)| fd));
    keep.extend(ctx.notify_socket);
    keep.extend(ctx.init_fd);
    keep.extend(ctx.state_dir_fd);
    keep.extend(ctx.stdio_dir_fd);
    keep.extend(ctx.host_netns);
    // Every inherited fd but stdio and those.
    if let Err(e) = crate::sys::fd::close_all_but(&keep) {
        return fail(spec, None, &e.to_string());
    }
    // Keep the OOM killer on the workload, not on its init. Best effort:
    // lowering the score needs CAP_SYS_RESOURCE, which some hosts withhold,
    // and the knot's few pages rarely make it the victim anyway.
    // (A supervised knot inherits the tree's -1000.)
    let mut oom = ctx.oom_score_adj;
    if !ctx.supervised && std::fs::write("/proc/self/oom_score_adj", "-1000").is_ok() {
        oom = -1000;
    }
    KNOT_OOM_SCORE_ADJ.store(oom, std::sync::atomic::Ordering::Relaxed);
    let inst = match instance_dir(spec, ctx, host) {
        Ok(d) => d,
        Err(e) => return fail(spec, None, &e.to_string()),
    };
    match setup(spec, ctx, &inst) {
        Ok(code) => code,
        Err(e) => {
            if ctx.supervised {
                let f = Failure {
                    stage: Stage::Setup,
                    errno: e.errno,
                    path: e.path.clone(),
                };
                record_failure(&inst, SETUP_FAILED, f);
            }
            fail(spec, Some(&inst.0), &e.message)
        }
    }
}

/// The cgroup limits of an instance (the default pids limit, which is the
/// default `max-pids-limit` of a sandbox, applies where the pids controller
/// is on).
pub fn limits(spec: &InstanceSpec, cg: &Cgroups) -> Limits {
    Limits {
        memory: spec.limits.memory,
        cpu_shares: Some(spec.limits.cpu_shares),
        pids: spec.limits.pids.or_else(|| {
            cg.supports("pids")
                .then_some(crate::config::container::DEFAULT_PIDS_LIMIT)
        }),
    }
}

/// The workload could not be started: say why (in `error` and, with the
/// step that failed, in `exit-status` when supervised, and on stderr); the
/// knot's exit status.
fn spawn_failed(
    spec: &InstanceSpec,
    ctx: &Context,
    inst: &InstanceDir,
    e: &exec::SpawnError,
) -> i32 {
    if ctx.supervised {
        let _ = sfs::replace_file(inst.0.as_fd(), ERROR_FILE, e.message.as_bytes(), 0o644);
        if let Some(f) = &e.failure {
            record_failure(inst, e.code, f.clone());
        }
    }
    eprintln!("cairn: {}: {}", spec.name, crate::text::escape(&e.message));
    e.code
}

/// A start that never ran the workload, in `exit-status` with its step
/// and errno, for the tree and `ps` (`last_exit.cause`). Best effort, as
/// every record: without it the tree goes by the knot's exit status.
fn record_failure(inst: &InstanceDir, status: i32, failure: Failure) {
    let rec = ExitRecord {
        status,
        signal: None,
        oom_killed: false,
        failure: Some(failure),
    };
    if let Ok(json) = serde_json::to_vec(&rec) {
        let _ = sfs::replace_file(inst.0.as_fd(), EXIT_FILE, &json, 0o644);
    }
}

fn setup(spec: &InstanceSpec, ctx: &Context, inst: &InstanceDir) -> fs::Result<i32> {
    // Limits first: nothing of the container exists before they hold.
    if let (Some(cg), Some(leaf)) = (&ctx.cgroups, &spec.host.cgroup) {
        if !(ctx.leaf_ready && cg.join_self(leaf).is_ok()) {
            steps::ctx(cg.create(leaf, &limits(spec, cg)), || "cgroup".into())?;
            steps::ctx(cg.join_self(leaf), || "cgroup".into())?;
        }
    } else if spec.limits.memory.is_some() {
        return Err(
            "memory-limit is set but cgroups are off (cgroup-name: null in master.yaml); \
             it comes from the container config or the sandbox's max-memory-limit"
                .into(),
        );
    } else if spec.limits.pids.is_some() {
        return Err(
            "pids-limit is set but cgroups are off (cgroup-name: null in master.yaml); \
             it comes from the container config or the sandbox's max-pids-limit"
                .into(),
        );
    }
    // A cgroup namespace rooted at the leaf just joined (or, with cgroups
    // off, wherever the knot runs): the workload's /proc/self/cgroup
    // shows "/" and nothing of the host's cgroup tree.
    crate::sys::namespace::unshare_cgroup()?;
    // Ports opened in the container's own network namespace, and the
    // context that gives them to the workload (kept open for respawns).
    let mut own_ports: Vec<OwnedFd> = Vec::new();
    let mut with_ports = Cow::Borrowed(ctx);
    if let Some(netspec) = &spec.network {
        let host = ctx
            .host_netns
            .ok_or("bridged-network: no handle on the host's network namespace")?;
        // The commands get the caller's umask, not ours.
        let ours = process::set_umask(WORKLOAD_UMASK.load(std::sync::atomic::Ordering::Relaxed));
        let r = net::setup(netspec, host);
        process::set_umask(ours);
        r?;
        crate::sys::fd::close_fd(host);
        for (target, listen) in spec.container_ports() {
            let fd = steps::ctx(crate::sys::socket::listen(&listen), || {
                format!("tcp port {} (in the container)", listen.port)
            })?;
            with_ports.to_mut().sockets.push((target, fd.as_raw_fd()));
            own_ports.push(fd);
        }
    }
    let spawn_ctx: &Context = &with_ports;
    let mount_dir = spec.host.mount_dir.display();
    steps::ctx(std::fs::create_dir_all(&spec.host.mount_dir), || {
        format!("mount-dir {mount_dir}")
    })
    .map_err(|e| e.at(mount_dir.to_string()))?;
    // The memory cgroup dir, for counting OOM kills: opened before the
    // pivot (after it, host paths are gone).
    let memory_mount = match (&ctx.cgroups, &spec.host.cgroup) {
        (Some(cg), Some(leaf)) => cg
            .memory_dir_parts(leaf)
            .and_then(|(m, rel)| Some((sfs::open_dir(&m).ok()?, rel))),
        _ => None,
    };
    // The sandbox stdio log, opened on the host before the pivot: the
    // workload writes it, or a pipe that we (and cairn-init after us)
    // pump into it.
    let (stdio, mut log_pump) = match fs::stdio_log(spec, ctx)? {
        None => (None, None),
        Some(fs::StdioLog::Plain(file)) => (Some(file), None),
        Some(fs::StdioLog::Pumped { write, read, log }) => {
            (Some(write), Some(init::LogPump::new(spec, read, log)))
        }
    };
    // For `cairn cmd`, the workload's process is forked before the root is
    // built: what it does before it may exec (see `exec::Pending`) runs on
    // the other CPU, which is otherwise idle, and a start is quicker. A knot
    // of the tree forks it after the build: there the other CPU belongs to
    // the tree and to other knots, and a process forked early makes each
    // copy-on-write fault of the knot during the build interrupt that CPU
    // (about three more cross-CPU calls per restart, measured).
    let early = !ctx.supervised;
    // The secrets, decrypted now (the key is a host file), for the
    // workload's environment and the secret files of the build.
    let plain = secrets::decrypt(spec)?;
    let prepare = || exec::prepare(spec, spawn_ctx, stdio.as_ref(), &plain);
    let mut pending = None;
    if early {
        match prepare() {
            Ok(p) => pending = Some(p),
            Err(e) => return Ok(spawn_failed(spec, ctx, inst, &e)),
        }
    }
    fs::build(spec, &inst.0, &inst.1, ctx.notify_socket, &plain.files)?;
    let pending = match pending.map_or_else(prepare, Ok) {
        Ok(p) => p,
        Err(e) => return Ok(spawn_failed(spec, ctx, inst, &e)),
    };
    let mut oom_dir: Option<OwnedFd> = None;
    let mut oom_before = 0;
    if let Some((mount, rel)) = &memory_mount {
        // The leaf is reused across restarts: count OOM kills from here.
        oom_dir = sfs::open_dir_beneath(mount.as_fd(), rel).ok();
        oom_before = oom_dir.as_ref().map_or(0, oom_kills);
    }

    signal::block_all_signals()?;
    let sigfd = signal::signalfd_all()?;
    let first = match pending.go(spec) {
        Ok(p) => p,
        Err(e) => return Ok(spawn_failed(spec, ctx, inst, &e)),
    };
    let record_pid = |pid: i32| {
        if !ctx.supervised {
            return;
        }
        let _ = sfs::replace_file(
            inst.0.as_fd(),
            WORKLOAD_PID_FILE,
            pid.to_string().as_bytes(),
            0o644,
        );
    };
    record_pid(first);
    // The workload runs with its secrets: wipe ours, unless the knot
    // starts the workload again itself (`restart-process-only`).
    let plain = if spec.restart_process_only {
        plain
    } else {
        drop(plain);
        secrets::Plain::default()
    };
    if let Some(fd) = ctx.ready {
        crate::sys::fd::notify(fd, b'r');
    }
    // From here on the knot only waits. A supervised instance hands pid 1
    // over to cairn-init, which needs a few pages instead of the forked
    // supervisor's; if that fails, the knot stays pid 1 itself.
    if hands_over(spec, ctx)
        && let Some(init_fd) = ctx.init_fd
    {
        let e = hand_over(
            init_fd,
            first,
            spec,
            ctx,
            &inst.0,
            (oom_before, oom_dir.as_ref()),
            log_pump.as_ref(),
        );
        let e = e.to_string();
        let e = crate::text::escape(&e);
        eprintln!("cairn: {}: keeping the knot as pid 1: {e}", spec.name);
        // The knot file named cairn-init's socket fds: name ours.
        let mut plain = ctx.clone();
        plain.init_fd = None;
        let text = knot_file(spec, &plain, inst.2, inst.3);
        let _ = sfs::replace_file(inst.0.as_fd(), KNOT_FILE, text.as_bytes(), 0o644);
    }
    process::trim_heap();
    let ended = init::run(
        spec,
        &sigfd,
        first,
        || exec::spawn(spec, spawn_ctx, stdio.as_ref(), &plain),
        record_pid,
        log_pump.as_mut(),
    );
    let ended = match ended {
        Ok(e) => e,
        Err(e) => return Ok(spawn_failed(spec, ctx, inst, &e)),
    };
    let oom_killed = matches!(ended.exit, Exit::Signal(libc::SIGKILL))
        && oom_dir.as_ref().is_some_and(|d| oom_kills(d) > oom_before);
    let rec = ExitRecord {
        status: ended.exit.as_status(),
        signal: match ended.exit {
            Exit::Signal(s) => Some(s),
            Exit::Code(_) => None,
        },
        oom_killed,
        failure: None,
    };
    if ctx.supervised
        && let Ok(json) = serde_json::to_vec(&rec)
    {
        let _ = sfs::replace_file(inst.0.as_fd(), EXIT_FILE, &json, 0o644);
    }
    // Tell the tree now, not when our exit is reaped: tearing down the
    // container's namespaces and mounts then runs in parallel with the
    // start of the next one.
    if let Some(fd) = ctx.ready {
        crate::sys::fd::notify(fd, b'x');
        crate::sys::fd::close_fd(fd);
    }
    if oom_killed {
        eprintln!(
            "cairn: {}: killed by the OOM killer (memory-limit)",
            spec.name
        );
    }
    Ok(rec.status)
}

/// OOM kills recorded by the memory cgroup (v1 memory.oom_control or v2
/// memory.events), read through an fd opened before the pivot.
fn oom_kills(dir: &OwnedFd) -> u64 {
    for (file, key) in [
        ("memory.oom_control", "oom_kill "),
        ("memory.events", "oom_kill "),
    ] {
        let path = format!("/proc/self/fd/{}/{file}", dir.as_raw_fd());
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(n) = text
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
        {
            return n;
        }
    }
    0
}
