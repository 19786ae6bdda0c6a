//! `cairn cmd SANDBOX NAME [ARG...]`: run a Command (or CommandOrDaemon)
//! entry in a fresh container and exit with its status.
//!
//! stdout and stderr go to the caller (or the container's
//! stdout-stderr-file); stdin is the caller's when the container config is
//! `interactive`, else /dev/null. Ctrl-C reaches the workload (it is in the
//! terminal's process group); TERM, HUP, USR1 and USR2 sent to `cairn cmd`
//! are passed on. Exit status: the workload's, 128+N if it died of signal
//! N, 125 if the container could not be set up, 126/127 if the executable
//! could not be run / was not found, 1 for a config error.

use std::os::fd::AsFd;
use std::path::Path;

use crate::config::error::ConfigError;
use crate::config::error::Problems;
use crate::config::master::Master;
use crate::config::process::Processes;
use crate::config::sandbox::Sandbox;
use crate::config::validate;
use crate::knot;
use crate::load::confined::Parser;
use crate::load::desired;
use crate::load::parsed::Cache;
use crate::protocol::{self, Context};
use crate::spec::{InstanceSpec, Which};
use crate::sys::cgroup;
use crate::sys::hostfs::HostDir;
use crate::sys::init_policy::{self, Action};
use crate::sys::process::{self, Exit};
use crate::sys::signal;
use crate::tree::hostdirs;

/// `cairn [GLOBAL] cmd [OPTIONS] SANDBOX NAME ARG...` and `cairn exec
/// [OPTIONS] SANDBOX/PROCESS.N CMD ARG...`: everything after NAME (after
/// the instance) is the workload's (the command's), even when it looks
/// like one of our options (`cairn cmd app shell -c id`, `cairn exec
/// box/web.0 ls -l`): a `--` is put there unless there is one already.
/// Any other command line is returned as it is.
pub fn workload_args_last(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(at) = argv.iter().position(|a| a == "cmd" || a == "exec") else {
        return argv;
    };
    // Options before the command are the top level's (none take a value).
    if argv[1..at]
        .iter()
        .any(|a| !a.to_string_lossy().starts_with('-'))
    {
        return argv;
    }
    // Positionals before the workload's words, and options with a value.
    let (before, with_value): (usize, &[&str]) = if argv[at] == "cmd" {
        (2, &["-c", "--config"])
    } else {
        (1, &["-c", "--config", "--user"])
    };
    let mut positional = 0;
    let mut i = at + 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy();
        if a == "--" {
            return argv;
        }
        if with_value.contains(&a.as_ref()) {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        positional += 1;
        i += 1;
        if positional == before {
            if i < argv.len() && argv[i] != "--" {
                argv.insert(i, "--".into());
            }
            return argv;
        }
    }
    argv
}

/// Exit status when the container could not be set up (as a knot's).
const SETUP_FAILED: u8 = protocol::SETUP_FAILED as u8;

pub fn run(master_path: &Path, sandbox: &str, name: &str, args: &[String]) -> u8 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "cairn cmd: must run as root (a container takes new namespaces, mounts and cgroups)"
        );
        return SETUP_FAILED;
    }
    match prepare(master_path, sandbox, name, args) {
        // `_state` holds the fd the context names until the knot is started.
        Ok((spec, mut ctx, _state, master)) => {
            // A command with tcp-ports gets its sockets like a daemon does
            // (bound here, kept until it ends).
            let mut sockets = crate::tree::sockets::Sockets::default();
            match sockets.for_spec(&spec) {
                Ok(list) => ctx.sockets = list,
                Err(e) => {
                    eprintln!("cairn cmd: {}", crate::text::escape(&e.to_string()));
                    return SETUP_FAILED;
                }
            }
            let code = execute(&spec, &ctx);
            remove_idle_root(&master, &ctx);
            code
        }
        Err(lines) => {
            // Problems quote the container config: an image's text.
            for line in lines {
                eprintln!("{}", crate::text::escape(&line));
            }
            1
        }
    }
}

fn prepare(
    master_path: &Path,
    sandbox: &str,
    name: &str,
    args: &[String],
) -> Result<(InstanceSpec, Context, HostDir, Master), Vec<String>> {
    let master = Master::load(master_path).map_err(lines)?;
    // The knot creates the instance's state dir as root: refuse dirs
    // anyone else could redirect, before anything starts, and make the
    // state and mount dirs, root's alone.
    let (runtime, state) = hostdirs::prepare_command(&master).map_err(|e| vec![e.to_string()])?;
    if !crate::config::is_safe_name(sandbox) {
        return Err(vec![format!("{sandbox:?} is not a sandbox name")]);
    }
    let sb_path = master.sandboxes_dir.join(format!("{sandbox}.yaml"));
    if !sb_path.exists() {
        return Err(vec![format!(
            "{}: no such sandbox {sandbox:?}",
            sb_path.display()
        )]);
    }
    let sb = Sandbox::load(&master, &sb_path).map_err(lines)?;
    let procs = Processes::load(&sb.config_file).map_err(lines)?;
    let entry = procs
        .entries
        .get(name)
        .ok_or_else(|| vec![format!("{}: no entry {name:?}", sb.config_file.display())])?;
    if !entry.kind.is_command() {
        return Err(vec![format!(
            "{}: {name:?} is a {:?}, not a Command; cairn tree runs it",
            sb.config_file.display(),
            entry.kind
        )]);
    }
    let problems = validate::entry(&entry.file, &sb, entry);
    if !problems.is_empty() {
        return Err(lines(problems));
    }
    let (file, bytes) = desired::read_container(&sb, entry).map_err(lines)?;
    // The same bytes parsed before (by a confined child) need no new child
    // (see `load::parsed`); else one parses them (`load::confined`), and
    // meanwhile we look up the host's cgroups, which do not depend on the
    // container config (a config error is still reported first).
    let cache = Cache::in_dir(&runtime);
    let detect = || {
        master
            .cgroup_name
            .as_ref()
            .map(|root| cgroup::detect_host(root, &master.cgroup_controllers))
    };
    let mut host_cgroups = None;
    let cfg = cache
        .parse(&bytes, || {
            let mut parser = Parser::start()
                .map_err(|e| Problems::from(ConfigError::new(&file, format!("cairn cmd: {e}"))))?;
            parser.send(&bytes);
            host_cgroups = Some(detect());
            parser.receive(&file)
        })
        .map_err(lines)?;
    let mut cfg = cfg;
    desired::with_secret_environ_file(&sb, entry, &mut cfg).map_err(lines)?;
    let host_cgroups = host_cgroups.unwrap_or_else(detect);
    validate::container(&file, &cfg, &sb, entry)
        .into_result(())
        .map_err(lines)?;
    let spec = InstanceSpec::resolve(
        &master,
        &sb,
        entry,
        &cfg,
        &file,
        Which::Command(process::getpid() as u32),
    )
    .map_err(lines)?;
    // A one-off command gets only the cgroups that limit it.
    let cgroups = match host_cgroups {
        Some(all) => {
            let all = all.map_err(|e| vec![e.to_string()])?;
            let l = knot::limits(&spec, &all);
            if l.memory.is_some() && !all.supports("memory")
                || spec.limits.pids.is_some() && !all.supports("pids")
            {
                Some(all) // the knot reports which controller is missing
            } else {
                Some(all.limiting(&l))
            }
        }
        None => None,
    };
    let ctx = Context {
        ready_pipe: None,
        notify_socket: None,
        cgroups,
        sockets: Vec::new(),
        term: std::env::var("TERM").unwrap_or_else(|_| "dumb".into()),
        extra_args: args.to_vec(),
        ready: None,
        hash: String::new(),
        supervised: false,
        tree_pid: None,
        parent_pipe: None,
        host_netns: None,
        leaf_ready: false,
        init_fd: None,
        stdio_dir_fd: None,
        state_dir_fd: Some(std::os::fd::AsRawFd::as_raw_fd(&state.fd())),
        oom_score_adj: crate::sys::proc::oom_score_adj().unwrap_or(-1),
        seccomp: None,
    };
    Ok((spec, ctx, state, master))
}

/// Each problem on a line of its own (raw; escaped where printed).
fn lines(p: Problems) -> Vec<String> {
    p.iter().map(|e| e.to_string()).collect()
}

/// Run the knot, pass signals on, clean up, return its status.
fn execute(spec: &InstanceSpec, ctx: &Context) -> u8 {
    let old_mask = match signal::block_all_signals() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cairn cmd: {e}");
            return SETUP_FAILED;
        }
    };
    let sigfd = match signal::signalfd_all() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cairn cmd: {e}");
            return SETUP_FAILED;
        }
    };
    // The knot dies with us (see Context::parent_pipe).
    let (alive_r, _alive_w) = match crate::sys::fd::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cairn cmd: {e}");
            return SETUP_FAILED;
        }
    };
    // cairn-init, which the workload's start goes through (the host binary
    // must not be what /proc/self/exe names while it execs).
    let init = match crate::sys::embedded::init_memfd() {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "cairn cmd: {e} (cairn-init runs from a memfd; a host with vm.memfd_noexec = 2 forbids that)"
            );
            return SETUP_FAILED;
        }
    };
    let mut ctx = ctx.clone();
    // The one start of this process: compiled once, here.
    ctx.seccomp = match protocol::filter(spec, &mut Default::default()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cairn cmd: {}: {}", spec.name, crate::text::escape(&e));
            return SETUP_FAILED;
        }
    };
    ctx.parent_pipe = Some(std::os::fd::AsRawFd::as_raw_fd(&alive_r));
    ctx.init_fd = init.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let ctx = &ctx;
    let pid = match knot::spawn(spec, ctx) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cairn cmd: {}", crate::text::escape(&e.to_string()));
            return SETUP_FAILED;
        }
    };
    let exit = wait_knot(pid, &sigfd);
    cleanup(spec, ctx);
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&old_mask),
        None,
    );
    match exit {
        Exit::Code(c) => c.clamp(0, 255) as u8,
        Exit::Signal(s) => (128 + s).clamp(0, 255) as u8,
    }
}

fn wait_knot(pid: i32, sigfd: &std::os::fd::OwnedFd) -> Exit {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::NONE);
        while let Ok(Some(si)) = signal::read_signal(sigfd.as_fd()) {
            // The knot is in our process group: a key typed at the
            // terminal reached it (and, when interactive, the workload)
            // already.
            match init_policy::on_signal(si.signo as u32, si.code, true) {
                Action::Reap => {
                    while let Some((p, exit)) = process::reap_any() {
                        if p == pid {
                            return exit;
                        }
                    }
                }
                Action::Forward => {
                    let _ = process::kill(pid, si.signo);
                }
                Action::Ignore => {}
            }
        }
    }
}

/// Remove the command's cgroup and state dir.
/// With no tree running, the cgroup root (`cgroup-name`) this command made
/// in each hierarchy is removed once empty: a command leaves no cgroup
/// behind. (rmdir(2) of a cgroup with children or processes fails, so a
/// root anything else uses stays; a tree that starts later makes it again.)
fn remove_idle_root(master: &Master, ctx: &Context) {
    let Some(cg) = &ctx.cgroups else { return };
    match super::signal::running_tree(master) {
        Err(e) if !e.contains("another pid namespace") => {}
        _ => return,
    }
    for h in &cg.hierarchies {
        let _ = std::fs::remove_dir(h.dir(&cg.root, None));
    }
}

fn cleanup(spec: &InstanceSpec, ctx: &Context) {
    if let (Some(cg), Some(leaf)) = (&ctx.cgroups, &spec.host.cgroup)
        && let Err(e) = cg.destroy(leaf)
    {
        eprintln!("cairn cmd: cleaning up cgroup {leaf}: {e}");
    }
    let _ = std::fs::remove_dir_all(&spec.host.state_dir);
}

#[cfg(test)]
mod tests {
    use super::workload_args_last;

    fn run(args: &[&str]) -> Vec<String> {
        workload_args_last(args.iter().map(|a| a.into()).collect())
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn everything_after_name_is_the_workloads() {
        assert_eq!(
            run(&["cairn", "cmd", "app", "shell", "-c", "id"]),
            ["cairn", "cmd", "app", "shell", "--", "-c", "id"]
        );
        assert_eq!(
            run(&["cairn", "cmd", "-c", "/m.yaml", "app", "shell", "-c", "id"]),
            [
                "cairn", "cmd", "-c", "/m.yaml", "app", "shell", "--", "-c", "id"
            ]
        );
        assert_eq!(
            run(&["cairn", "cmd", "--config", "/m", "app", "shell", "x"]),
            ["cairn", "cmd", "--config", "/m", "app", "shell", "--", "x"]
        );
        // Already there, or nothing after NAME: unchanged.
        assert_eq!(
            run(&["cairn", "cmd", "app", "shell", "--", "-c"]),
            ["cairn", "cmd", "app", "shell", "--", "-c"]
        );
        assert_eq!(
            run(&["cairn", "cmd", "app", "shell"]),
            ["cairn", "cmd", "app", "shell"]
        );
        // exec: after the instance; --user takes a value.
        assert_eq!(
            run(&["cairn", "exec", "box/web.0", "ls", "-l"]),
            ["cairn", "exec", "box/web.0", "--", "ls", "-l"]
        );
        assert_eq!(
            run(&[
                "cairn",
                "exec",
                "--user",
                "1001",
                "-t",
                "box/web.0",
                "sh",
                "-c",
                "id"
            ]),
            [
                "cairn",
                "exec",
                "--user",
                "1001",
                "-t",
                "box/web.0",
                "--",
                "sh",
                "-c",
                "id"
            ]
        );
        assert_eq!(
            run(&["cairn", "exec", "-c", "/m", "box/web.0", "--", "ls"]),
            ["cairn", "exec", "-c", "/m", "box/web.0", "--", "ls"]
        );
        // Other commands are not touched.
        assert_eq!(run(&["cairn", "ps", "-c", "x"]), ["cairn", "ps", "-c", "x"]);
        assert_eq!(
            run(&["cairn", "check", "--sandbox", "cmd"]),
            ["cairn", "check", "--sandbox", "cmd"]
        );
    }
}
