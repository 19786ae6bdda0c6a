//! Starting a knot: clone it into its namespaces from the caller (the
//! tree or `cairn cmd`), or, with `CAIRN_KNOT_EXEC=1`, clone and exec
//! `cairn knot --spec-fd N`.

use std::borrow::Cow;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use super::{Context, SETUP_FAILED, main};
use crate::spec::InstanceSpec;
use crate::sys::process;

/// Why a knot could not be started; each names the instance or the step.
#[derive(Debug, thiserror::Error)]
pub enum KnotError {
    #[error("{instance}: {source}")]
    Clone {
        instance: String,
        source: crate::sys::Error,
    },
    #[error("{instance}: /proc/self/ns/net: {source}")]
    HostNetns {
        instance: String,
        source: std::io::Error,
    },
    /// The memfd that carries the spec to `cairn knot --spec-fd`.
    #[error("{0}")]
    SpecMemfd(crate::sys::Error),
    #[error("knot spec: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("knot spec memfd: {0}")]
    Write(std::io::Error),
}

/// `spawn` as the tree's `protocol::Launch`.
pub fn launch(spec: &InstanceSpec, ctx: &Context) -> Result<i32, crate::protocol::LaunchError> {
    Ok(spawn(spec, ctx)?)
}

/// Clone a knot for `spec`. Returns its pid (in the caller's namespace).
/// The caller must be single-threaded.
pub fn spawn(spec: &InstanceSpec, ctx: &Context) -> Result<i32, KnotError> {
    if std::env::var_os("CAIRN_KNOT_EXEC").is_some()
        && let Ok(exe) = std::env::current_exe()
    {
        return spawn_exec(spec, ctx, &exe.display().to_string());
    }
    let (_host_netns, ctx) = with_host_netns(spec, ctx)?;
    clone_knot(spec, || {
        // Never unwind into the parent's code from here.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| main(spec, &ctx)))
            .unwrap_or(SETUP_FAILED)
    })
}

/// Clone into the knot's namespaces; `child` runs in the clone, which
/// exits with what it returns.
fn clone_knot(spec: &InstanceSpec, child: impl FnOnce() -> i32) -> Result<i32, KnotError> {
    let ns = crate::sys::namespace::Namespaces {
        net: spec.network.is_some(),
    };
    let clone = crate::sys::namespace::clone_into(ns).map_err(|source| KnotError::Clone {
        instance: spec.name.clone(),
        source,
    });
    match clone? {
        Some(pid) => Ok(pid),
        None => process::exit_now(child()),
    }
}

/// For a bridged instance: an fd of our network namespace (the one with
/// the bridge), to keep open until the knot is cloned, and the context
/// that names it for the knot.
fn with_host_netns<'a>(
    spec: &InstanceSpec,
    ctx: &'a Context,
) -> Result<(Option<OwnedFd>, Cow<'a, Context>), KnotError> {
    if spec.network.is_none() {
        return Ok((None, Cow::Borrowed(ctx)));
    }
    let fd: OwnedFd = std::fs::File::open("/proc/self/ns/net")
        .map_err(|source| KnotError::HostNetns {
            instance: spec.name.clone(),
            source,
        })?
        .into();
    let mut ctx = ctx.clone();
    ctx.host_netns = Some(fd.as_raw_fd());
    Ok((Some(fd), Cow::Owned(ctx)))
}

/// What `cairn knot --spec-fd N` reads from fd N.
#[derive(Serialize, Deserialize)]
pub struct ExecInput {
    pub spec: InstanceSpec,
    pub ctx: Context,
}

/// Like `spawn`, but the child execs `exe knot --spec-fd N` and reads its
/// spec from that fd (a memfd), instead of running on as a fork. Costs an
/// exec and more memory per knot; used when `CAIRN_KNOT_EXEC=1` is set, for
/// debugging and to show the knot needs nothing from its parent's memory.
pub fn spawn_exec(spec: &InstanceSpec, ctx: &Context, exe: &str) -> Result<i32, KnotError> {
    use std::io::{Seek, Write};
    let (_host_netns, ctx) = with_host_netns(spec, ctx)?;
    let fd = crate::sys::fd::memfd("cairn-knot-spec").map_err(KnotError::SpecMemfd)?;
    let mut f = std::fs::File::from(fd);
    let input = ExecInput {
        spec: spec.clone(),
        ctx: ctx.as_ref().clone(),
    };
    let bytes = serde_json::to_vec(&input)?;
    f.write_all(&bytes).map_err(KnotError::Write)?;
    f.rewind().map_err(KnotError::Write)?;
    let fd = OwnedFd::from(f);
    clone_knot(spec, || {
        let raw = fd.as_raw_fd();
        // Every fd the context names must cross the exec.
        let mut pass: Vec<RawFd> = ctx.sockets.iter().map(|(_, f)| *f).collect();
        pass.extend(ctx.ready);
        pass.extend(ctx.ready_pipe.map(|(_, fd)| fd));
        pass.extend(ctx.notify_socket);
        pass.extend(ctx.parent_pipe);
        pass.extend(ctx.init_fd);
        pass.extend(ctx.state_dir_fd);
        pass.extend(ctx.stdio_dir_fd);
        pass.extend(ctx.host_netns);
        pass.push(raw);
        if pass
            .iter()
            .any(|f| crate::sys::fd::clear_cloexec(*f).is_err())
        {
            return SETUP_FAILED;
        }
        let argv = vec![
            exe.to_string(),
            "knot".into(),
            "--spec-fd".into(),
            raw.to_string(),
        ];
        let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        let e = process::exec(exe, &argv, &env);
        eprintln!(
            "cairn: {}: {}",
            spec.name,
            crate::text::escape(&e.to_string())
        );
        SETUP_FAILED
    })
}

/// Why `cairn knot --spec-fd N` could not read its spec.
#[derive(Debug, thiserror::Error)]
enum SpecError {
    #[error("{0}")]
    Fd(#[from] crate::sys::Error),
    #[error("fd {fd}: {source}")]
    Read { fd: i32, source: std::io::Error },
    #[error("fd {fd}: {source}")]
    Decode { fd: i32, source: serde_json::Error },
}

/// The spec and context `spawn_exec` wrote to `fd`.
fn read_spec(fd: i32) -> Result<ExecInput, SpecError> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::from(crate::sys::fs::adopt_fd(fd)?)
        .read_to_end(&mut text)
        .map_err(|source| SpecError::Read { fd, source })?;
    serde_json::from_slice(&text).map_err(|source| SpecError::Decode { fd, source })
}

/// `cairn knot --spec-fd N`: the knot after an exec; we are already pid 1
/// of the new namespaces.
pub fn exec_main(spec_fd: i32) -> i32 {
    match read_spec(spec_fd) {
        Ok(i) if process::getpid() == 1 => main(&i.spec, &i.ctx),
        Ok(_) => {
            eprintln!("cairn knot: must be pid 1 of a new pid namespace");
            SETUP_FAILED
        }
        Err(e) => {
            eprintln!("cairn knot: spec: {}", crate::text::escape(&e.to_string()));
            SETUP_FAILED
        }
    }
}
