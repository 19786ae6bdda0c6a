//! `confine` in a forked child: the child confines itself and then waits,
//! while the test reads its `/proc` files from outside, as an attacker in
//! the parser would find them. Runs as root (uid becomes nobody) or as an
//! ordinary user (uid stays; everything else must still hold).

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};

use super::*;

/// `Key:\tvalue` of a /proc status file, or a `limits` row by its name.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| {
            v.trim_start_matches(':')
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
}

/// errno of a call that returned -1, or 0 when it succeeded.
fn errno_of(ret: i64) -> i32 {
    if ret == -1 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

/// In the confined child: what it can still do, as one line.
fn probe() -> String {
    let mut sig: libc::c_int = -1;
    // SAFETY: prctl with a valid out-pointer; the other calls take no
    // pointers we own or only a constant C string; a fork that succeeds
    // exits at once in the child.
    unsafe {
        libc::prctl(libc::PR_GET_PDEATHSIG, &mut sig as *mut libc::c_int);
        let dumpable = libc::prctl(libc::PR_GET_DUMPABLE);
        let open = errno_of(libc::open(c"/".as_ptr(), libc::O_RDONLY).into());
        let socket = errno_of(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into());
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        let fork = errno_of(pid.into());
        format!("pdeathsig={sig} dumpable={dumpable} open={open} socket={socket} fork={fork}")
    }
}

/// Fork a child that confines itself with `uid`/`parent`, reports, and
/// waits until `look` has looked at it; returns the report.
fn in_child(uid: u32, parent_of: impl Fn(i32) -> i32, look: impl FnOnce(i32, &[i32], &str)) {
    let (r, w) = super::super::fd::pipe().expect("pipe");
    let (go_r, go_w) = super::super::fd::pipe().expect("pipe");
    let parent = process::getpid();
    let keep = [w.as_raw_fd(), go_r.as_raw_fd()];
    match process::fork().expect("fork") {
        None => {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                drop(r);
                drop(go_w);
                let c = Confinement {
                    uid,
                    gid: NOGROUP,
                    keep_fds: &keep,
                    extra_address_space: 64 << 20,
                    cpu_seconds: 7,
                    parent: parent_of(parent),
                    // What confinement alone does: the filter is
                    // tested in `tests/parser.rs` and `seccomp::tests`.
                    filter: None,
                };
                let report = match confine(&c) {
                    Ok(()) => probe(),
                    Err(e) => format!("error: {e}"),
                };
                write_line(&w, &report);
                let mut b = [0u8; 1];
                let _ = std::fs::File::from(go_r).read(&mut b);
            }));
            process::exit_now(0);
        }
        Some(pid) => {
            drop(w);
            drop(go_r);
            let mut report = String::new();
            BufReader::new(std::fs::File::from(r))
                .read_line(&mut report)
                .expect("report");
            look(pid, &keep, report.trim());
            drop(go_w);
            assert_eq!(
                process::wait_for(pid).expect("wait"),
                process::Exit::Code(0)
            );
        }
    }
}

fn write_line(w: &OwnedFd, line: &str) {
    let text = format!("{line}\n");
    // SAFETY: a write from a live buffer to an fd we own (kept open: the
    // test looks for it).
    unsafe { libc::write(w.as_raw_fd(), text.as_ptr().cast(), text.len()) };
}

#[test]
fn confined_child_holds_nothing() {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    // SAFETY: as above.
    let own = unsafe { libc::getuid() };
    in_child(
        NOBODY,
        |p| p,
        |pid, keep, report| {
            assert_eq!(
                report,
                format!(
                    "pdeathsig={} dumpable=0 open={} socket={} fork={}",
                    libc::SIGKILL,
                    libc::EMFILE,
                    libc::EMFILE,
                    libc::EAGAIN
                )
            );
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
            let uid = if root { NOBODY } else { own };
            assert_eq!(field(&status, "Uid"), format!("{uid} {uid} {uid} {uid}"));
            if root {
                assert_eq!(field(&status, "Gid"), "65534 65534 65534 65534");
                assert_eq!(field(&status, "Groups"), "");
                assert_eq!(field(&status, "CapBnd"), "0000000000000000");
            }
            for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
                assert_eq!(field(&status, set), "0000000000000000", "{set}");
            }
            assert_eq!(field(&status, "NoNewPrivs"), "1");
            let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
            for (row, want) in [
                ("Max open files", "0 0 files"),
                ("Max processes", "0 0 processes"),
                ("Max file size", "0 0 bytes"),
                ("Max core file size", "0 0 bytes"),
                ("Max locked memory", "0 0 bytes"),
                ("Max cpu time", "7 7 seconds"),
            ] {
                assert_eq!(field(&limits, row), want, "{row}");
            }
            assert_ne!(
                field(&limits, "Max address space"),
                "unlimited unlimited bytes"
            );
            let fd_dir = std::fs::read_dir(format!("/proc/{pid}/fd"));
            if !root {
                // Not dumpable: even its own uid cannot look at its fds.
                let e = fd_dir.expect_err("the fd dir of a non-dumpable process is closed");
                assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
                return;
            }
            let mut fds: Vec<i32> = fd_dir
                .expect("fd dir")
                .map(|e| {
                    e.expect("entry")
                        .file_name()
                        .to_string_lossy()
                        .parse()
                        .expect("fd")
                })
                .collect();
            fds.sort_unstable();
            let mut want = keep.to_vec();
            want.sort_unstable();
            assert_eq!(fds, want, "open fds");
        },
    );
}

#[test]
fn ids_that_do_not_take_fail_the_confinement() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return; // an ordinary user keeps its uid: nothing to check here
    }
    // setresuid(-1, -1, -1) changes nothing and "succeeds": the ids are
    // read back, so the child must refuse to go on as root.
    in_child(
        u32::MAX,
        |p| p,
        |_, _, report| {
            assert!(
                report.starts_with("error: confine uid 4294967295")
                    && report.contains("did not change"),
                "{report}"
            );
        },
    );
}

#[test]
fn a_parent_that_is_not_ours_fails_the_confinement() {
    // As if our parent had died before the parent-death signal was set.
    in_child(
        NOBODY,
        |p| p + 1_000_000,
        |_, _, report| {
            assert!(report.contains("the parent process is gone"), "{report}");
        },
    );
}
