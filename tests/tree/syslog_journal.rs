//! The tree's own log to syslog (`syslog-facility`) and, under systemd,
//! natively to the journal, with what each daemon receives checked byte
//! by byte.
//!
//! The host's `/dev/log` and journal are never touched: each tree runs in
//! a mount namespace of its own (`unshare --mount --propagation private`)
//! in which `/dev/log` and `/run/systemd/journal/socket` are symlinks to
//! sockets this test binds in its temp dir, as a syslog daemon and
//! journald would (`NS_SETUP`). A symlink rather than a bind mount, so
//! that the test can take its "daemon" away and bring a new one up at the
//! same path, as a restarted daemon does.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;

use super::*;

/// `sh -c NS_SETUP sh SCRATCH SYSLOG JOURNAL CMD...`, in a new private
/// mount namespace: `/dev/log` leads to SYSLOG and
/// `/run/systemd/journal/socket` to JOURNAL, then CMD runs (exec, same
/// pid). Nothing is created in the host's dirs, which may lack both paths
/// (a container, a host without systemd): each dir that would change is
/// covered by a tmpfs holding its entries bound back from the original.
const NS_SETUP: &str = r#"set -eu
scratch=$1 syslog=$2 journal=$3
shift 3
# Cover DIR with a tmpfs that holds every entry of DIR but SKIP, each
# bound back from the original (symlinks copied).
shadow() {
  stage=$scratch/shadow$(echo "$1" | tr / .)
  mkdir -p "$stage"
  mount -t tmpfs -o mode=0755 cairn-test "$stage"
  for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n=${e##*/}
    [ "$n" = "$2" ] && continue
    if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$stage/$n"
    elif [ -d "$e" ]; then mkdir "$stage/$n"; mount --rbind "$e" "$stage/$n"
    else : > "$stage/$n"; mount --bind "$e" "$stage/$n"
    fi
  done
  mount --move "$stage" "$1"
}
shadow /dev log
ln -s "$syslog" /dev/log
# The deepest of /run/systemd/journal, /run/systemd and /run that exists.
d=/run/systemd/journal
while [ -n "$d" ] && [ ! -d "$d" ]; do d=${d%/*}; done
if [ -z "$d" ]; then echo "no /run on this host" >&2; exit 1; fi
shadow "$d" socket
mkdir -p /run/systemd/journal
ln -s "$journal" /run/systemd/journal/socket
exec "$@"
"#;

macro_rules! log_fixture {
    () => {{
        require!(
            have("unshare") && have("mount"),
            "util-linux unshare and mount needed"
        );
        fixture!()
    }};
}

/// A socket the test binds where a log daemon would, read by a thread of
/// its own at once (the kernel queues only `net.unix.max_dgram_qlen`
/// datagrams, 10 by default; the tree sends the rest to stderr), and
/// everything it received.
struct Daemon {
    path: PathBuf,
    got: Vec<Vec<u8>>,
    /// `wait` looks from here on.
    next: usize,
    inbox: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn bind(path: PathBuf) -> Daemon {
        use std::sync::atomic::Ordering;
        let sock = UnixDatagram::bind(&path).expect("bind the log socket");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        let inbox = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (to, stopped) = (inbox.clone(), stop.clone());
        // The thread owns the socket: once it ends, the socket is closed.
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    to.lock().expect("inbox").push(buf[..n].to_vec());
                }
            }
        });
        Daemon {
            path,
            got: Vec::new(),
            next: 0,
            inbox,
            stop,
            reader: Some(reader),
        }
    }

    /// Take what has arrived.
    fn drain(&mut self) {
        let mut inbox = self.inbox.lock().expect("inbox");
        self.got.append(&mut inbox);
    }

    /// Everything received, for a message.
    fn shown(&self) -> String {
        self.got
            .iter()
            .map(|d| format!("{:?}", String::from_utf8_lossy(d)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first datagram after the last one `wait` returned for which
    /// `f` holds.
    fn wait(&mut self, what: &str, f: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let start = Instant::now();
        loop {
            self.drain();
            if let Some(i) = (self.next..self.got.len()).find(|&i| f(&self.got[i])) {
                self.next = i + 1;
                return self.got[i].clone();
            }
            assert!(
                start.elapsed() < WAIT,
                "{}: no {what} in:\n{}",
                self.path.display(),
                self.shown()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    /// The daemon stops: its socket is closed.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// `<PRI>Mmm dd hh:mm:ss NAME[PID]: message` → (PRI, time, NAME[PID],
/// message).
fn parse_syslog(d: &[u8]) -> (u32, String, String, String) {
    let s = String::from_utf8(d.to_vec()).expect("a syslog datagram is UTF-8");
    let (pri, rest) = s
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .unwrap_or_else(|| panic!("no <PRI>: {s:?}"));
    let pri = pri.parse().unwrap_or_else(|_| panic!("PRI: {s:?}"));
    assert!(rest.len() > 16 && rest.as_bytes()[15] == b' ', "{s:?}");
    let (stamp, rest) = rest.split_at(15);
    let (tag, message) = rest[1..]
        .split_once(": ")
        .unwrap_or_else(|| panic!("no 'NAME[PID]: ': {s:?}"));
    (pri, stamp.to_string(), tag.to_string(), message.to_string())
}

/// The fields of a native journal entry, the binary form (`NAME\n`, a
/// 64-bit little-endian length, the value, `\n`) included.
fn parse_journal(d: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut rest = d;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'=' || b == b'\n')
            .unwrap_or_else(|| panic!("a field without an end: {d:?}"));
        let name = String::from_utf8(rest[..end].to_vec()).expect("field name");
        let value;
        if rest[end] == b'=' {
            let nl = rest[end..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("a newline after the value")
                + end;
            value = rest[end + 1..nl].to_vec();
            rest = &rest[nl + 1..];
        } else {
            let len = u64::from_le_bytes(rest[end + 1..end + 9].try_into().expect("8 bytes"));
            let from = end + 9;
            let to = from + len as usize;
            value = rest[from..to].to_vec();
            assert_eq!(rest[to], b'\n', "{d:?}");
            rest = &rest[to + 1..];
        }
        assert!(
            out.insert(name.clone(), value).is_none(),
            "{name} twice: {d:?}"
        );
    }
    out
}

fn field(e: &BTreeMap<String, Vec<u8>>, name: &str) -> String {
    String::from_utf8(e.get(name).cloned().unwrap_or_default()).expect("UTF-8 field")
}

/// `DEV:INODE` of `path`, as systemd writes `JOURNAL_STREAM`.
fn stream_of(path: &Path) -> String {
    let m = fs::metadata(path).expect("stat");
    format!("{}:{}", m.dev(), m.ino())
}

/// No raw control byte: every message was escaped onto one line.
fn assert_no_controls(what: &str, d: &[u8]) {
    assert!(
        !d.iter().any(|&b| b < 0x20 || b == 0x7f),
        "{what}: a raw control byte in {:?}",
        String::from_utf8_lossy(d)
    );
}

/// A Daemon whose config names an undeclared variable with a newline, a
/// forged record and an escape sequence in its name: a config error at
/// load, quoting it.
fn hostile_container(fx: &Fx) {
    fx.container(
        "bad",
        &format!(
            "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sleep\n\
             arguments: [\"@{{v\\nDec  3 07:05:09 cairn[1]: forged\\e[2J}}\"]\n"
        ),
    );
}

/// The escaped variable name, as every log shows it.
const ESCAPED: &str = "v\\nDec  3 07:05:09 cairn[1]: forged\\x1b[2J";

/// Start `cairn tree -c MASTER ARGS` in its own mount namespace (see
/// `NS_SETUP`), stderr to tree.log, with `JOURNAL_STREAM` set to
/// `journal_stream` and `TZ` to `tz`.
fn start_in_own_mount_ns(fx: &mut Fx, journal_stream: Option<&str>, tz: &str, args: &[&str]) {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        NS_SETUP,
        "sh",
    ])
    .arg(fx.set.path())
    .arg(fx.set.p("syslog.sock"))
    .arg(fx.set.p("journal.sock"))
    .arg(cairn_bin())
    .args(["tree", "-c", &fx.master_path()])
    .args(args)
    .env("TZ", tz)
    .env_remove("JOURNAL_STREAM");
    if let Some(s) = journal_stream {
        cmd.env("JOURNAL_STREAM", s);
    }
    fx.spawn_tree(cmd);
    // unshare and sh exec: the tree has the pid we spawned.
    fx.tree_pid = Some(fx.tree.as_ref().expect("spawned").id() as i32);
    fx.wait_ps("the tree's first state.json", |_| true);
}

/// `LC_ALL=C TZ=tz date -d @SECS '+%b %e %H:%M:%S'`: what syslog(3)
/// stamps a message of that second with.
fn date_stamp(tz: &str, secs: u64) -> String {
    let out = Command::new("date")
        .env("LC_ALL", "C")
        .env("TZ", tz)
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg("+%b %e %H:%M:%S")
        .output()
        .expect("date");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim_end_matches('\n').to_string()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The tree's log file has nothing (it may not even exist).
fn assert_no_log_file(fx: &Fx) {
    let text = fs::read_to_string(fx.set.p("log/master.log")).unwrap_or_default();
    assert!(text.is_empty(), "log-file was written:\n{text}");
}

/// With `syslog-facility`, every line of the tree's log is a syslog(3)
/// datagram at `/dev/log`: PRI = facility * 8 + severity, the local time,
/// `syslog-name[PID]`, the escaped message; a config error at `err`. Syslog
/// wins over a journal stream on stderr, and nothing goes to log-file or
/// stderr. Logging goes on after a reload (SIGHUP) and after an upgrade
/// (the new image logs to syslog as well). When the socket goes away the
/// lines go to stderr, and when a new daemon binds the path they come back
/// to it, the first one counting what went to stderr.
#[test]
fn tree_logs_to_syslog_with_its_facility_name_and_pid() {
    let mut fx = log_fixture!();
    fx.master(
        "config-log-dir: null\nlog-level: info\nsyslog-facility: local3\nsyslog-name: cairn-test\n",
    );
    fx.container("web", &sleeper(""));
    hostile_container(&fx);
    fx.processes(&[("web", 1), ("bad", 1)]);
    let mut syslog = Daemon::bind(fx.set.p("syslog.sock"));
    let mut journal = Daemon::bind(fx.set.p("journal.sock"));
    fs::write(fx.set.p("tree.log"), "").expect("tree.log");
    let stream = stream_of(&fx.set.p("tree.log"));
    // Three hours east of UTC, whatever the host's zone.
    let tz = "XYZ-3";
    let before = now_secs();
    start_in_own_mount_ns(&mut fx, Some(&stream), tz, &[]);
    let tree = fx.tree_pid();
    let tag = format!("cairn-test[{tree}]");
    // local3 is 19: info 158, warn 156, err 155.
    // cairn tree VERSION starting (pid PID, config MASTER)
    let starting = format!(" starting (pid {tree}, config ");
    let d = syslog.wait("the start line", |d| {
        String::from_utf8_lossy(d).contains(&starting)
    });
    let after = now_secs();
    let (pri, stamp, got_tag, message) = parse_syslog(&d);
    assert_eq!((pri, got_tag.as_str()), (158, tag.as_str()), "{d:?}");
    assert!(message.starts_with("cairn tree "), "{message:?}");
    let stamps: Vec<String> = (before..=after).map(|s| date_stamp(tz, s)).collect();
    assert!(stamps.contains(&stamp), "{stamp:?} is none of {stamps:?}");
    let d = syslog.wait("the config error", |d| {
        String::from_utf8_lossy(d).contains(ESCAPED)
    });
    let (pri, _, got_tag, message) = parse_syslog(&d);
    assert_eq!((pri, got_tag.as_str()), (155, tag.as_str()), "{d:?}");
    assert!(message.starts_with("config: "), "{message:?}");
    fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    syslog.wait("web.0's start", |d| {
        let s = String::from_utf8_lossy(d);
        s.starts_with("<158>") && s.contains("box/web.0: started (knot pid ")
    });
    // A reload (SIGHUP connects again) and an upgrade (a new image).
    reload_and_wait(&fx);
    syslog.wait("the reload", |d| {
        d.starts_with(b"<158>")
            && String::from_utf8_lossy(d).ends_with(": SIGHUP: reloading configs")
    });
    let out = cairn(&["upgrade", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let d = syslog.wait("the new image's start line", |d| {
        String::from_utf8_lossy(d).contains(&starting)
    });
    assert_eq!(parse_syslog(&d).2, tag, "the upgraded tree keeps its pid");
    for d in &syslog.got {
        assert_no_controls("syslog", d);
        let (pri, _, got_tag, _) = parse_syslog(d);
        assert!((152..=159).contains(&pri), "{d:?}");
        assert_eq!(got_tag, tag);
    }
    journal.drain();
    assert!(
        journal.got.is_empty(),
        "syslog-facility wins over the journal:\n{}",
        journal.shown()
    );
    assert_no_log_file(&fx);
    assert!(fx.log().is_empty(), "stderr:\n{}", fx.log());

    // The daemon goes away: the lines go to stderr, after one that says
    // why, and the tree carries on.
    drop(syslog);
    fs::remove_file(fx.set.p("syslog.sock")).expect("rm syslog.sock");
    reload_and_wait(&fx);
    wait_for(WAIT, "the reload on stderr", || {
        fx.log()
            .contains(" INFO SIGHUP: reloading configs")
            .then_some(())
    });
    let log = fx.log();
    assert!(
        log.contains(" WARN cannot log to /dev/log: No such file or directory"),
        "{log}"
    );
    for line in log.lines() {
        // TIME LEVEL message, as with --log-stderr.
        let b = line.as_bytes();
        assert!(b.len() > 24 && b[19] == b'.' && b[23] == b'Z', "{line}");
    }
    // A new daemon at the same path: the next line gets there, after a
    // note of what went to stderr.
    let mut syslog = Daemon::bind(fx.set.p("syslog.sock"));
    let on_stderr = fx.log().lines().count() - 1;
    reload_and_wait(&fx);
    let d = syslog.wait("the note", |d| {
        String::from_utf8_lossy(d).contains("/dev/log takes the log again; ")
    });
    let (pri, _, _, message) = parse_syslog(&d);
    assert_eq!(pri, 156, "{d:?}");
    assert!(
        message.ends_with(&format!(
            " line{} went to stderr meanwhile",
            if on_stderr == 1 { "" } else { "s" }
        )) && message.contains(&format!("again; {on_stderr} line")),
        "{message:?}, {on_stderr} lines in:\n{}",
        fx.log()
    );
    syslog.wait("the reload", |d| {
        d.starts_with(b"<158>")
            && String::from_utf8_lossy(d).ends_with(": SIGHUP: reloading configs")
    });
    assert_no_log_file(&fx);
}

/// Under systemd (stderr is the stream `JOURNAL_STREAM` names), every
/// line is a native journal entry: `PRIORITY`, `SYSLOG_IDENTIFIER`
/// (`syslog-name`), `SYSLOG_PID`, and `MESSAGE` escaped and without a time
/// (journald has its own); a config error at priority 3. Nothing goes to
/// log-file, stderr or `/dev/log`, and the new image after an upgrade
/// logs to the journal too (stderr and the variable survive exec).
#[test]
fn tree_logs_natively_to_the_journal_when_its_stderr_is_the_journal_stream() {
    let mut fx = log_fixture!();
    fx.master("config-log-dir: null\nlog-level: info\nsyslog-name: cairn-j\n");
    fx.container("web", &sleeper(""));
    hostile_container(&fx);
    fx.processes(&[("web", 1), ("bad", 1)]);
    let mut syslog = Daemon::bind(fx.set.p("syslog.sock"));
    let mut journal = Daemon::bind(fx.set.p("journal.sock"));
    fs::write(fx.set.p("tree.log"), "").expect("tree.log");
    let stream = stream_of(&fx.set.p("tree.log"));
    start_in_own_mount_ns(&mut fx, Some(&stream), "UTC0", &[]);
    let tree = fx.tree_pid().to_string();
    // cairn tree VERSION starting (pid PID, config MASTER)
    let starting = format!(" starting (pid {tree}, config ");
    let is = |d: &[u8], text: &str| field(&parse_journal(d), "MESSAGE").contains(text);
    let d = journal.wait("the start entry", |d| is(d, &starting));
    let e = parse_journal(&d);
    assert_eq!(
        e.keys().collect::<Vec<_>>(),
        ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID"],
        "{e:?}"
    );
    assert_eq!(field(&e, "PRIORITY"), "6");
    assert_eq!(field(&e, "SYSLOG_IDENTIFIER"), "cairn-j");
    assert_eq!(field(&e, "SYSLOG_PID"), tree);
    assert!(
        field(&e, "MESSAGE").starts_with("cairn tree "),
        "no time first: {e:?}"
    );
    let d = journal.wait("the config error", |d| is(d, ESCAPED));
    let e = parse_journal(&d);
    assert_eq!(field(&e, "PRIORITY"), "3", "{e:?}");
    assert!(field(&e, "MESSAGE").starts_with("config: "), "{e:?}");
    fx.wait_ps("web.0 running", |ps| all_running(ps, &["box/web.0"]));
    journal.wait("web.0's start", |d| is(d, "box/web.0: started (knot pid "));
    let out = cairn(&["upgrade", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let d = journal.wait("the new image's start entry", |d| is(d, &starting));
    assert_eq!(field(&parse_journal(&d), "SYSLOG_PID"), tree);
    for d in &journal.got {
        let e = parse_journal(d);
        assert_no_controls("MESSAGE", &e["MESSAGE"]);
        assert_eq!(field(&e, "SYSLOG_IDENTIFIER"), "cairn-j");
        assert_eq!(field(&e, "SYSLOG_PID"), tree);
        assert!(
            ["3", "4", "6", "7"].contains(&field(&e, "PRIORITY").as_str()),
            "{e:?}"
        );
    }
    syslog.drain();
    assert!(syslog.got.is_empty(), "/dev/log got:\n{}", syslog.shown());
    assert_no_log_file(&fx);
    assert!(fx.log().is_empty(), "stderr:\n{}", fx.log());
}

/// The journal is used only when stderr is the stream `JOURNAL_STREAM`
/// names (not when the variable was inherited by a tree whose stderr goes
/// elsewhere), and `log-journal: false` keeps log-file even then. A
/// mistyped facility stops the tree's start, naming file, line and key.
#[test]
fn journal_detection_needs_the_stream_on_stderr_and_log_journal_false_keeps_the_file() {
    let mut fx = log_fixture!();
    fx.processes(&[]);
    let mut journal = Daemon::bind(fx.set.p("journal.sock"));
    fs::write(fx.set.p("tree.log"), "").expect("tree.log");
    let stream = stream_of(&fx.set.p("tree.log"));
    let master_log = fx.set.p("log/master.log");
    let starts = || {
        fs::read_to_string(&master_log)
            .unwrap_or_default()
            .matches(" INFO cairn tree ")
            .count()
    };
    for (extra, stream) in [("", "1:1"), ("log-journal: false\n", stream.as_str())] {
        fx.master(&format!("config-log-dir: null\nlog-level: info\n{extra}"));
        let was = starts();
        start_in_own_mount_ns(&mut fx, Some(stream), "UTC0", &[]);
        wait_for(WAIT, "the start line in log-file", || {
            (starts() > was).then_some(())
        });
        let (status, _) = fx.stop_tree(libc::SIGTERM);
        assert!(status.success(), "{status:?}");
    }
    journal.drain();
    assert!(
        journal.got.is_empty(),
        "the journal got:\n{}",
        journal.shown()
    );
    assert!(fx.log().is_empty(), "stderr:\n{}", fx.log());

    fx.master("syslog-facility: local9\n");
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["tree", "-c", &fx.master_path()]);
    let out = output_within(&mut cmd, None, WAIT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{}:5: syslog-facility: \"local9\" is not a syslog facility; did you mean \"local0\"?",
            fx.master_path()
        )),
        "{}",
        stderr(&out)
    );
}
