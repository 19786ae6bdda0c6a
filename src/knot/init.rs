//! The knot as the container's init: every signal blocked and read from a
//! signalfd; TERM/INT/HUP/QUIT/USR1/USR2 forwarded to the workload (TERM
//! as the service's `stop-signal`); every
//! zombie reaped (the workload's orphans are reparented to us, pid 1);
//! exit with the workload's status. After the workload is spawned the knot
//! never bails out: errors only end in an exit status.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::spec::InstanceSpec;
use crate::sys::init_policy::{self, Action};
use crate::sys::process::{self, Exit};
use crate::sys::signal;

/// The workload's output, pumped into the sandbox's stdio log while the
/// knot is pid 1 (`sys::log_pump`; cairn-init does the same after a hand
/// over).
pub struct LogPump {
    pub read: OwnedFd,
    pub log: crate::sys::log_file::HostLog,
    pump: Box<crate::sys::log_pump::Pump>,
    /// The instance's name in its sandbox (`web.0`), or empty.
    pub name: String,
    pub max_size: u64,
    pub files: u32,
    pub timestamps: bool,
}

impl LogPump {
    pub fn new(spec: &InstanceSpec, read: OwnedFd, log: crate::sys::log_file::HostLog) -> LogPump {
        let s = &spec.stdio_log;
        let name = if s.names {
            spec.name
                .split_once('/')
                .map_or(spec.name.as_str(), |(_, n)| n)
                .to_string()
        } else {
            String::new()
        };
        LogPump {
            read,
            log,
            pump: Box::new(crate::sys::log_pump::Pump::new()),
            name,
            max_size: s.max_size.unwrap_or(0),
            files: s.files,
            timestamps: s.timestamps,
        }
    }

    /// Read what the pipe has (at most `rounds` reads, a short one ends
    /// them: it emptied the pipe); with `end`, then write what is left of
    /// a line. False once the pipe reached its end (every writer gone).
    fn pump(&mut self, rounds: usize, end: bool) -> bool {
        let LogPump {
            read,
            log,
            pump,
            name,
            max_size,
            files,
            timestamps,
        } = self;
        let cfg = crate::sys::log_pump::Config {
            max_size: *max_size,
            files: *files,
            timestamps: *timestamps,
            name: name.as_bytes(),
        };
        let now = crate::sys::log_file::now_ms;
        let mut open = true;
        for _ in 0..rounds {
            let space = pump.space();
            match nix::unistd::read(&*read, space) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(n) => {
                    let short = n < space.len();
                    pump.filled(n, now(), &cfg, log);
                    if short {
                        break;
                    }
                }
                Err(nix::Error::EINTR) => {}
                Err(_) => break,
            }
        }
        if end || !open {
            pump.finish(now(), &cfg, log);
        }
        open
    }

    /// The workload ended: write what its output left in the pipe (up to
    /// a bound: what is still running there may write on), and the start
    /// of a line.
    pub fn drain(&mut self) {
        self.pump(64, true);
    }
}

/// What ended the loop.
pub struct Ended {
    pub exit: Exit,
    /// Last pid the workload had (in our namespace).
    pub pid: i32,
}

/// Supervise `pid` until the workload ends for good. With
/// `restart-process-only`, a workload that exits is started again (never
/// sooner than restart-timeout after its previous start) until a SIGTERM.
pub fn run(
    spec: &InstanceSpec,
    sigfd: &OwnedFd,
    mut pid: i32,
    mut respawn: impl FnMut() -> Result<i32, super::exec::SpawnError>,
    mut on_start: impl FnMut(i32),
    mut log: Option<&mut LogPump>,
) -> Result<Ended, super::exec::SpawnError> {
    let mut log_open = log.is_some();
    let mut alive = true;
    let mut started = Instant::now();
    let mut stopping = false;
    let mut restart_at: Option<Instant> = None;
    let mut last = Exit::Code(0);
    let restart_timeout = Duration::from_millis(spec.restart_timeout_ms);
    loop {
        if let Some(at) = restart_at {
            let now = Instant::now();
            if now >= at {
                restart_at = None;
                pid = respawn()?;
                alive = true;
                started = Instant::now();
                on_start(pid);
                continue;
            }
        }
        let timeout = match restart_at {
            Some(at) => {
                let ms = at
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(i32::MAX as u128);
                PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::NONE)
            }
            None => PollTimeout::NONE,
        };
        let readable = match log.as_deref() {
            Some(l) if log_open => {
                let mut fds = [
                    PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
                    PollFd::new(l.read.as_fd(), PollFlags::POLLIN),
                ];
                let _ = poll(&mut fds, timeout);
                fds[1].revents().is_some_and(|r| !r.is_empty())
            }
            _ => {
                let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, timeout);
                false
            }
        };
        if readable && let Some(l) = log.as_deref_mut() {
            log_open = l.pump(4, false);
        }
        while let Ok(Some(si)) = signal::read_signal(sigfd.as_fd()) {
            // An interactive workload shares the terminal's process group.
            let action = init_policy::on_signal(si.signo as u32, si.code, spec.interactive);
            if action == Action::Reap {
                while let Some((p, exit)) = process::reap_any() {
                    if alive && p == pid {
                        alive = false;
                        last = exit;
                        // Its last words, before the next run's first.
                        if let Some(l) = log.as_deref_mut() {
                            l.drain();
                        }
                        if spec.restart_process_only && !stopping {
                            restart_at = Some(started + restart_timeout);
                        } else {
                            return Ok(Ended { exit, pid });
                        }
                    }
                }
                continue;
            }
            if action == Action::Ignore {
                continue;
            }
            if si.signo == libc::SIGTERM {
                stopping = true;
                if !alive {
                    return Ok(Ended { exit: last, pid });
                }
            }
            if alive {
                let to =
                    init_policy::passed_on_as(si.signo as u32, spec.service.stop_signal as u32);
                let _ = process::kill(pid, to as i32);
            }
        }
    }
}
