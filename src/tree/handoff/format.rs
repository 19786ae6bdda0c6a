//! The hand-off's format: a header line (`Handoff`), then one line per
//! instance (`HInstance`), JSON, in a memfd; its version; writing it, and
//! reading it back one instance at a time.

use super::super::rollout::Halt;
use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use crate::protocol::ExitRecord;
use crate::spec::InstanceSpec;

use super::super::lifecycle::State;
use super::super::sockets::SocketKey;
use super::super::state::{Counters, LastExit};
use super::ENV;

/// The version of the hand-off this cairn writes, and the newest it reads.
/// 1: every cairn before versions (no `version` key). 2: `version`, an
/// instance's `leaf_ready`, the tree's `retiring`, `logged_hash` and
/// `died_away`, and states that are checked (an instance in a state this
/// cairn does not know is not read as `backoff` but adopted afresh).
/// Bump it whenever a field changes meaning or a reader must not ignore a
/// new one: a newer hand-off is refused, and the instances are adopted
/// from the cgroups and state dirs instead (`recover`).
pub const VERSION: u32 = 2;

/// Every field of `Instance` that `upgrade` hands over (see the exhaustive
/// destructuring there: a new field of `Instance` does not compile until
/// it is handed over or said not to be).
#[derive(Serialize, Deserialize)]
pub(super) struct HInstance {
    pub(super) spec: InstanceSpec,
    pub(super) hash: String,
    /// The restart generation it was started as.
    #[serde(default)]
    pub(super) generation: u64,
    pub(super) state: State,
    pub(super) pid: Option<i32>,
    pub(super) start_ticks: Option<u64>,
    pub(super) pidfd: Option<i32>,
    pub(super) ready_fd: Option<i32>,
    pub(super) started_ago_ms: Option<u64>,
    pub(super) deadline_in_ms: Option<u64>,
    pub(super) failures: u32,
    pub(super) stop_requested: bool,
    pub(super) killed: bool,
    pub(super) spawns: u32,
    pub(super) last_exit: Option<LastExit>,
    pub(super) replacing: bool,
    pub(super) fresh_replacement: bool,
    pub(super) pending: Option<(InstanceSpec, String)>,
    pub(super) error: Option<String>,
    pub(super) drop_state: bool,
    pub(super) since_unix_ms: u64,
    #[serde(default)]
    pub(super) leaf_ready: bool,
    /// Starting, its program runs, waiting to be ready.
    #[serde(default)]
    pub(super) execd: bool,
    /// `ready: !Fd`: the read end of the workload's readiness pipe.
    #[serde(default)]
    pub(super) probe_pipe_fd: Option<i32>,
    /// `ready: !Fd`: the newline came before the exec was reported.
    #[serde(default)]
    pub(super) probe_seen: bool,
    /// `ready: !Notify`: the socket of the running start and its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) notify: Option<super::super::sdnotify::HNotify>,
}

/// The hand-off: this header on the first line, then one line per
/// instance (`follow` of them), so the new image restores instances one at
/// a time instead of first building a list of them all (that list and its
/// growth left the heap of a 1000-instance tree 1.5 MiB bigger after every
/// upgrade). A hand-off from an older cairn has no `follow` and carries
/// its instances in `instances`.
#[derive(Serialize, Deserialize)]
pub struct Handoff {
    /// `VERSION` (absent, 1, before there were versions).
    #[serde(default = "version_one")]
    pub(super) version: u32,
    pub(super) lock_fd: i32,
    pub(super) started_unix_ms: u64,
    pub(super) upgrades: u32,
    pub(super) reloads: u32,
    /// CLOCK_MONOTONIC when the upgrade began (for the measurement).
    pub(super) began_ns: u64,
    #[serde(default)]
    pub(super) instances: Vec<HInstance>,
    #[serde(default)]
    pub(super) follow: u32,
    pub(super) sockets: Vec<(SocketKey, i32)>,
    pub(super) counters: Vec<((String, String), Counters)>,
    pub(super) unknown_children: u64,
    pub(super) shutting_down: bool,
    /// Knots that reported their end and are still tearing down.
    #[serde(default)]
    pub(super) retiring: Vec<i32>,
    /// The config hash each instance's config log last named.
    #[serde(default)]
    pub(super) logged_hash: Vec<(String, String)>,
    /// Exits of knots that died while no tree ran, not yet reported.
    #[serde(default)]
    pub(super) died_away: Vec<(String, ExitRecord, Option<String>)>,
    /// Stopped rollouts (`tree::rollout`).
    #[serde(default)]
    pub(super) halted: Vec<((String, String), Halt)>,
    /// Restart generations wanted (`cairn restart`), by instance.
    #[serde(default)]
    pub(super) generations: Vec<(String, u64)>,
    /// Answers to requests not yet written (`tree::requests`): the upgrade
    /// requests themselves, answered by the new image.
    #[serde(default)]
    pub(super) replies: Vec<(String, super::super::request::Reply)>,
}

fn version_one() -> u32 {
    1
}

/// Why a hand-off could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// The memfd that carries it.
    #[error("{0}")]
    Memfd(crate::sys::Error),
    #[error("hand-off: {0}")]
    Encode(serde_json::Error),
    #[error("hand-off: {0}")]
    Write(std::io::Error),
    #[error("hand-off fd {fd}: {source}")]
    Fd { fd: i32, source: crate::sys::Error },
    #[error("hand-off: {0}")]
    Read(std::io::Error),
    #[error("hand-off: {0}")]
    Decode(serde_json::Error),
    #[error("hand-off: version {0} is not one this cairn reads (1 to {VERSION}); not reading it")]
    Version(u32),
    #[error("pid file lock: {0}")]
    Lock(crate::sys::Error),
}

/// Just the version of a hand-off, read before anything else of it.
#[derive(Deserialize)]
struct Versioned {
    #[serde(default = "version_one")]
    version: u32,
}

pub(super) fn write_memfd(h: &Handoff, instances: &[HInstance]) -> Result<OwnedFd, HandoffError> {
    let fd = crate::sys::fd::memfd("cairn-handoff").map_err(HandoffError::Memfd)?;
    let mut f = std::fs::File::from(fd);
    // One write: serde_json writes in small pieces, each a system call on
    // an unbuffered file.
    let mut bytes = serde_json::to_vec(h).map_err(HandoffError::Encode)?;
    for i in instances {
        bytes.push(b'\n');
        serde_json::to_writer(&mut bytes, i).map_err(HandoffError::Encode)?;
    }
    bytes.push(b'\n');
    f.write_all(&bytes).map_err(HandoffError::Write)?;
    f.rewind().map_err(HandoffError::Write)?;
    Ok(OwnedFd::from(f))
}

/// A hand-off read back: its header, and the text whose lines from
/// `rest` on are its instances.
pub struct Taken {
    pub(super) head: Handoff,
    pub(super) text: Vec<u8>,
    pub(super) rest: usize,
}

/// Read the hand-off named by the environment, if we were exec'd by an
/// upgrade. The fd is closed afterwards.
pub fn take() -> Option<Result<Taken, HandoffError>> {
    let fd: i32 = std::env::var(ENV).ok()?.parse().ok()?;
    let owned = match crate::sys::fs::adopt_fd(fd) {
        Ok(f) => f,
        Err(source) => return Some(Err(HandoffError::Fd { fd, source })),
    };
    let mut f = std::fs::File::from(owned);
    // Sized once: one allocation, large enough to be its own mapping,
    // gone without a trace once the instances are restored.
    let size = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut text = Vec::with_capacity(size + 1);
    if let Err(e) = f.read_to_end(&mut text) {
        return Some(Err(HandoffError::Read(e)));
    }
    Some(parse(text))
}

/// The instances of a hand-off, one at a time: an older cairn's from its
/// header, ours from the lines after it.
/// `torn` is set when a line is unreadable or missing: the caller must
/// then look for the instances it did not get (`recover`), or a knot that
/// runs would be unknown and started twice.
pub(super) fn instances<'a>(
    head: &mut Handoff,
    text: &'a [u8],
    rest: usize,
    torn: &'a std::cell::Cell<bool>,
) -> impl Iterator<Item = HInstance> + 'a {
    let older = std::mem::take(&mut head.instances);
    let mut lines = text[rest.min(text.len())..]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty());
    let mut left = head.follow;
    let ours = std::iter::from_fn(move || {
        while left > 0 {
            left -= 1;
            let Some(l) = lines.next() else {
                log::error!("upgrade: the hand-off ends {} instances early", left + 1);
                torn.set(true);
                return None;
            };
            match serde_json::from_slice::<HInstance>(l) {
                Ok(hi) => return Some(hi),
                Err(e) => {
                    log::error!("upgrade: an instance of the hand-off is unreadable: {e}");
                    torn.set(true);
                }
            }
        }
        None
    });
    older.into_iter().chain(ours)
}

/// The header line of a hand-off's text (all of an older cairn's).
/// A hand-off of a version this cairn does not know is refused whole.
fn parse(text: Vec<u8>) -> Result<Taken, HandoffError> {
    let rest = text
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| i + 1);
    let v: Versioned = serde_json::from_slice(&text[..rest]).map_err(HandoffError::Decode)?;
    if !(1..=VERSION).contains(&v.version) {
        return Err(HandoffError::Version(v.version));
    }
    serde_json::from_slice(&text[..rest])
        .map(|head| Taken { head, text, rest })
        .map_err(HandoffError::Decode)
}

impl Taken {
    /// The pid file lock fd, inherited across the exec.
    pub fn lock_file(&self) -> Result<std::fs::File, HandoffError> {
        self.head.lock_file()
    }
}

impl Handoff {
    /// The pid file lock fd, inherited across the exec.
    pub fn lock_file(&self) -> Result<std::fs::File, HandoffError> {
        crate::sys::fs::adopt_fd(self.lock_fd)
            .map(std::fs::File::from)
            .map_err(HandoffError::Lock)
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
