//! Asking the running tree and waiting: `reload --wait`, `upgrade
//! --wait`, `switch --wait` and `restart [--wait]`. The command writes a
//! request into `<runtime-dir>/requests/` and signals the tree
//! (`tree::requests`); the tree's answer comes once state.json shows what
//! was asked, so from then on state.json tells how it goes (`wait`).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::master::Master;
use crate::sys::hostfs::HostDir;
use crate::sys::process;
use crate::text::escape;
use crate::tree::hostdirs;
use crate::tree::request::{self, Kind, Reply, Request};

use super::wait::{Scope, Verdict, verdict};

/// `--timeout` when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How often state.json is read again (the tree writes it at most every
/// 50 ms, 5 ms after a change: `tree::state::flush_due`).
const POLL: Duration = Duration::from_millis(100);
/// The exit status of a wait that timed out (as timeout(1)).
pub const TIMED_OUT: u8 = 124;

/// The `--timeout` value: seconds, 0 for no limit.
pub fn timeout_of(secs: Option<f64>) -> Option<Duration> {
    match secs {
        None => Some(DEFAULT_TIMEOUT),
        Some(s) if s <= 0.0 => None,
        Some(s) => Some(Duration::from_secs_f64(s)),
    }
}

/// `cairn reload --wait`, `cairn upgrade --wait`, `cairn restart`.
pub fn run(
    master_path: &Path,
    kind: Kind,
    target: Option<&str>,
    wait: bool,
    timeout: Option<Duration>,
) -> u8 {
    let master = match Master::load(master_path) {
        Ok(m) => m,
        Err(p) => {
            super::eprint_problems(&p);
            return 1;
        }
    };
    // The new image refuses dirs that are not root's alone and would
    // exit, leaving every workload unsupervised: say so before the exec.
    if kind == Kind::Upgrade
        && let Err(e) = hostdirs::refuse_unsafe(&master, hostdirs::Scope::Tree)
    {
        eprintln!("cairn: {e}\ncairn: upgrade not requested");
        return 1;
    }
    let scope = match (kind, target) {
        (Kind::Restart, Some(t)) => Scope::restart(t),
        _ => Scope::all(),
    };
    let what = match target {
        Some(t) => format!("{} of {}", kind.as_str(), escape(t)),
        None => kind.as_str().to_string(),
    };
    ask(&master, kind, target, wait.then_some(scope), timeout, &what)
}

/// Write the request, signal the tree, wait for its answer and, with a
/// `wait` scope, until that scope is done. The exit status: 0 done, 1
/// refused or failed (the reasons on stderr), 124 timed out.
pub fn ask(
    master: &Master,
    kind: Kind,
    target: Option<&str>,
    wait: Option<Scope>,
    timeout: Option<Duration>,
    what: &str,
) -> u8 {
    let started = Instant::now();
    let fail = |e: &str| {
        eprintln!("cairn: {}", escape(e));
        1
    };
    let pid = match super::signal::running_tree(master) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let dir = match requests_dir(master) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("{}.{}-{nanos}", kind.as_str(), std::process::id());
    let req = Request {
        target: target.map(str::to_string),
    };
    if let Err(e) = dir.write_atomic(&name, false, |w| {
        serde_json::to_writer(w, &req).map_err(std::io::Error::other)
    }) {
        return fail(&e.to_string());
    }
    if let Err(e) = process::kill(pid, kind.signal()) {
        let _ = dir.remove(&name);
        return fail(&e.to_string());
    }
    let timed_out = || timeout.is_some_and(|t| started.elapsed() >= t);
    let limit = timeout.map_or(0.0, |t| t.as_secs_f64());
    // The answer: the request was handled, and state.json shows it.
    let reply_name = format!("{name}{}", request::REPLY);
    let reply: Reply = loop {
        match dir.read_trusted(&reply_name, 64 << 10) {
            Ok(Some(b)) => {
                let _ = dir.remove(&reply_name);
                match serde_json::from_slice(&b) {
                    Ok(r) => break r,
                    Err(e) => return fail(&format!("{reply_name}: {e}")),
                }
            }
            Ok(None) => {}
            Err(e) => return fail(&e.to_string()),
        }
        if let Err(e) = super::signal::running_tree(master) {
            let _ = dir.remove(&name);
            return fail(&format!("{what}: the tree is gone ({e})"));
        }
        if timed_out() {
            let _ = dir.remove(&name);
            eprintln!(
                "cairn: {what}: no answer from the tree (pid {pid}) within {limit} s \
                 (a tree older than this command does not answer; see `cairn ps`)"
            );
            return TIMED_OUT;
        }
        std::thread::sleep(POLL.min(Duration::from_millis(20)));
    };
    if let Some(e) = reply.error {
        return fail(&format!("{what}: {e}"));
    }
    let Some(scope) = wait else {
        println!("{what} requested (tree pid {pid})");
        return 0;
    };
    loop {
        let left = match super::ps::read_state(master) {
            Ok(snap) => match verdict(&snap, &scope) {
                Verdict::Done(n) => {
                    println!(
                        "{what} done: {n} instances run their wanted config and are ready \
                         (tree pid {pid})"
                    );
                    return 0;
                }
                Verdict::Failed(lines) => {
                    for l in lines {
                        eprintln!("{l}");
                    }
                    eprintln!("cairn: {what} failed");
                    return 1;
                }
                Verdict::Pending(lines) => lines,
            },
            Err(e) => vec![e],
        };
        if let Err(e) = super::signal::running_tree(master) {
            return fail(&format!("{what}: the tree is gone ({e})"));
        }
        if timed_out() {
            eprintln!("cairn: {what}: timed out after {limit} s; still under way:");
            for l in left {
                eprintln!("  {l}");
            }
            return TIMED_OUT;
        }
        std::thread::sleep(POLL);
    }
}

/// The tree's requests dir, checked as the tree checks its dirs (root's
/// alone, from `/` down, no symlink of another user on the way).
fn requests_dir(master: &Master) -> Result<HostDir, String> {
    let shown = master.runtime_dir.join(request::DIR);
    let runtime = HostDir::open(&master.runtime_dir, false)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no cairn tree runs (no {})", master.runtime_dir.display()))?;
    runtime
        .sub(Path::new(request::DIR), None)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{}: missing: the running tree takes no requests (older than this \
                 command?); use the command without --wait",
                shown.display()
            )
        })
}
