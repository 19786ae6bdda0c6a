//! `cairn exec`: which running instance a command joins, and the checks
//! that it is that instance's container, running, before anything joins
//! it. Every source is root's alone: master.yaml and the configs, the
//! tree's `state.json`, and the instance dir's `knot` record; what they
//! say is checked against the kernel (pid 1's start time, its root, the
//! workload's user namespace) with a pidfd held, so a pid that was
//! reused by another process is never joined.

use std::os::fd::{AsFd, OwnedFd};

use crate::config::master::Master;
use crate::config::process::Processes;
use crate::config::sandbox::Sandbox;
use crate::load::desired;
use crate::load::parsed::Cache;
use crate::protocol::{KNOT_FILE, KnotRecord};
use crate::spec::{InstanceSpec, Which};
use crate::sys::cgroup::Cgroups;
use crate::sys::{pidfd, proc};
use crate::tree::hostdirs;

/// Why a command cannot join the instance. Each names the instance.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not an instance name (SANDBOX/PROCESS.N)")]
    Name(String),
    /// Config problems, one line each (the file, line and key in each).
    #[error("{}", .0.join("\n"))]
    Config(Vec<String>),
    #[error("{instance}: not running ({why})")]
    NotRunning { instance: String, why: String },
    #[error(
        "{instance}: runs config {running}, but its config files give {now} now \
         (a rollout under way or stopped); exec joins an instance only with the \
         config it runs"
    )]
    Changed {
        instance: String,
        running: String,
        now: String,
    },
    #[error("{instance}: {what}: {source}")]
    Sys {
        instance: String,
        what: &'static str,
        source: crate::sys::Error,
    },
    #[error("{0}")]
    Tree(String),
}

/// The instance a command joins, checked; its fds are held until the
/// command is started.
pub struct Target {
    pub spec: InstanceSpec,
    pub sandbox: Sandbox,
    /// A pidfd of the container's pid 1 (the knot, or cairn-init).
    pub pid1: OwnedFd,
    pub pid1_pid: i32,
    /// The workload's user namespace, checked, when it has one.
    pub userns: Option<OwnedFd>,
    /// The container's root: device and inode of the image dir.
    pub root: (u64, u64),
    /// The tree's cgroup hierarchies (the instance's leaf is in each).
    pub cgroups: Option<Cgroups>,
    /// The running tree's pid, if one runs.
    pub tree_pid: Option<i32>,
}

/// What `cairn exec` needs of state.json: each instance's name, state
/// and pid, and the tree's cgroups; every other field is skipped, not
/// built.
#[derive(serde::Deserialize)]
struct State {
    instances: Vec<Listed>,
    #[serde(default)]
    cgroups: Option<Cgroups>,
}

#[derive(serde::Deserialize)]
struct Listed {
    name: String,
    state: String,
    pid: Option<i32>,
}

/// The tree's state.json, as `cairn ps` reads it (a regular file only).
fn read_state(master: &Master) -> Result<State, String> {
    let path = master.state_file();
    let bytes = crate::config::read_file_capped(&path, super::ps::STATE_CAP)
        .map_err(|e| format!("{}: {}", crate::text::path(&path), crate::text::escape(&e)))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{}: {}",
            crate::text::path(&path),
            crate::text::escape(&e.to_string())
        )
    })
}

/// `SANDBOX/PROCESS.N` → (sandbox, process, N).
pub fn parse_name(name: &str) -> Option<(&str, &str, u32)> {
    let (sandbox, rest) = name.split_once('/')?;
    let (process, index) = rest.rsplit_once('.')?;
    let safe = crate::config::is_safe_name;
    if !safe(sandbox)
        || !safe(process)
        || index.is_empty()
        || !index.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((sandbox, process, index.parse().ok()?))
}

fn lines(p: crate::config::error::Problems) -> TargetError {
    TargetError::Config(p.iter().map(|e| e.to_string()).collect())
}

/// The spec instance `name` runs, resolved from the config files as the
/// tree resolves it (its container config parsed by a confined child).
fn resolve(master: &Master, name: &str) -> Result<(InstanceSpec, Sandbox), TargetError> {
    let (sandbox, process, index) =
        parse_name(name).ok_or_else(|| TargetError::Name(name.to_string()))?;
    let sb_path = master.sandboxes_dir.join(format!("{sandbox}.yaml"));
    if !sb_path.exists() {
        return Err(TargetError::Config(vec![format!(
            "{}: no such sandbox {sandbox:?}",
            sb_path.display()
        )]));
    }
    let sb = Sandbox::load(master, &sb_path).map_err(lines)?;
    let procs = Processes::load(&sb.config_file).map_err(lines)?;
    let entry = procs.entries.get(process).ok_or_else(|| {
        TargetError::Config(vec![format!(
            "{}: no entry {process:?}",
            sb.config_file.display()
        )])
    })?;
    if !entry.kind.is_daemon() {
        return Err(TargetError::Config(vec![format!(
            "{}: {process:?} is a {:?}: cairn tree runs no instance of it",
            sb.config_file.display(),
            entry.kind
        )]));
    }
    let problems = crate::config::validate::entry(&entry.file, &sb, entry);
    if !problems.is_empty() {
        return Err(lines(problems));
    }
    // The tree's cache of parsed configs, if its runtime dir is there.
    let cache = match crate::sys::hostfs::HostDir::open(&master.runtime_dir, false) {
        Ok(Some(dir)) => Cache::in_dir(&dir),
        _ => Cache::none(),
    };
    let (file, cfg) = desired::load_container(&sb, entry, &cache).map_err(lines)?;
    let spec = InstanceSpec::resolve(master, &sb, entry, &cfg, &file, Which::Daemon(index))
        .map_err(lines)?;
    Ok((spec, sb))
}

/// Find instance `name`, check it runs the config its files give, and
/// that its pid 1 is the one its instance dir records, alive, in its
/// built container.
pub fn find(master: &Master, name: &str) -> Result<Target, TargetError> {
    hostdirs::refuse_unsafe(master, hostdirs::Scope::Command)
        .map_err(|e| TargetError::Tree(e.to_string()))?;
    let (spec, sandbox) = resolve(master, name)?;
    let not_running = |why: String| TargetError::NotRunning {
        instance: name.to_string(),
        why,
    };
    let tree_pid = match super::signal::running_tree(master) {
        Ok(pid) => Some(pid),
        Err(e) if e.contains("another pid namespace") => return Err(TargetError::Tree(e)),
        Err(_) => None,
    };
    let snap = match read_state(master) {
        Ok(s) => s,
        Err(_) if tree_pid.is_none() => {
            return Err(not_running(format!(
                "no cairn tree runs with runtime dir {}",
                master.runtime_dir.display()
            )));
        }
        Err(e) => return Err(TargetError::Tree(e)),
    };
    let listed = snap.instances.iter().find(|i| i.name == name);
    if tree_pid.is_some() {
        // The tree's word on its state, when it runs.
        match listed {
            None => return Err(not_running("the tree does not list it".into())),
            Some(i) if !matches!(i.state.as_str(), "running" | "starting") || i.pid.is_none() => {
                return Err(not_running(i.state.clone()));
            }
            Some(_) => {}
        }
    }
    let sys = |what, source| TargetError::Sys {
        instance: name.to_string(),
        what,
        source,
    };
    // The knot's own record: its host pid, start time and config hash.
    let dir = hostdirs::instance_at(&spec.host.state_dir)
        .ok_or_else(|| not_running(format!("no instance dir {}", spec.host.state_dir.display())))?;
    let rec = hostdirs::record(&dir, KNOT_FILE)
        .and_then(|b| KnotRecord::parse(&String::from_utf8_lossy(&b)))
        .ok_or_else(|| not_running(format!("no knot record in {}", dir.path().display())))?;
    if let Some(pid) = listed.and_then(|i| i.pid)
        && tree_pid.is_some()
        && pid != rec.pid
    {
        return Err(not_running(format!(
            "the tree lists pid {pid}, its knot record pid {}",
            rec.pid
        )));
    }
    let hash = spec.hash();
    if rec.hash != hash {
        return Err(TargetError::Changed {
            instance: name.to_string(),
            running: rec.hash,
            now: hash,
        });
    }
    // Hold pid 1 by a pidfd, then check it is the knot that wrote the
    // record (its start time) and that its root is the image (the
    // container is built and pivoted into); then that it has not been
    // reaped meanwhile, so /proc/PID was about this very process.
    let pid1 = pidfd::open(rec.pid).map_err(|e| not_running(e.to_string()))?;
    if proc::start_time(rec.pid) != Some(rec.ticks) {
        return Err(not_running(format!("its pid 1 ({}) is gone", rec.pid)));
    }
    let image = crate::image::open_image(&spec.image_dir, &spec.image)
        .map_err(|e| not_running(e.to_string()))?;
    let root = crate::sys::fd::dev_ino(image.as_fd()).map_err(|e| sys("image", e))?;
    let pid1_root = std::fs::metadata(format!("/proc/{}/root/", rec.pid))
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
        .map_err(|e| not_running(format!("/proc/{}/root: {e}", rec.pid)))?;
    if pid1_root != root {
        return Err(not_running(
            "its container is not built yet, or no longer (the root of its pid 1 is not its image)"
                .into(),
        ));
    }
    let userns = if spec.uid_map.is_empty() && spec.gid_map.is_empty() {
        None
    } else {
        Some(crate::tree::joining::instance_userns(&dir, rec.pid).map_err(not_running)?)
    };
    if !pidfd::alive(pid1.as_fd()) {
        return Err(not_running(format!("its pid 1 ({}) is gone", rec.pid)));
    }
    Ok(Target {
        spec,
        sandbox,
        pid1,
        pid1_pid: rec.pid,
        userns,
        root,
        cgroups: snap.cgroups,
        tree_pid,
    })
}

/// The tree's umask (what its workloads get), or 022.
pub fn workload_umask(tree_pid: Option<i32>) -> u32 {
    tree_pid.and_then(proc::umask_of).unwrap_or(0o022)
}
