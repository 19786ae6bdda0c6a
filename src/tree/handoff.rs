//! Upgrades: the tree replaces itself with the binary at its installed
//! path, keeping its pid, its children, its listening sockets and its
//! state. The state goes into a memfd as JSON; the fds that must survive
//! lose close-on-exec; the new image reads the hand-off, verifies every
//! instance and carries on (DESIGN.md, "Upgrade, reload, recovery").

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::protocol::ExitRecord;
use crate::spec::InstanceSpec;
use crate::sys::process;
use crate::sys::{pidfd, proc};

use super::instance::Instance;
use super::leaves;
use super::lifecycle::{Life, State};
use super::sockets::SocketKey;
use super::state::{Counters, LastExit};
use super::supervisor::Tree;

/// The environment variable naming the hand-off fd.
pub const ENV: &str = "CAIRN_HANDOFF_FD";

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
struct HInstance {
    spec: InstanceSpec,
    hash: String,
    state: State,
    pid: Option<i32>,
    start_ticks: Option<u64>,
    pidfd: Option<i32>,
    ready_fd: Option<i32>,
    started_ago_ms: Option<u64>,
    deadline_in_ms: Option<u64>,
    failures: u32,
    stop_requested: bool,
    killed: bool,
    spawns: u32,
    last_exit: Option<LastExit>,
    replacing: bool,
    fresh_replacement: bool,
    pending: Option<(InstanceSpec, String)>,
    error: Option<String>,
    drop_state: bool,
    since_unix_ms: u64,
    #[serde(default)]
    leaf_ready: bool,
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
    version: u32,
    lock_fd: i32,
    started_unix_ms: u64,
    upgrades: u32,
    reloads: u32,
    /// CLOCK_MONOTONIC when the upgrade began (for the measurement).
    began_ns: u64,
    #[serde(default)]
    instances: Vec<HInstance>,
    #[serde(default)]
    follow: u32,
    sockets: Vec<(SocketKey, i32)>,
    counters: Vec<((String, String), Counters)>,
    unknown_children: u64,
    shutting_down: bool,
    /// Knots that reported their end and are still tearing down.
    #[serde(default)]
    retiring: Vec<i32>,
    /// The config hash each instance's config log last named.
    #[serde(default)]
    logged_hash: Vec<(String, String)>,
    /// Exits of knots that died while no tree ran, not yet reported.
    #[serde(default)]
    died_away: Vec<(String, ExitRecord, Option<String>)>,
}

fn version_one() -> u32 {
    1
}

/// Just the version of a hand-off, read before anything else of it.
#[derive(Deserialize)]
struct Versioned {
    #[serde(default = "version_one")]
    version: u32,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(ms).unwrap_or(0)
}

impl Tree {
    /// Serialize, keep the fds, exec. Returns only if the exec failed (the
    /// old image then keeps running unchanged).
    pub fn upgrade(&mut self, began_ns: u64) -> String {
        // Leaves still to be removed are not handed over: finish them.
        self.leaves
            .drain(self.cgroups.as_ref(), &leaves::in_use(&self.instances));
        // Every field of the tree, named: one added to `Tree` must be
        // handed over here or said not to be.
        let Tree {
            master_path: _, // the new image is given the same arguments
            master: _,      // read again from the config by the new image
            cgroups: _,     // detected again
            poller: _,      // made again; instances are watched again
            sigfd: _,       // made again (signals stay blocked over exec)
            instances,
            by_pid: _,        // rebuilt from the instances
            by_token: _,      // rebuilt: new tokens
            next_token: _,    // rebuilt
            want: _,          // planned again from the config
            specs: _,         // planned again from the config
            frozen: _,        // planned again from the config
            config_errors: _, // found again from the config
            counters,
            unknown_children,
            logged_hash,
            died_away,
            retiring,
            sandbox_logs: _, // opened again on first use
            started,
            upgrades,
            reloads,
            shutting_down,
            dirty: _, // the new image writes state.json at once
            dirty_since: _,
            last_flush: _,
            flush_failing: _,
            replan: _, // the new image plans at once
            sockets,
            exe: _,             // the new image finds its own
            args: _,            // passed to the exec
            last_upgrade_ms: _, // measured again by the new image
            notify: _,          // from the environment again
            ready_sent: _,      // the new image tells systemd again
            init: _,            // the new image's own cairn-init
            fd_limit: _,        // raised again
            launch: _,          // given again by the entry point
            filters: _,         // compiled again on first use
            _lock,
            runtime: _,       // checked again
            state: _,         // checked again
            oom_score_adj: _, // read again
            proc_pid: _,      // read again
            leaves: _,        // drained above
            stdio_dir: _,     // checked again on first use
        } = &*self;
        let now = Instant::now();
        let mut keep: Vec<RawFd> = vec![_lock.as_raw_fd()];
        let mut instances_out = Vec::with_capacity(instances.len());
        for i in instances.values() {
            // Every field, named: one added to `Instance` must be handed
            // over here or said not to be.
            let Instance {
                spec,
                hash,
                key: _,    // from the spec
                policy: _, // from the spec
                life:
                    Life {
                        state,
                        started,
                        deadline,
                        failures,
                        stop_requested,
                        killed,
                    },
                pid,
                start_ticks,
                ready,
                pidfd,
                token: _, // the new image's poller hands out its own
                since,
                spawns,
                last_exit,
                replacing,
                fresh_replacement,
                pending,
                error,
                drop_state,
                leaf_ready,
            } = i;
            let pidfd = pidfd.as_ref().map(|f| f.as_raw_fd());
            let ready_fd = ready.as_ref().map(|f| f.as_raw_fd());
            keep.extend(pidfd);
            keep.extend(ready_fd);
            instances_out.push(HInstance {
                spec: (**spec).clone(),
                hash: hash.clone(),
                state: *state,
                pid: *pid,
                start_ticks: *start_ticks,
                pidfd,
                ready_fd,
                started_ago_ms: started.map(|s| ms(now.saturating_duration_since(s))),
                deadline_in_ms: deadline.map(|d| ms(d.saturating_duration_since(now))),
                failures: *failures,
                stop_requested: *stop_requested,
                killed: *killed,
                spawns: *spawns,
                last_exit: last_exit.clone(),
                replacing: *replacing,
                fresh_replacement: *fresh_replacement,
                pending: pending.as_ref().map(|(s, h)| ((**s).clone(), h.clone())),
                error: error.clone(),
                drop_state: *drop_state,
                since_unix_ms: unix_ms(*since),
                leaf_ready: *leaf_ready,
            });
        }
        keep.extend(sockets.fds());
        let h = Handoff {
            version: VERSION,
            lock_fd: _lock.as_raw_fd(),
            started_unix_ms: unix_ms(*started),
            upgrades: *upgrades,
            reloads: *reloads,
            began_ns,
            instances: Vec::new(),
            follow: instances_out.len() as u32,
            sockets: sockets.handoff(),
            counters: counters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            unknown_children: *unknown_children,
            shutting_down: *shutting_down,
            retiring: retiring.iter().copied().collect(),
            logged_hash: logged_hash
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            died_away: died_away
                .iter()
                .map(|(k, (rec, err))| (k.clone(), *rec, err.clone()))
                .collect(),
        };
        let memfd = match write_memfd(&h, &instances_out) {
            Ok(f) => f,
            Err(e) => return format!("upgrade: cannot write the hand-off: {e}"),
        };
        keep.push(memfd.as_raw_fd());
        for fd in &keep {
            if let Err(e) = crate::sys::fd::clear_cloexec(*fd) {
                restore_cloexec(&keep);
                return format!("upgrade: {e}");
            }
        }
        let mut env: Vec<String> = std::env::vars()
            .filter(|(k, _)| k != ENV && k != super::recover::RECOVER_ENV)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(format!("{ENV}={}", memfd.as_raw_fd()));
        let path = self.exe.display().to_string();
        log::info!("upgrade: executing {path}");
        let e = process::exec(&path, &self.args, &env);
        restore_cloexec(&keep);
        format!(
            "upgrade: exec {path} failed: {}; the running tree goes on",
            e.source
        )
    }

    /// Take over from the previous image.
    pub fn restore(&mut self, taken: Taken) {
        let Taken {
            mut head,
            text,
            rest,
        } = taken;
        let now = Instant::now();
        let h = &mut head;
        self.upgrades = h.upgrades + 1;
        self.reloads = h.reloads;
        self.started = UNIX_EPOCH + Duration::from_millis(h.started_unix_ms);
        self.unknown_children = h.unknown_children;
        self.counters = std::mem::take(&mut h.counters).into_iter().collect();
        self.sockets.restore(std::mem::take(&mut h.sockets));
        self.retiring = std::mem::take(&mut h.retiring).into_iter().collect();
        self.logged_hash = std::mem::take(&mut h.logged_hash).into_iter().collect();
        self.died_away = std::mem::take(&mut h.died_away)
            .into_iter()
            .map(|(k, rec, err)| (k, (rec, err)))
            .collect();
        let mut lost = Vec::new();
        let torn = std::cell::Cell::new(false);
        for hi in instances(h, &text, rest, &torn) {
            let name = hi.spec.name.clone();
            let token = self.new_token();
            let mut inst = Instance::new(std::sync::Arc::new(hi.spec), hi.hash, token);
            inst.life = Life {
                state: hi.state,
                started: hi.started_ago_ms.map(|a| now - Duration::from_millis(a)),
                deadline: hi.deadline_in_ms.map(|d| now + Duration::from_millis(d)),
                failures: hi.failures,
                stop_requested: hi.stop_requested,
                killed: hi.killed,
            };
            inst.spawns = hi.spawns;
            inst.last_exit = hi.last_exit;
            inst.replacing = hi.replacing;
            inst.fresh_replacement = hi.fresh_replacement;
            inst.pending = hi.pending.map(|(s, hash)| (std::sync::Arc::new(s), hash));
            inst.error = hi.error;
            inst.drop_state = hi.drop_state;
            inst.leaf_ready = hi.leaf_ready;
            inst.since = UNIX_EPOCH + Duration::from_millis(hi.since_unix_ms);
            inst.pidfd = hi.pidfd.and_then(|fd| crate::sys::fs::adopt_fd(fd).ok());
            inst.ready = hi.ready_fd.and_then(|fd| crate::sys::fs::adopt_fd(fd).ok());
            if let Some(pid) = hi.pid {
                // Verify: same process (start time), and ours to watch.
                let same = hi.start_ticks.is_some() && proc::start_time(pid) == hi.start_ticks;
                let ours = pidfd::is_our_child(pid) || inst.pidfd.is_some();
                if same && ours {
                    inst.pid = Some(pid);
                    inst.start_ticks = hi.start_ticks;
                    self.by_pid.insert(pid, name.clone());
                } else {
                    log::error!("{name}: knot {pid} is gone or not ours after the upgrade");
                    lost.push(name.clone());
                }
            }
            self.watch(&mut inst);
            self.by_token.insert(token, name.clone());
            self.instances.insert(name, inst);
        }
        self.shutting_down = h.shutting_down;
        for name in lost {
            self.knot_exited(&name, process::Exit::Signal(libc::SIGKILL));
        }
        let took = process::monotonic_ns().saturating_sub(h.began_ns);
        self.last_upgrade_ms = Some(took as f64 / 1e6);
        log::info!(
            "upgrade: supervising {} instances again, {:.2} ms after the signal",
            self.instances.len(),
            took as f64 / 1e6
        );
        self.dirty = true;
        if torn.get() {
            log::error!("upgrade: looking for the instances the hand-off lost");
            self.recover();
        }
        // The hand-off's text and its parse are garbage now.
        process::trim_heap();
    }
}

fn restore_cloexec(fds: &[RawFd]) {
    for fd in fds {
        let _ = crate::sys::fd::set_cloexec(*fd);
    }
}

fn write_memfd(h: &Handoff, instances: &[HInstance]) -> Result<OwnedFd, String> {
    let fd = crate::sys::fd::memfd("cairn-handoff").map_err(|e| e.to_string())?;
    let mut f = std::fs::File::from(fd);
    // One write: serde_json writes in small pieces, each a system call on
    // an unbuffered file.
    let mut bytes = serde_json::to_vec(h).map_err(|e| e.to_string())?;
    for i in instances {
        bytes.push(b'\n');
        serde_json::to_writer(&mut bytes, i).map_err(|e| e.to_string())?;
    }
    bytes.push(b'\n');
    f.write_all(&bytes).map_err(|e| e.to_string())?;
    f.rewind().map_err(|e| e.to_string())?;
    Ok(OwnedFd::from(f))
}

/// A hand-off read back: its header, and the text whose lines from
/// `rest` on are its instances.
pub struct Taken {
    head: Handoff,
    text: Vec<u8>,
    rest: usize,
}

/// Read the hand-off named by the environment, if we were exec'd by an
/// upgrade. The fd is closed afterwards.
pub fn take() -> Option<Result<Taken, String>> {
    let fd: i32 = std::env::var(ENV).ok()?.parse().ok()?;
    let owned = match crate::sys::fs::adopt_fd(fd) {
        Ok(f) => f,
        Err(e) => return Some(Err(format!("hand-off fd {fd}: {e}"))),
    };
    let mut f = std::fs::File::from(owned);
    // Sized once: one allocation, large enough to be its own mapping,
    // gone without a trace once the instances are restored.
    let size = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut text = Vec::with_capacity(size + 1);
    if let Err(e) = f.read_to_end(&mut text) {
        return Some(Err(format!("hand-off: {e}")));
    }
    Some(parse(text))
}

/// The instances of a hand-off, one at a time: an older cairn's from its
/// header, ours from the lines after it.
/// `torn` is set when a line is unreadable or missing: the caller must
/// then look for the instances it did not get (`recover`), or a knot that
/// runs would be unknown and started twice.
fn instances<'a>(
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
fn parse(text: Vec<u8>) -> Result<Taken, String> {
    let rest = text
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| i + 1);
    let v: Versioned =
        serde_json::from_slice(&text[..rest]).map_err(|e| format!("hand-off: {e}"))?;
    if !(1..=VERSION).contains(&v.version) {
        return Err(format!(
            "hand-off: version {} is not one this cairn reads (1 to {VERSION}); not reading it",
            v.version
        ));
    }
    serde_json::from_slice(&text[..rest])
        .map(|head| Taken { head, text, rest })
        .map_err(|e| format!("hand-off: {e}"))
}

impl Taken {
    /// The pid file lock fd, inherited across the exec.
    pub fn lock_file(&self) -> Result<std::fs::File, String> {
        self.head.lock_file()
    }
}

impl Handoff {
    /// The pid file lock fd, inherited across the exec.
    pub fn lock_file(&self) -> Result<std::fs::File, String> {
        crate::sys::fs::adopt_fd(self.lock_fd)
            .map(std::fs::File::from)
            .map_err(|e| format!("pid file lock: {e}"))
    }
}

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod tests;
