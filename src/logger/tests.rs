use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::journal::{self, parse_stream};
use super::remote::{Form, Remote};
use super::syslog::{self, severity, timestamp};
use super::{Target, target};

#[test]
fn stderr_then_syslog_then_the_journal_then_the_file() {
    let file = Path::new("/var/log/cairn/master.log");
    let syslog = Target::Syslog {
        facility: 16,
        name: "n",
    };
    let journal = Target::Journal { name: "n" };
    for (stderr, facility, detected, want) in [
        (true, Some(16), true, Target::Stderr),
        (true, Some(16), false, Target::Stderr),
        (true, None, true, Target::Stderr),
        (true, None, false, Target::Stderr),
        (false, Some(16), true, syslog.clone()),
        (false, Some(16), false, syslog.clone()),
        (false, None, true, journal.clone()),
        (false, None, false, Target::File(file)),
    ] {
        assert_eq!(
            target(stderr, facility, detected, "n", file),
            want,
            "--log-stderr {stderr}, facility {facility:?}, journal {detected}"
        );
    }
}

#[test]
fn levels_map_to_syslog_severities() {
    use log::Level::*;
    let got: Vec<u8> = [Error, Warn, Info, Debug, Trace]
        .into_iter()
        .map(severity)
        .collect();
    assert_eq!(got, [3, 4, 6, 7, 7]);
}

#[test]
fn syslog_timestamps_are_local_with_the_day_padded() {
    // 2026-12-03T07:05:09Z
    let t = 1_796_281_509;
    assert_eq!(timestamp(t, 0), "Dec  3 07:05:09");
    assert_eq!(timestamp(t, 3600), "Dec  3 08:05:09");
    assert_eq!(timestamp(t, 17 * 3600), "Dec  4 00:05:09");
    assert_eq!(timestamp(t, -8 * 3600), "Dec  2 23:05:09");
    // 2026-11-22T03:04:05Z: a two-digit day.
    assert_eq!(timestamp(1_795_316_645, 0), "Nov 22 03:04:05");
    assert_eq!(timestamp(0, 0), "Jan  1 00:00:00");
}

#[test]
fn a_syslog_datagram_is_what_glibc_sends() {
    let now = UNIX_EPOCH + Duration::from_secs(1_796_281_509);
    let offset = crate::sys::process::utc_offset(1_796_281_509).expect("localtime_r");
    let stamp = timestamp(1_796_281_509, offset);
    // local3 (19) * 8 + err (3)
    let d = syslog::datagram(19, log::Level::Error, "cairn", 42, now, "config: a\\nb");
    assert_eq!(
        String::from_utf8(d).expect("utf-8"),
        format!("<155>{stamp} cairn[42]: config: a\\nb")
    );
    let d = syslog::datagram(3, log::Level::Info, "x", 7, now, "m");
    assert_eq!(d, format!("<30>{stamp} x[7]: m").into_bytes());
    let d = syslog::datagram(0, log::Level::Trace, "x", 7, now, "m");
    assert!(d.starts_with(b"<7>"));
    let d = syslog::datagram(23, log::Level::Debug, "x", 7, now, "m");
    assert!(d.starts_with(b"<191>"));
}

#[test]
fn journal_fields_plain_and_binary() {
    let mut out = Vec::new();
    journal::field(&mut out, "MESSAGE", b"one line");
    assert_eq!(out, b"MESSAGE=one line\n");
    let mut out = Vec::new();
    journal::field(&mut out, "MESSAGE", b"two\nlines");
    let mut want = b"MESSAGE\n".to_vec();
    want.extend_from_slice(&9u64.to_le_bytes());
    want.extend_from_slice(b"two\nlines\n");
    assert_eq!(out, want);
    // An empty value, and one that is only a newline.
    let mut out = Vec::new();
    journal::field(&mut out, "A", b"");
    journal::field(&mut out, "B", b"\n");
    let mut want = b"A=\nB\n".to_vec();
    want.extend_from_slice(&1u64.to_le_bytes());
    want.extend_from_slice(b"\n\n");
    assert_eq!(out, want);
}

#[test]
fn a_journal_datagram_has_priority_identifier_pid_and_message() {
    let d = journal::datagram(3, "cairn", 42, "config: a\\nb = c");
    assert_eq!(
        String::from_utf8(d).expect("utf-8"),
        "PRIORITY=3\nSYSLOG_IDENTIFIER=cairn\nSYSLOG_PID=42\nMESSAGE=config: a\\nb = c\n"
    );
}

#[test]
fn journal_stream_is_dev_colon_inode() {
    assert_eq!(parse_stream("8:12345"), Some((8, 12345)));
    assert_eq!(parse_stream("18446744073709551615:0"), Some((u64::MAX, 0)));
    for bad in [
        "",
        ":",
        "8:",
        ":1",
        "8",
        "8:1:2",
        "-8:1",
        "+8:1",
        "8: 1",
        "x:1",
        "18446744073709551616:1",
    ] {
        assert_eq!(parse_stream(bad), None, "{bad:?}");
    }
}

fn recv_all(sock: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

fn listener(path: &Path) -> UnixDatagram {
    let s = UnixDatagram::bind(path).expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    s
}

#[test]
fn a_remote_falls_back_to_stderr_and_comes_back_when_the_daemon_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let form = Form::Journal {
        name: "cn".to_string(),
    };
    let mut r = Remote::new(form, &path);
    let now = SystemTime::now();
    let mut stderr = Vec::new();
    // No daemon yet: stderr, with one line that says why.
    r.write(log::Level::Info, "one", now, &mut stderr);
    r.write(log::Level::Error, "two", now, &mut stderr);
    let text = String::from_utf8(std::mem::take(&mut stderr)).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].ends_with(&format!(
            " WARN cannot log to {}: No such file or directory (os error 2); logging to stderr until it takes lines again",
            path.display()
        )),
        "{text}"
    );
    assert!(lines[1].ends_with(" INFO one"), "{text}");
    assert!(lines[2].ends_with(" ERROR two"), "{text}");
    // The daemon starts: the next line gets there, after a note.
    let daemon = listener(&path);
    r.write(log::Level::Info, "three", now, &mut stderr);
    assert!(stderr.is_empty(), "{}", String::from_utf8_lossy(&stderr));
    let pid = std::process::id();
    let got = recv_all(&daemon);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0],
        format!(
            "PRIORITY=4\nSYSLOG_IDENTIFIER=cn\nSYSLOG_PID={pid}\nMESSAGE={} takes the log again; 2 lines went to stderr meanwhile\n",
            path.display()
        )
    );
    assert!(got[1].ends_with("MESSAGE=three\n"), "{got:?}");
    // The daemon restarts (a new socket at the same path): nothing is
    // lost, the next line reconnects at once.
    drop(daemon);
    std::fs::remove_file(&path).expect("rm");
    let daemon = listener(&path);
    r.write(log::Level::Warn, "four", now, &mut stderr);
    assert!(stderr.is_empty(), "{}", String::from_utf8_lossy(&stderr));
    let got = recv_all(&daemon);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("PRIORITY=4\n") && got[0].ends_with("MESSAGE=four\n"));
    // A reset (SIGHUP) connects again too.
    r.reset();
    r.write(log::Level::Debug, "five", now, &mut stderr);
    assert!(stderr.is_empty());
    assert_eq!(recv_all(&daemon).len(), 1);
}

#[test]
fn a_full_queue_never_blocks_the_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let daemon = listener(&path);
    let mut r = Remote::new(
        Form::Syslog {
            facility: 3,
            name: "cn".to_string(),
        },
        &path,
    );
    let now = SystemTime::now();
    let mut stderr = Vec::new();
    // Nobody reads: the daemon's queue fills up (net.unix.max_dgram_qlen,
    // or its receive buffer), and then the lines go to stderr at once.
    let mut sent = 0;
    while stderr.is_empty() {
        sent += 1;
        assert!(sent < 100_000, "the queue never filled");
        r.write(log::Level::Info, &format!("line {sent}"), now, &mut stderr);
    }
    let text = String::from_utf8(std::mem::take(&mut stderr)).expect("utf-8");
    assert!(
        text.contains(" WARN cannot log to ") && text.contains(": its queue is full; "),
        "{text}"
    );
    assert!(text.ends_with(&format!(" INFO line {sent}\n")), "{text}");
    // Once the daemon reads, lines get there again, after the note.
    let got = recv_all(&daemon);
    assert_eq!(got.len(), sent - 1);
    assert!(
        got[0].starts_with("<30>")
            && got[0].ends_with(&format!("cn[{}]: line 1", std::process::id()))
    );
    r.write(log::Level::Info, "after", now, &mut stderr);
    let got = recv_all(&daemon);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("<28>"), "{got:?}");
    assert!(
        got[0].ends_with("takes the log again; 1 line went to stderr meanwhile"),
        "{got:?}"
    );
    assert!(got[1].ends_with(": after"), "{got:?}");
}
