//! The sandbox's stdio log (`STDIO-LOG-DIR/SANDBOX.log`): capped and
//! rotated by each instance's pid 1 (cairn-init, or the knot of a
//! `restart-process-only` instance), lines prefixed with the time and the
//! instance, moved away and replaced without a restart, the last words of
//! a workload kept; and, with no cap and no prefixes, the file itself as
//! the workload's stdout.

use super::*;

/// Rewrite the sandbox config with `extra` keys.
fn sandbox(fx: &Fx, extra: &str) {
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
             min-restart-timeout: 0\n{extra}",
            fx.set.s("images"),
        ),
    );
}

fn log_path(fx: &Fx, suffix: &str) -> PathBuf {
    fx.set.p(&format!("log/stdio/box.log{suffix}"))
}

fn read_log(fx: &Fx, suffix: &str) -> String {
    fs::read_to_string(log_path(fx, suffix)).unwrap_or_default()
}

/// `2026-12-03T07:53:54.123Z NAME rest`: (NAME, rest), or why not.
fn split_prefixed(line: &str) -> Result<(&str, &str), String> {
    let b = line.as_bytes();
    let ok = b.len() > 25
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b[24] == b' ';
    if !ok {
        return Err(format!("no time prefix: {line:?}"));
    }
    epoch(&format!("{}Z", &line[..19]));
    line[25..]
        .split_once(' ')
        .ok_or_else(|| format!("no name: {line:?}"))
}

/// Two instances flooding their output (as fast as a shell loop goes) fill
/// at most the cap times the files kept: the log rotates, the oldest is
/// dropped, no line is cut or mixed with another, and the workloads run on
/// without a restart. Before the pump, the same two workloads wrote their
/// output straight into one file that grew without end.
#[test]
fn a_flooding_workload_cannot_fill_the_disk() {
    let mut fx = fixture!();
    sandbox(&fx, "stdio-log-max-size: 64Ki\nstdio-log-files: 2\n");
    fx.container(
        "flood",
        &sh(
            "i=0; while :; do echo \"line $i of $CAIRN_NAME\"; i=$((i+1)); done",
            "",
        ),
    );
    fx.processes(&[("flood", 2)]);
    fx.start();
    fx.wait_ps("both running", |ps| {
        all_running(ps, &["box/flood.0", "box/flood.1"])
    });
    wait_for(WAIT, "box.log.2 (two rotations)", || {
        log_path(&fx, ".2").exists().then_some(())
    });
    // Both write into it (at this rate the last few files may hold the
    // lines of one only: look until each has shown up).
    let both = BTreeSet::from(["flood.0".to_string(), "flood.1".to_string()]);
    wait_for(WAIT, "lines of both instances", || {
        let mut names = BTreeSet::new();
        for suffix in ["", ".1", ".2"] {
            for line in read_log(&fx, suffix).lines() {
                if let Ok((name, _)) = split_prefixed(line) {
                    names.insert(name.to_string());
                }
            }
        }
        (names == both).then_some(())
    });
    // Let it rotate on for a while; then stop, and look at what is left.
    std::thread::sleep(Duration::from_millis(1000));
    let ps = fx.ps();
    for i in insts(&ps) {
        assert_eq!(i["restarts"], 0, "{i}");
        assert_eq!(i["state"], "running", "{i}");
    }
    let (status, _) = fx.stop_tree(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let cap = 64 * 1024;
    // At most one batch of each instance past the cap: 128 lines (with
    // their prefixes) or 16 KiB, whichever is less.
    let slack = 2 * (128 * 64);
    assert!(!log_path(&fx, ".3").exists(), "a third rotated file");
    let mut seen = BTreeSet::new();
    for suffix in [".1", ".2"] {
        let path = log_path(&fx, suffix);
        let meta = fs::symlink_metadata(&path).expect("rotated log");
        use std::os::unix::fs::MetadataExt;
        assert!(meta.len() <= cap + slack, "{suffix}: {} bytes", meta.len());
        assert!(meta.len() >= cap, "{suffix}: {} bytes", meta.len());
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o640),
            "{suffix}"
        );
        let text = read_log(&fx, suffix);
        for line in text.lines() {
            let (name, rest) = split_prefixed(line).unwrap_or_else(|e| panic!("{suffix}: {e}"));
            // Each line whole, written by the instance its prefix names.
            let (n, of) = rest
                .strip_prefix("line ")
                .and_then(|r| r.split_once(" of box/"))
                .unwrap_or_else(|| panic!("{suffix}: a cut or mixed line: {line:?}"));
            assert!(n.parse::<u64>().is_ok(), "{line:?}");
            assert_eq!(name, of, "{line:?}");
            seen.insert(name.to_string());
        }
    }
    for line in read_log(&fx, "").lines() {
        let (name, _) = split_prefixed(line).unwrap_or_else(|e| panic!("{e}"));
        seen.insert(name.to_string());
    }
    assert!(seen.is_subset(&both), "{seen:?}");
}

/// logrotate without `copytruncate` (or an operator's `mv`) moves the log
/// away and signals nobody: the next lines go to a new log within a second,
/// and no workload restarts.
#[test]
fn a_log_moved_away_is_replaced_without_a_restart() {
    let mut fx = fixture!();
    fx.container(
        "ticker",
        &sh(
            "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done",
            "",
        ),
    );
    fx.processes(&[("ticker", 1)]);
    fx.start();
    let ps = fx.wait_ps("ticker running", |ps| all_running(ps, &["box/ticker.0"]));
    let before = pids(&ps, "box/ticker.0");
    wait_for(WAIT, "a tick in the log", || {
        read_log(&fx, "").contains(" ticker.0 tick ").then_some(())
    });
    fs::rename(log_path(&fx, ""), log_path(&fx, ".old")).expect("move the log");
    wait_for(Duration::from_secs(5), "a new log with new ticks", || {
        read_log(&fx, "").contains(" ticker.0 tick ").then_some(())
    });
    let old = read_log(&fx, ".old");
    let new = read_log(&fx, "");
    // No line in both, none lost in between.
    let num = |l: &str| -> u64 {
        l.rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{l:?}"))
    };
    let last_old = old.lines().map(num).max().expect("old ticks");
    let first_new = new.lines().map(num).min().expect("new ticks");
    assert_eq!(first_new, last_old + 1, "old:\n{old}\nnew:\n{new}");
    assert_eq!(pids(&fx.ps(), "box/ticker.0"), before);
}

/// What a workload writes right before it ends reaches the log, also a
/// last line without its newline; with a cairn-init as pid 1 and with
/// the knot as pid 1 (`restart-process-only`, whose knot pumps the log
/// itself and starts the workload again).
#[test]
fn the_last_words_of_a_workload_reach_the_log() {
    let mut fx = fixture!();
    let script = "echo \"start of $CAIRN_NAME\"; printf 'last words, no newline'; exit 3";
    fx.container("brief", &sh(script, "restart-timeout: 0.2\n"));
    fx.container(
        "respawned",
        &sh(script, "restart-timeout: 0.2\nrestart-process-only: true\n"),
    );
    fx.processes(&[("brief", 1), ("respawned", 1)]);
    fx.start();
    let fx_log = || read_log(&fx, "");
    let _guard = PrintOnPanic(&fx_log);
    wait_for(WAIT, "two runs of each in the log", || {
        let t = read_log(&fx, "");
        let runs = |n: &str| {
            t.lines()
                .filter(|l| l.ends_with(&format!(" {n} last words, no newline")))
                .count()
        };
        (runs("brief.0") >= 2 && runs("respawned.0") >= 2).then_some(())
    });
    for line in read_log(&fx, "").lines() {
        let (name, rest) = split_prefixed(line).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            rest == format!("start of box/{name}") || rest == "last words, no newline",
            "{line:?}"
        );
    }
    // The knot stayed pid 1 of `respawned` (its pump is the knot's own).
    let ps = fx.ps();
    let respawned = inst(&ps, "box/respawned.0").expect("respawned");
    assert!(respawned["restarts"] == 0, "{respawned}");
}

/// With `stdio-log-max-size: null` and no prefixes nothing stands between
/// the workload and its log: its stdout and stderr are the file itself
/// (as before the pump existed). By default they are a pipe, and the
/// workload has no other fd: the log's dir and file stay with its pid 1.
#[test]
fn without_cap_or_prefixes_the_workload_writes_the_file() {
    let mut fx = fixture!();
    sandbox(
        &fx,
        "stdio-log-max-size: null\nstdio-log-timestamps: false\nstdio-log-names: false\n",
    );
    // After the line, the workload looks for its pid 1's fds (the log,
    // its dir, the pipe's read end): it must get nothing.
    fx.container(
        "plain",
        &sh(
            "echo plain line; ls -l /proc/1/fd/ 2>&1 | sed 's/^/fd-probe: /'; \
             cat /proc/1/fd/7 2>&1 | head -1 | sed 's/^/fd-probe: /'; exec sleep 1000",
            "kill-timeout: 1\n",
        ),
    );
    fx.processes(&[("plain", 1)]);
    fx.start();
    let ps = fx.wait_ps("plain running", |ps| all_running(ps, &["box/plain.0"]));
    let (_, work) = pids(&ps, "box/plain.0");
    let fd1 = fs::read_link(format!("/proc/{work}/fd/1")).expect("fd 1");
    assert_eq!(fd1, log_path(&fx, ""));
    wait_for(WAIT, "the raw line", || {
        read_log(&fx, "").starts_with("plain line\n").then_some(())
    });

    // Back to the defaults: a reload restarts it (its config changed),
    // now writing into a pipe.
    sandbox(&fx, "");
    reload_and_wait(&fx);
    let ps = fx.wait_ps("plain restarted", |ps| {
        all_running(ps, &["box/plain.0"]) && pids(ps, "box/plain.0").1 != work
    });
    let (_, work) = pids(&ps, "box/plain.0");
    let fd1 = fs::read_link(format!("/proc/{work}/fd/1")).expect("fd 1");
    assert!(fd1.to_string_lossy().starts_with("pipe:"), "{fd1:?}");
    let fds: BTreeSet<String> = fs::read_dir(format!("/proc/{work}/fd"))
        .expect("fds")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds, BTreeSet::from(["0".into(), "1".into(), "2".into()]));
    let probes = wait_for(WAIT, "a prefixed line and the probes", || {
        let log = read_log(&fx, "");
        let ours: Vec<(&str, &str)> = log.lines().filter_map(|l| split_prefixed(l).ok()).collect();
        let probes: Vec<String> = ours
            .iter()
            .filter(|(_, rest)| rest.starts_with("fd-probe: "))
            .map(|(_, rest)| rest.to_string())
            .collect();
        (ours.contains(&("plain.0", "plain line")) && probes.len() >= 2).then_some(probes)
    });
    // Both refused (ls prints its "total 0" header all the same); no fd
    // target shows.
    assert!(
        probes
            .iter()
            .all(|p| p.contains("Permission denied") || p == "fd-probe: total 0"),
        "{probes:?}"
    );
    assert_eq!(
        probes
            .iter()
            .filter(|p| p.contains("Permission denied"))
            .count(),
        2,
        "{probes:?}"
    );
    assert!(!read_log(&fx, "").contains("log/stdio"));
}

/// Prints what `0` returns when the test fails (the log it looked at).
struct PrintOnPanic<'a>(&'a dyn Fn() -> String);

impl Drop for PrintOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- stdio log ---\n{}", (self.0)());
        }
    }
}
