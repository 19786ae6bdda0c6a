//! `cairn reload` (SIGHUP) and `cairn upgrade` (SIGQUIT) to the running tree.

use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::master::Master;
use crate::sys::fs as sfs;
use crate::sys::process;
use crate::tree::hostdirs;

/// The pid of the tree running with `master`'s runtime dir, as seen from
/// here: the holder of the pid file's lock (the kernel translates it into
/// our pid namespace; the number written in the file may be from another).
pub fn running_tree(master: &Master) -> Result<i32, String> {
    let path = master.pid_file();
    // Non-blocking, and only a regular file: a FIFO or a device in its
    // place must not hang the command.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|_| format!("no cairn tree runs (no {})", path.display()))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{}: not a regular file", path.display()));
    }
    match sfs::lock_holder(f.as_fd()).map_err(|e| format!("{}: {e}", path.display()))? {
        None => Err(format!("no cairn tree runs ({} is stale)", path.display())),
        Some(0) => Err(format!(
            "the cairn tree of {} runs in another pid namespace; run this command there",
            master.runtime_dir.display()
        )),
        Some(pid) => Ok(pid),
    }
}

pub fn send(master_path: &Path, sig: i32, what: &str) -> u8 {
    let master = match Master::load(master_path) {
        Ok(m) => m,
        Err(p) => {
            super::eprint_problems(&p);
            return 1;
        }
    };
    // The new image refuses dirs that are not root's alone and would
    // exit, leaving every workload unsupervised: say so before the exec.
    if sig == libc::SIGQUIT
        && let Err(e) = hostdirs::refuse_unsafe(&master, hostdirs::Scope::Tree)
    {
        eprintln!("cairn: {e}\ncairn: {what} not requested");
        return 1;
    }
    match running_tree(&master).and_then(|pid| {
        process::kill(pid, sig).map_err(|e| e.to_string())?;
        Ok(pid)
    }) {
        Ok(pid) => {
            println!("{what} requested (tree pid {pid})");
            0
        }
        Err(e) => {
            eprintln!("cairn: {}", crate::text::escape(&e));
            1
        }
    }
}
