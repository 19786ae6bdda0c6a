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
) -> Result<Ended, super::exec::SpawnError> {
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
        let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => {}
        }
        while let Ok(Some(si)) = signal::read_signal(sigfd.as_fd()) {
            // An interactive workload shares the terminal's process group.
            let action = init_policy::on_signal(si.signo as u32, si.code, spec.interactive);
            if action == Action::Reap {
                while let Some((p, exit)) = process::reap_any() {
                    if alive && p == pid {
                        alive = false;
                        last = exit;
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
