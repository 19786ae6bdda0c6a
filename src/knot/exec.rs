//! Start the workload: fork from the knot, enter the user namespace if the
//! spec maps ids, drop to the configured ids and capabilities, set
//! no_new_privs, lay out the fds, clean the environment, exec.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::spec::{InstanceSpec, Stdio};
use crate::sys::{caps, idmap, process, signal};

use super::Context;

/// Exit codes of a workload that never ran: exec failed, or the
/// executable was not found (shell conventions).
pub const EXEC_FAILED: i32 = 126;
pub const NOT_FOUND: i32 = 127;

/// Why the workload did not start, and the status that reports it: 125
/// (`SETUP_FAILED`) for everything before execve, 126/127 for execve.
#[derive(Debug)]
pub struct SpawnError {
    pub code: i32,
    pub message: String,
}

impl SpawnError {
    fn setup(message: String) -> SpawnError {
        SpawnError {
            code: super::SETUP_FAILED,
            message,
        }
    }
}

/// Fork and exec the workload; returns its pid (in the knot's pid
/// namespace) once it has exec'd, or the reason it could not.
pub fn spawn(
    spec: &InstanceSpec,
    ctx: &Context,
    stdio: Option<&OwnedFd>,
) -> Result<i32, SpawnError> {
    let setup = |e: crate::sys::Error| SpawnError::setup(e.to_string());
    let userns = !spec.uid_map.is_empty() || !spec.gid_map.is_empty();
    let (err_r, err_w) = process::pipe().map_err(setup)?;
    let (up_r, up_w) = process::pipe().map_err(setup)?;
    let (go_r, go_w) = process::pipe().map_err(setup)?;
    match process::fork().map_err(setup)? {
        None => {
            drop(err_r);
            drop(up_r);
            drop(go_w);
            // Keep the error pipe above every fd number the workload gets.
            let high = match process::dup_above(err_w.as_raw_fd(), max_target(ctx) + 1) {
                Ok(high) => high,
                Err(_) => process::exit_now(EXEC_FAILED),
            };
            drop(err_w);
            let err_w = high;
            let err = child(spec, ctx, stdio, userns, up_w, go_r);
            // Only reached when something failed before or at exec: the
            // status first, then the message.
            let mut w = std::fs::File::from(err_w);
            let _ = w.write_all(format!("{} {}", err.code, err.message).as_bytes());
            process::exit_now(err.code);
        }
        Some(pid) => {
            drop(err_w);
            drop(up_w);
            drop(go_r);
            if userns {
                let mut b = [0u8; 1];
                let mut r = std::fs::File::from(up_r);
                if r.read(&mut b).unwrap_or(0) == 1 {
                    let lines = |m: &[crate::config::range::IdMap], id: u32| -> Vec<idmap::Line> {
                        if m.is_empty() {
                            vec![idmap::Line {
                                inside: id,
                                outside: id,
                                count: 1,
                            }]
                        } else {
                            m.iter()
                                .map(|l| idmap::Line {
                                    inside: l.inside,
                                    outside: l.outside,
                                    count: l.count,
                                })
                                .collect()
                        }
                    };
                    if let Err(e) = idmap::write_maps(
                        pid,
                        &lines(&spec.uid_map, spec.uid),
                        &lines(&spec.gid_map, spec.gid),
                    ) {
                        let _ = process::kill(pid, libc::SIGKILL);
                        let _ = process::wait_for(pid);
                        return Err(SpawnError::setup(format!("user namespace maps: {e}")));
                    }
                    let mut w = std::fs::File::from(go_w);
                    let _ = w.write_all(b"g");
                }
            }
            let mut msg = String::new();
            let mut r = std::fs::File::from(err_r);
            let _ = r.read_to_string(&mut msg);
            if msg.is_empty() {
                return Ok(pid);
            }
            let _ = process::wait_for(pid);
            let (code, message) = match msg.split_once(' ') {
                Some((c, m)) => (c.parse().unwrap_or(super::SETUP_FAILED), m.to_string()),
                None => (super::SETUP_FAILED, msg),
            };
            Err(SpawnError { code, message })
        }
    }
}

/// The highest fd number the workload is given (at least 2).
fn max_target(ctx: &Context) -> RawFd {
    ctx.sockets
        .iter()
        .map(|(t, _)| *t as RawFd)
        .max()
        .unwrap_or(2)
        .max(2)
}

/// The child side; returns why it failed, if anything fails.
fn child(
    spec: &InstanceSpec,
    ctx: &Context,
    stdio: Option<&OwnedFd>,
    userns: bool,
    up_w: OwnedFd,
    go_r: OwnedFd,
) -> SpawnError {
    match child_steps(spec, ctx, stdio, userns, up_w, go_r) {
        Ok(never) => match never {},
        Err(Fail::Setup(m)) => SpawnError::setup(m),
        Err(Fail::Exec(m, errno)) => SpawnError {
            code: if errno == Some(libc::ENOENT) {
                NOT_FOUND
            } else {
                EXEC_FAILED
            },
            message: m,
        },
    }
}

enum Never {}

/// A failure in the child: before execve, or of execve (with its errno).
enum Fail {
    Setup(String),
    Exec(String, Option<i32>),
}

impl From<String> for Fail {
    fn from(m: String) -> Fail {
        Fail::Setup(m)
    }
}

fn child_steps(
    spec: &InstanceSpec,
    ctx: &Context,
    stdio: Option<&OwnedFd>,
    userns: bool,
    up_w: OwnedFd,
    go_r: OwnedFd,
) -> Result<Never, Fail> {
    let s = |e: crate::sys::Error| e.to_string();
    // A session of its own, without a controlling terminal: the workload
    // can neither read nor write (nor inject into) the caller's terminal,
    // nor signal the caller's process group. Only an interactive command
    // stays in the caller's session, on purpose.
    if !spec.interactive {
        process::setsid().map_err(s)?;
    }
    // The knot is exempt from the OOM killer; its workload is not.
    let _ = std::fs::write("/proc/self/oom_score_adj", "0");
    if userns {
        process::unshare_user().map_err(s)?;
        let mut w = std::fs::File::from(up_w);
        w.write_all(b"u").map_err(|e| format!("sync: {e}"))?;
        let mut b = [0u8; 1];
        let mut r = std::fs::File::from(go_r);
        if r.read(&mut b).unwrap_or(0) != 1 {
            return Err(Fail::Setup(
                "the knot did not write the user namespace maps".into(),
            ));
        }
    } else {
        drop(up_w);
        drop(go_r);
    }
    caps::drop_bounding(&spec.capabilities).map_err(s)?;
    if !spec.capabilities.is_empty() {
        process::set_keepcaps(true).map_err(s)?;
    }
    process::set_ids(spec.uid, spec.gid, &spec.groups).map_err(s)?;
    caps::set_exactly(&spec.capabilities).map_err(s)?;
    process::set_no_new_privs().map_err(s)?;

    // File descriptors: 0-2, then the declared sockets; nothing else
    // survives exec (everything else is marked close-on-exec first).
    let max_target = max_target(ctx);
    let mut high: Vec<(RawFd, OwnedFd)> = Vec::new();
    for (target, src) in &ctx.sockets {
        high.push((
            *target as RawFd,
            process::dup_above(*src, max_target + 1).map_err(s)?,
        ));
    }
    let out = match &spec.stdio {
        Stdio::Inherit => None,
        Stdio::HostFile(_) => match stdio {
            Some(f) => Some(process::dup_above(f.as_raw_fd(), max_target + 1).map_err(s)?),
            None => None,
        },
        Stdio::ContainerFile(path) => {
            // Opened as the workload's user, inside the container.
            let f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o640)
                .open(path)
                .map_err(|e| format!("stdout-stderr-file {path}: {e}"))?;
            Some(process::dup_above(f.as_raw_fd(), max_target + 1).map_err(s)?)
        }
    };
    let stdin = if spec.interactive {
        None
    } else {
        let f = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        Some(process::dup_above(f.as_raw_fd(), max_target + 1).map_err(s)?)
    };
    process::cloexec_from(3).map_err(s)?;
    if let Some(fd) = &stdin {
        process::dup2(fd.as_raw_fd(), 0).map_err(s)?;
    }
    if let Some(fd) = &out {
        process::dup2(fd.as_raw_fd(), 1).map_err(s)?;
        process::dup2(fd.as_raw_fd(), 2).map_err(s)?;
    }
    for (target, fd) in &high {
        process::dup2(fd.as_raw_fd(), *target).map_err(s)?;
        if *target <= 2 {
            process::clear_cloexec(*target).map_err(s)?;
        }
    }
    // Stdio we keep (interactive) must not be close-on-exec.
    for fd in 0..=2 {
        process::clear_cloexec(fd).map_err(s)?;
    }
    process::set_rlimit(process::RLIMIT_NOFILE, spec.limits.fileno, "RLIMIT_NOFILE").map_err(s)?;
    process::set_umask(super::WORKLOAD_UMASK.load(std::sync::atomic::Ordering::Relaxed));
    signal::reset_signals().map_err(s)?;
    process::chdir(&spec.workdir).map_err(|e| format!("workdir: {e}"))?;

    let pid = process::getpid().to_string();
    let mut env: Vec<String> = Vec::with_capacity(spec.environ.len() + 2);
    if !spec.environ.contains_key("TERM") {
        env.push(format!("TERM={}", ctx.term));
    }
    const OURS: [&str; 4] = ["CAIRN_NAME", "LITHOS_NAME", "CAIRN_CONFIG", "LITHOS_CONFIG"];
    for (k, v) in &spec.environ {
        if !OURS.contains(&k.as_str()) {
            env.push(format!("{k}={v}"));
        }
    }
    for k in &OURS[..2] {
        env.push(format!("{k}={}", spec.name));
    }
    for k in &OURS[2..] {
        env.push(format!("{k}={}", spec.config_path));
    }
    for k in &spec.pid_vars {
        env.push(format!("{k}={pid}"));
    }
    let mut argv = Vec::with_capacity(1 + spec.arguments.len() + ctx.extra_args.len());
    argv.push(spec.executable.clone());
    argv.extend(spec.arguments.iter().cloned());
    argv.extend(ctx.extra_args.iter().cloned());
    let e = process::exec(&spec.executable, &argv, &env);
    Err(Fail::Exec(
        format!("cannot execute {}: {}", spec.executable, e.source),
        e.errno(),
    ))
}
