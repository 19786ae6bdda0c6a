//! Container configs are untrusted, so the tree never reads or parses one
//! in its own address space (DESIGN.md invariant 3). A short-lived reader
//! child reads each file (privileged, as images need not be readable by
//! nobody), has it parsed by a confined child of its own (`confined`),
//! validates the answer, and sends one JSON line per entry back through a
//! pipe. If the reader dies or hangs on an entry (a hung file system under
//! an image), that entry fails with the reason and a new reader carries on
//! with the rest: a bad config costs only the instances that name it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};

use crate::config::container::ContainerConfig;
use crate::config::error::{ConfigError, Problems};
use crate::config::process::ProcessEntry;
use crate::config::sandbox::Sandbox;
use crate::sys::process::{self, Exit};
use crate::sys::signal;

use super::desired::{self, ContainerLoader};

/// How long one entry may take (read and parse) before its reader is
/// killed. The same as `confined::TIMEOUT`: a parse that hangs ends the
/// same way whichever of the two notices first.
pub const ENTRY_TIMEOUT: Duration = super::confined::TIMEOUT;

/// One result line from the child.
#[derive(Serialize, Deserialize)]
struct Line {
    index: usize,
    result: Result<(String, ContainerConfig), Problems>,
}

/// Results by (sandbox, process).
pub type Results = BTreeMap<(String, String), Result<(String, ContainerConfig), Problems>>;

/// Parse the container configs of `jobs` in child processes.
/// Parses kept from earlier loads come from `cache` (see `parsed`).
pub fn load_all(jobs: &[(&Sandbox, &ProcessEntry)], cache: &super::parsed::Cache) -> Results {
    let mut out = Results::new();
    let mut next = 0;
    while next < jobs.len() {
        match run_child(&jobs[next..], cache) {
            Ok((lines, stop)) => {
                let done = lines.len();
                for l in lines {
                    let (s, e) = jobs[next + l.index];
                    out.insert((s.name.clone(), e.name.clone()), l.result);
                }
                next += done;
                if let Some(why) = stop
                    && next < jobs.len()
                {
                    // The entry the child was on when it died is the culprit.
                    let (s, e) = jobs[next];
                    let file = desired::config_display(s, e);
                    out.insert(
                        (s.name.clone(), e.name.clone()),
                        Err(
                            ConfigError::new(file, format!("reading this config failed: {why}"))
                                .into(),
                        ),
                    );
                    next += 1;
                }
            }
            Err(why) => {
                // Could not even start a child: fail what is left.
                for (s, e) in &jobs[next..] {
                    let file = desired::config_display(s, e);
                    out.insert(
                        (s.name.clone(), e.name.clone()),
                        Err(ConfigError::new(
                            file,
                            format!("cannot start the config reader: {why}"),
                        )
                        .into()),
                    );
                }
                break;
            }
        }
    }
    out
}

/// Run one child over `jobs`; returns the lines it produced and, if it
/// stopped early, why.
fn run_child(
    jobs: &[(&Sandbox, &ProcessEntry)],
    cache: &super::parsed::Cache,
) -> Result<(Vec<Line>, Option<String>), String> {
    let (r, w) = crate::sys::fd::pipe().map_err(|e| e.to_string())?;
    let pid = match process::fork().map_err(|e| e.to_string())? {
        None => {
            drop(r);
            child(jobs, cache, w);
        }
        Some(pid) => pid,
    };
    drop(w);
    let mut reader = BufReader::new(std::fs::File::from(r));
    let mut lines = Vec::new();
    let mut stop = None;
    let mut deadline = Instant::now() + ENTRY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            stop = Some(format!(
                "took longer than {} s; stopped",
                ENTRY_TIMEOUT.as_secs()
            ));
            break;
        }
        // Only poll when nothing is buffered already.
        if reader.buffer().is_empty() {
            let mut fds = [PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN)];
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE),
            ) {
                Ok(0) => continue,
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => {
                    stop = Some(format!("poll: {e}"));
                    break;
                }
            }
        }
        let mut text = String::new();
        match reader.read_line(&mut text) {
            Ok(0) => break, // EOF: the child is done (or dead)
            Ok(_) => match serde_json::from_str::<Line>(&text) {
                Ok(l) if l.index == lines.len() => {
                    lines.push(l);
                    deadline = Instant::now() + ENTRY_TIMEOUT;
                }
                _ => {
                    stop = Some("the reader sent garbage".into());
                    break;
                }
            },
            Err(e) => {
                stop = Some(format!("read: {e}"));
                break;
            }
        }
    }
    if stop.is_some() {
        let _ = process::kill(pid, libc::SIGKILL);
    }
    let exit = process::wait_for(pid).map_err(|e| e.to_string())?;
    if stop.is_none() && lines.len() < jobs.len() {
        stop = Some(match exit {
            Exit::Signal(libc::SIGXCPU) | Exit::Signal(libc::SIGKILL) => {
                "the reader ran out of CPU time or was killed".into()
            }
            Exit::Signal(s) => {
                format!("the reader crashed (signal {s}); the file is probably hostile")
            }
            Exit::Code(c) => {
                format!("the reader failed (exit {c}); the file is probably hostile or too large")
            }
        });
    }
    Ok((lines, stop))
}

/// The reader child: one line per entry. It reads as the tree does (root)
/// and parses nothing itself: `desired::load_container` hands the bytes to
/// a confined parser.
fn child(
    jobs: &[(&Sandbox, &ProcessEntry)],
    cache: &super::parsed::Cache,
    w: std::os::fd::OwnedFd,
) -> ! {
    // A crash must not run the tree's re-exec handler; the tree's blocked
    // signals must not stay blocked; a reader must not outlive the tree.
    crate::sys::crash::reset_fatal();
    if signal::unblock_all_ignore_sigpipe().is_err()
        || process::set_pdeathsig(libc::SIGKILL).is_err()
    {
        process::exit_now(4);
    }
    // Quiet: a panic message would go to the tree's log as noise; the
    // parent reports the failure with the file name instead.
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = std::io::BufWriter::new(std::fs::File::from(w));
    for (index, (s, e)) in jobs.iter().enumerate() {
        let result = std::panic::catch_unwind(|| desired::load_container(s, e, cache))
            .unwrap_or_else(|_| {
                Err(ConfigError::new(
                    desired::config_display(s, e),
                    "the config reader panicked on this file",
                )
                .into())
            });
        let line = Line { index, result };
        let ok = serde_json::to_writer(&mut out, &line).is_ok()
            && out.write_all(b"\n").is_ok()
            && out.flush().is_ok();
        if !ok {
            process::exit_now(3);
        }
    }
    process::exit_now(0)
}

/// A loader that answers from results fetched beforehand.
pub struct Prefetched(pub Results);

impl ContainerLoader for Prefetched {
    fn load(
        &mut self,
        s: &Sandbox,
        e: &ProcessEntry,
    ) -> Result<(String, ContainerConfig), Problems> {
        self.0
            .remove(&(s.name.clone(), e.name.clone()))
            .unwrap_or_else(|| {
                Err(ConfigError::new(desired::config_display(s, e), "not read").into())
            })
    }
}
