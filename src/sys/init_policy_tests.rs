//! The init rule, cell by cell (tini's cases: every forwarded signal,
//! terminal keys, reaping, exit statuses).

use super::*;

const USER: i32 = 0; // SI_USER: sent by kill(2)

#[test]
fn numbers_are_the_kernels() {
    let ours = [
        (SIGHUP, libc::SIGHUP),
        (SIGINT, libc::SIGINT),
        (SIGQUIT, libc::SIGQUIT),
        (SIGKILL, libc::SIGKILL),
        (SIGUSR1, libc::SIGUSR1),
        (SIGUSR2, libc::SIGUSR2),
        (SIGTERM, libc::SIGTERM),
        (SIGCHLD, libc::SIGCHLD),
    ];
    for (a, b) in ours {
        assert_eq!(a as i32, b);
    }
    assert_eq!(SI_KERNEL, libc::SI_KERNEL);
    assert_eq!(USER, libc::SI_USER);
}

#[test]
fn every_forwarded_signal_is_passed_on_when_sent_by_a_process() {
    for s in FORWARDED {
        for tty in [false, true] {
            assert_eq!(on_signal(s, USER, tty), Action::Forward, "{s} {tty}");
        }
    }
}

#[test]
fn terminal_keys_are_not_passed_twice() {
    for s in [SIGINT, SIGQUIT] {
        assert_eq!(on_signal(s, SI_KERNEL, true), Action::Ignore, "{s}");
        assert_eq!(on_signal(s, SI_KERNEL, false), Action::Forward, "{s}");
    }
    // Only INT and QUIT come from keys: a kernel TERM or HUP (a hangup
    // of the terminal) is passed on.
    for s in [SIGTERM, SIGHUP, SIGUSR1, SIGUSR2] {
        assert_eq!(on_signal(s, SI_KERNEL, true), Action::Forward, "{s}");
    }
}

#[test]
fn children_are_reaped_and_the_rest_is_dropped() {
    for tty in [false, true] {
        assert_eq!(on_signal(SIGCHLD, USER, tty), Action::Reap);
        assert_eq!(on_signal(SIGCHLD, SI_KERNEL, tty), Action::Reap);
        for s in 1..=64u32 {
            if s != SIGCHLD && !FORWARDED.contains(&s) {
                assert_eq!(on_signal(s, USER, tty), Action::Ignore, "{s}");
            }
        }
    }
}

#[test]
fn exit_statuses_read_as_a_shell_reads_them() {
    for code in [0, 1, 2, 125, 126, 127, 255] {
        assert_eq!(shell_status(code << 8), (code, 0), "exit {code}");
    }
    for sig in [1, 2, 9, 15, 31] {
        assert_eq!(shell_status(sig), (128 + sig, sig), "signal {sig}");
        // A core dump sets bit 7; the signal is still the signal.
        assert_eq!(
            shell_status(sig | 0x80),
            (128 + sig, sig),
            "signal {sig} core"
        );
    }
}

#[test]
fn a_stop_is_passed_on_as_the_stop_signal_and_nothing_else_is_changed() {
    assert_eq!(passed_on_as(SIGTERM, SIGQUIT), SIGQUIT);
    assert_eq!(passed_on_as(SIGTERM, SIGTERM), SIGTERM);
    assert_eq!(passed_on_as(SIGTERM, SIGKILL), SIGKILL);
    for s in [SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2] {
        assert_eq!(passed_on_as(s, SIGQUIT), s);
    }
}
