//! What an init does with a signal: one pure rule for the three processes
//! that wait on a workload and pass signals on (cairn-init, pid 1 of a
//! supervised container; the knot while it is pid 1; `cairn cmd`, waiting
//! on its knot). cairn-init is freestanding and includes this file as its
//! own source (`#[path]`), so it uses nothing but `core`.
//!
//! Signal numbers are the generic Linux ones, the same on x86_64 and
//! aarch64 (a unit test holds them to libc's).

pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGKILL: u32 = 9;
pub const SIGUSR1: u32 = 10;
pub const SIGUSR2: u32 = 12;
pub const SIGTERM: u32 = 15;
pub const SIGCHLD: u32 = 17;

/// `si_code` of a signal the kernel sent, such as a key typed at a
/// terminal (Ctrl-C, Ctrl-\) to its foreground process group.
pub const SI_KERNEL: i32 = 0x80;

/// The signals passed on to the workload; every other one is dropped.
pub const FORWARDED: [u32; 6] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2];

/// What to do with one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A child changed state: reap every child that has ended.
    Reap,
    /// Send the same signal to the process we wait on.
    Forward,
    /// Nothing.
    Ignore,
}

/// The rule. `in_tty_group`: the process we wait on is in the terminal's
/// foreground process group, so a key typed there (INT or QUIT sent by
/// the kernel) has reached it already, and passing it on would deliver it
/// twice. The same signal sent by a process (`kill`) is always passed on.
pub fn on_signal(signo: u32, code: i32, in_tty_group: bool) -> Action {
    if signo == SIGCHLD {
        return Action::Reap;
    }
    let mut i = 0;
    while i < FORWARDED.len() {
        if FORWARDED[i] == signo {
            let from_tty = code == SI_KERNEL && (signo == SIGINT || signo == SIGQUIT);
            return if from_tty && in_tty_group {
                Action::Ignore
            } else {
                Action::Forward
            };
        }
        i += 1;
    }
    Action::Ignore
}

/// The signal a forwarded `signo` reaches the workload as: a TERM (a
/// stop, from the tree or an operator) becomes the service's own stop
/// signal (`stop-signal`, e.g. QUIT for nginx); any other is passed on as
/// it is.
pub fn passed_on_as(signo: u32, stop_signal: u32) -> u32 {
    if signo == SIGTERM { stop_signal } else { signo }
}

/// A wait(2) status as a shell reports it: (status, signal), status the
/// exit code or 128 + the signal, signal 0 for a normal exit.
pub fn shell_status(wait_status: i32) -> (i32, i32) {
    let signal = wait_status & 0x7f;
    if signal == 0 {
        ((wait_status >> 8) & 0xff, 0)
    } else {
        (128 + signal, signal)
    }
}

#[cfg(test)]
#[path = "init_policy_tests.rs"]
mod tests;
