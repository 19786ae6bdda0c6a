//! `cairn ps --watch`: the state once, as `ps` shows it, then one line
//! (or one JSON object) per change as the tree publishes it.
//!
//! No polling: the tree replaces `state.json` by rename(2) when something
//! changed (batched, at most every `FLUSH_INTERVAL`), and inotify tells us
//! of each rename into the runtime dir, so we read the state exactly as
//! often as the tree writes it. The tree's end is seen on a pidfd (it
//! becomes readable when the tree exits; an in-place upgrade execs in the
//! same process and keeps the pid file lock, so the watch goes on), or,
//! for a tree in another pid namespace whose pid we cannot see, from the
//! pid file lock, looked at again whenever a writer of `tree.pid` closes
//! it (the tree's own fd closes when it dies). SIGINT and SIGTERM end the
//! watch with 0; the tree's end with 1.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::SystemTime;

use super::ps::{Filter, read_state, show};
use super::ps_changes::{Change, Subject, What, diff, keeps, line, to_json};
use crate::config::master::Master;
use crate::sys::event::Poller;
use crate::sys::inotify::{self, Inotify};
use crate::text::{self, escape};
use crate::tree::state::{STATE_FILE, Snapshot};

const STATE: u64 = 0;
const TREE: u64 = 1;
const SIGNAL: u64 = 2;

/// Where the output goes, and how its failure ends the watch.
struct Out {
    json: bool,
    width: usize,
}

/// The watch ends with this exit status.
type End = u8;

impl Out {
    /// Print `text`; a reader that went away (`ps --watch | head`) ends
    /// the watch quietly, with 0.
    fn print(&self, text: &str) -> Result<(), End> {
        let mut o = std::io::stdout().lock();
        match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(0),
            Err(e) => {
                eprintln!("cairn ps: stdout: {e}");
                Err(1)
            }
        }
    }

    fn changes(&self, changes: &[Change], filter: &Filter<'_>, at: SystemTime) -> Result<(), End> {
        let mut text = String::new();
        for c in changes.iter().filter(|c| keeps(filter, c)) {
            if self.json {
                text.push_str(&text::json(&to_json(c, at).to_string()));
            } else {
                text.push_str(&line(c, at, self.width));
            }
            text.push('\n');
        }
        if text.is_empty() {
            return Ok(());
        }
        self.print(&text)
    }
}

/// The tree we follow: its pid as seen here (0 when it runs in another pid
/// namespace) and, when we can see it, a pidfd of it.
struct Followed {
    pid: i32,
    pidfd: Option<OwnedFd>,
}

/// The tree that holds the pid file lock now, or why there is none.
fn follow(master: &Master) -> Result<Followed, String> {
    match super::signal::running_tree(master) {
        Ok(pid) => {
            let pidfd = crate::sys::pidfd::open(pid).map_err(|e| e.to_string())?;
            // The lock holder may have ended, and its pid been reused,
            // between the two: still the holder, the pidfd is the tree's.
            match super::signal::running_tree(master) {
                Ok(again) if again == pid => Ok(Followed {
                    pid,
                    pidfd: Some(pidfd),
                }),
                Ok(other) => Err(format!("the tree changed (pid {pid}, then {other})")),
                Err(e) => Err(e),
            }
        }
        Err(e) if e.contains("another pid namespace") => Ok(Followed {
            pid: 0,
            pidfd: None,
        }),
        Err(e) => Err(e),
    }
}

pub fn run(master_path: &std::path::Path, json: bool, filter: &Filter<'_>) -> u8 {
    let master = match super::ps::load(master_path) {
        Ok(m) => m,
        Err(code) => return code,
    };
    match watch(&master, json, filter) {
        Ok(never) => match never {},
        Err(code) => code,
    }
}

fn fail(what: impl std::fmt::Display) -> End {
    eprintln!("cairn ps: {}", escape(&what.to_string()));
    1
}

fn watch(
    master: &Master,
    json: bool,
    filter: &Filter<'_>,
) -> Result<std::convert::Infallible, End> {
    // INT and TERM from here on end the watch with 0 (read below).
    let signals = crate::sys::signal::signalfd_of(&[libc::SIGINT, libc::SIGTERM]).map_err(fail)?;
    // Watch before the first read: a state written between the read and
    // the watch would otherwise go unseen until the next one.
    let ino = Inotify::new().map_err(fail)?;
    let mask = inotify::MOVED_TO
        | inotify::CLOSE_WRITE
        | inotify::DELETE
        | inotify::DELETE_SELF
        | inotify::MOVE_SELF;
    if let Err(e) = ino.watch_dir(&master.runtime_dir, mask) {
        // No runtime dir: say it as `ps` does (no state.json).
        match read_state(master) {
            Err(why) => eprintln!("{why}"),
            Ok(_) => eprintln!("cairn ps: {}", escape(&e.to_string())),
        }
        return Err(1);
    }
    // A tree that ended, or was replaced, between two looks at its lock
    // is looked at again.
    let mut tree = follow(master);
    for _ in 0..2 {
        if tree.is_ok() || super::ps::tree_gone(master).is_some() {
            break;
        }
        tree = follow(master);
    }
    let tree = match tree {
        Ok(t) => t,
        // Not running: the last state, and why, as `ps` says it; 1.
        Err(_) if super::ps::tree_gone(master).is_some() => {
            return Err(super::ps::once(master, json, filter));
        }
        Err(e) => return Err(fail(e)),
    };
    let mut snap = read_state(master).map_err(|e| {
        eprintln!("{e}");
        1
    })?;
    let out = Out {
        json,
        width: super::ps_text::name_width(&snap),
    };
    out.print(&show(snap.clone(), true, json, filter))?;

    let poller = Poller::new().map_err(fail)?;
    poller.add(ino.as_fd(), STATE).map_err(fail)?;
    poller.add(signals.as_fd(), SIGNAL).map_err(fail)?;
    if let Some(fd) = &tree.pidfd {
        poller.add(fd.as_fd(), TREE).map_err(fail)?;
    }
    let pid_file = master.pid_file();
    let pid_file = pid_file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut ready = Vec::new();
    loop {
        poller.wait(None, &mut ready).map_err(fail)?;
        if ready.contains(&SIGNAL) {
            return Err(0);
        }
        let (mut look, mut check_tree) = (false, ready.contains(&TREE));
        let mut dir_gone = false;
        if ready.contains(&STATE) {
            for ev in ino.read().map_err(fail)? {
                if ev.mask & inotify::Q_OVERFLOW != 0 {
                    (look, check_tree) = (true, true);
                }
                look |= ev.is(STATE_FILE);
                // A writer of tree.pid closed it (the tree's fd closes
                // when it dies), or the runtime dir itself went away.
                check_tree |= ev.is(pid_file);
                if ev.name.is_none()
                    && ev.mask & (inotify::DELETE_SELF | inotify::MOVE_SELF | inotify::IGNORED) != 0
                {
                    (check_tree, dir_gone) = (true, true);
                }
            }
        }
        if look {
            snap = changed(master, snap, &out, filter)?;
        }
        if check_tree && let Some(why) = ended(master, &tree, ready.contains(&TREE)) {
            let end = Change {
                subject: Subject::Tree,
                what: What::Ended {
                    pid: if tree.pid > 0 {
                        tree.pid
                    } else {
                        snap.tree.pid
                    },
                    why,
                },
            };
            out.changes(&[end], filter, SystemTime::now())?;
            return Err(1);
        }
        if dir_gone {
            eprintln!(
                "cairn ps: {}: removed or moved while the tree runs: its changes cannot be seen any more",
                text::path(&master.runtime_dir)
            );
            return Err(1);
        }
    }
}

/// The state was replaced: print what changed; the new state. A state
/// that cannot be read (removed by a tree that stopped, whose end follows)
/// leaves the last one in place.
fn changed(
    master: &Master,
    snap: Snapshot,
    out: &Out,
    filter: &Filter<'_>,
) -> Result<Snapshot, End> {
    let now = SystemTime::now();
    match read_state(master) {
        Ok(new) => {
            out.changes(&diff(&snap, &new), filter, now)?;
            Ok(new)
        }
        Err(e) => {
            if std::fs::symlink_metadata(master.state_file()).is_ok() {
                eprintln!("{e}");
            }
            Ok(snap)
        }
    }
}

/// Whether the followed tree is gone, and why: its pidfd became readable,
/// or (not seen from here) no one holds the pid file lock, or another
/// tree does.
fn ended(master: &Master, tree: &Followed, pidfd_ready: bool) -> Option<String> {
    if tree.pidfd.is_some() && !pidfd_ready {
        return None;
    }
    let why = match super::signal::running_tree(master) {
        Ok(pid) => return Some(format!("a new tree runs (pid {pid})")),
        Err(e) if e.contains("another pid namespace") && tree.pidfd.is_none() => return None,
        Err(e) => e,
    };
    // A tree that stopped (SIGTERM) removes its state once every instance
    // stopped; one that was killed leaves it, and its instances run on.
    Some(match std::fs::symlink_metadata(master.state_file()) {
        Err(_) => "it stopped every instance and exited".to_string(),
        Ok(_) => format!("{why}; its instances may run on, for a new tree to adopt"),
    })
}
