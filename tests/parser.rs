//! Who parses an untrusted container config, and with which privileges.
//!
//! An attacker who controls a container config controls the input of the
//! YAML parser. If a parser bug ever lets that input run code, the code
//! runs with whatever the parsing process holds. These tests look at that
//! process from outside while it parses, as root on the host would: its
//! `/proc/PID/status` (ids, groups, capability sets, no_new_privs),
//! `/proc/PID/limits` and `/proc/PID/fd`, for every entry point that parses
//! one: `cairn tree`, `cairn cmd`, `cairn check` and `cairn check
//! --container`.
//!
//! To be seen at work the parser needs a moment: the config is a large but
//! well-formed file (about 44,000 `environ` entries, just under the 1 MiB
//! cap) that parses in about half a second in a debug build. Its `user-id`
//! is outside the sandbox's range, so it fails validation after the parse
//! and no container ever starts: every process below the command is the
//! parser or the process that reads the file for it. The parser is told
//! apart as the descendant that never has a child of its own; a watch that
//! did not see it long enough is repeated.
//!
//! Needs root (the ids are only dropped by a privileged caller); skips
//! otherwise (fails under `CI=true`).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{CgroupGuard, ConfigSet, cairn, cairn_bin, is_root, stderr};

/// Watches before a test gives up on seeing the parser.
const TRIES: usize = 5;
/// Looks at a process before it counts as seen parsing (the file takes
/// hundreds of them to parse; the reader of the tree forks its parser at
/// once after a short read).
const SEEN_ENOUGH: usize = 10;

/// One watch at a time: the watchers would otherwise take the CPUs the
/// parsers they watch need.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A config set: sandbox `box` (uids 1000-1999), a Command entry `cmd` and
/// a Daemon entry `daemon`, both with the big config of image `img`.
struct Fx {
    set: ConfigSet,
    _cgroup: CgroupGuard,
}

impl Fx {
    fn new() -> Fx {
        let set = ConfigSet::new();
        let cgroup = CgroupGuard::new();
        set.write_master(&format!(
            "config-log-dir: null\ncgroup-name: {}\n",
            cgroup.name
        ));
        set.write(
            "sandboxes/box.yaml",
            format!(
                "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n",
                set.s("images")
            ),
        );
        set.write(
            "processes/box.yaml",
            "cmd:\n  kind: Command\n  image: img\n  config: /config/big.yaml\n\
             daemon:\n  image: img\n  config: /config/big.yaml\n  instances: 1\n",
        );
        set.write("images/img/config/big.yaml", big_config());
        Fx {
            set,
            _cgroup: cgroup,
        }
    }

    /// Start `cairn ARGS`, its stderr piped (the tree's goes to a file:
    /// nobody reads it while the test runs).
    fn spawn(&self, args: &[&str]) -> Child {
        let stderr = if args.first() == Some(&"tree") {
            Stdio::from(fs::File::create(self.set.p("tree.log")).expect("tree.log"))
        } else {
            Stdio::piped()
        };
        Command::new(cairn_bin())
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn cairn")
    }
}

/// Valid YAML just under the 1 MiB cap, slow enough to parse to be seen,
/// with a `user-id` (5) that no sandbox here allows.
fn big_config() -> String {
    let mut text = String::from("kind: Daemon\nexecutable: /bin/true\nuser-id: 5\nenviron:\n");
    let mut i = 0;
    loop {
        let line = format!("  V{i}: xxxxxxxxxxxx\n");
        if text.len() + line.len() > 1_000_000 {
            return text;
        }
        text.push_str(&line);
        i += 1;
    }
}

/// What one look at a process showed.
#[derive(Debug, Clone, Default)]
struct Look {
    status: String,
    limits: String,
    /// Targets of `/proc/PID/fd/*` (`pipe:[N]`, a path, ...).
    fds: Vec<String>,
}

/// One process below the command, over all looks.
#[derive(Debug, Default)]
struct Watched {
    looks: usize,
    had_children: bool,
    last: Option<Look>,
}

fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|s| s.parse::<i32>().ok()),
                );
            }
        }
    }
    out
}

/// Whether the process is alive and not on its way out: `PF_EXITING` in the
/// flags of `/proc/PID/stat` is set as exit(2) begins, before the fds are
/// closed (and long before the process is a zombie).
fn live(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Fields after the command name (which may hold spaces): state, ppid,
    // pgrp, session, tty, tpgid, flags.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let flags = rest
        .split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok());
    matches!(flags, Some(f) if f & PF_EXITING == 0)
}

/// A complete look at a live process (see `live`), or None.
fn look(pid: i32) -> Option<Look> {
    if !live(pid) {
        return None;
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let mut fds = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        fds.push(fs::read_link(e.path()).ok()?.display().to_string());
    }
    // Still the same live process after all that.
    if !live(pid) {
        return None;
    }
    Some(Look {
        status,
        limits,
        fds,
    })
}

/// Look at every process below `root` as often as possible until `done`.
fn watch(
    root: i32,
    mut done: impl FnMut(&BTreeMap<i32, Watched>) -> bool,
) -> BTreeMap<i32, Watched> {
    let mut seen: BTreeMap<i32, Watched> = BTreeMap::new();
    while !done(&seen) {
        let mut todo = children(root);
        while let Some(pid) = todo.pop() {
            let below = children(pid);
            let Some(l) = look(pid) else { continue };
            let w = seen.entry(pid).or_default();
            w.looks += 1;
            w.had_children |= !below.is_empty();
            w.last = Some(l);
            todo.extend(below);
        }
        // Leave the CPUs (two, on the test machine) to the parser.
        std::thread::sleep(Duration::from_micros(500));
    }
    seen
}

/// The parser: a descendant that never had a child and was seen long
/// enough to have been parsing.
fn parser(seen: &BTreeMap<i32, Watched>) -> Option<(i32, Look)> {
    seen.iter()
        .filter(|(_, w)| !w.had_children && w.looks >= SEEN_ENOUGH)
        .find_map(|(&pid, w)| w.last.clone().map(|l| (pid, l)))
}

/// `Key:` of a status file or a row of a limits file, whitespace-joined.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| {
            v.trim_start_matches(':')
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("<no {key}>"))
}

/// The parser holds nothing: nobody/nogroup, no groups, no capability in
/// any set, no_new_privs, no fd but its result pipe, and hard limits.
fn assert_confined(what: &str, pid: i32, l: &Look) {
    let s = &l.status;
    let show = || {
        format!(
            "{what}: parser pid {pid}\n{s}\n{}\nfds {:?}",
            l.limits, l.fds
        )
    };
    assert_eq!(field(s, "Uid"), "65534 65534 65534 65534", "{}", show());
    assert_eq!(field(s, "Gid"), "65534 65534 65534 65534", "{}", show());
    assert_eq!(field(s, "Groups"), "", "{}", show());
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(s, set), "0000000000000000", "{set}: {}", show());
    }
    assert_eq!(field(s, "NoNewPrivs"), "1", "{}", show());
    // Under the parser's system call filter (no exec, fork, socket).
    assert_eq!(field(s, "Seccomp"), "2", "{}", show());
    for (row, want) in [
        ("Max open files", "0 0 files"),
        ("Max processes", "0 0 processes"),
        ("Max file size", "0 0 bytes"),
        ("Max core file size", "0 0 bytes"),
    ] {
        assert_eq!(field(&l.limits, row), want, "{row}: {}", show());
    }
    for row in ["Max cpu time", "Max address space"] {
        assert!(
            !field(&l.limits, row).starts_with("unlimited"),
            "{row}: {}",
            show()
        );
    }
    assert!(
        l.fds.len() == 1 && l.fds[0].starts_with("pipe:"),
        "open fds: {}",
        show()
    );
}

/// Run `cairn ARGS` until the parser was seen, at most TRIES times; the
/// command's own exit code must be `code`.
fn parser_of_command(fx: &Fx, args: &[&str], code: i32) -> (i32, Look) {
    for _ in 0..TRIES {
        // A config parsed before is not parsed again (the parse cache of
        // the runtime dir): every try must parse.
        let _ = fs::remove_dir_all(fx.set.p("run/parsed"));
        let mut child = fx.spawn(args);
        let root = child.id() as i32;
        let started = Instant::now();
        let seen = watch(root, |_| {
            matches!(child.try_wait(), Ok(Some(_))) || started.elapsed() > Duration::from_secs(60)
        });
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(code),
            "cairn {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(p) = parser(&seen) {
            return p;
        }
    }
    panic!(
        "cairn {args:?}: no process parsing the config was seen below it in {TRIES} runs \
         (does it parse in its own process?)"
    );
}

#[test]
fn cmd_parses_the_container_config_unprivileged() {
    require!(
        is_root(),
        "the parser drops privileges only when started by root"
    );
    let _serial = serial();
    let fx = Fx::new();
    let master = fx.set.master();
    let (pid, l) = parser_of_command(&fx, &["cmd", "-c", &master, "box", "cmd"], 1);
    assert_confined("cairn cmd", pid, &l);
}

#[test]
fn check_container_parses_the_config_unprivileged() {
    require!(
        is_root(),
        "the parser drops privileges only when started by root"
    );
    let _serial = serial();
    let fx = Fx::new();
    let images = fx.set.s("images/img");
    let args = ["check", "--container", &images, "/config/big.yaml"];
    let (pid, l) = parser_of_command(&fx, &args, 0);
    assert_confined("cairn check --container", pid, &l);
}

#[test]
fn check_parses_container_configs_unprivileged() {
    require!(
        is_root(),
        "the parser drops privileges only when started by root"
    );
    let _serial = serial();
    let fx = Fx::new();
    let master = fx.set.master();
    let (pid, l) = parser_of_command(&fx, &["check", "-c", &master], 1);
    assert_confined("cairn check", pid, &l);
}

#[test]
fn tree_parses_container_configs_unprivileged() {
    require!(
        is_root(),
        "the parser drops privileges only when started by root"
    );
    let _serial = serial();
    let fx = Fx::new();
    let master = fx.set.master();
    let mut tree = fx.spawn(&["tree", "-c", &master]);
    let root = tree.id() as i32;
    let mut found = None;
    for round in 0..TRIES {
        if round > 0 {
            // Every reload reads every container config again (and
            // parses what the parse cache does not hold).
            let _ = fs::remove_dir_all(fx.set.p("run/parsed"));
            let out = cairn(&["reload", "-c", &master]);
            assert!(out.status.success(), "reload: {}", stderr(&out));
        }
        let started = Instant::now();
        // Until a parser has come and gone (or a few seconds passed).
        let seen = watch(root, |seen| {
            let gone = parser(seen).is_some_and(|(pid, _)| look(pid).is_none());
            gone || started.elapsed() > Duration::from_secs(10)
        });
        if let Some(p) = parser(&seen) {
            found = Some(p);
            break;
        }
        assert!(
            matches!(tree.try_wait(), Ok(None)),
            "the tree exited: {}",
            fs::read_to_string(fx.set.p("tree.log")).unwrap_or_default()
        );
    }
    // SAFETY: SIGTERM to the tree this test started.
    unsafe { libc::kill(root, libc::SIGTERM) };
    let _ = tree.wait();
    let (pid, l) = found.unwrap_or_else(|| {
        panic!("cairn tree: no process parsing the config was seen below it in {TRIES} rounds")
    });
    assert_confined("cairn tree", pid, &l);
}

/// Fail closed: where the parser cannot become nobody (here: root of a
/// user namespace that maps only uid 0, and whose setgroups(2) is denied),
/// nothing is parsed and the error names the file and the step.
#[test]
fn a_parser_that_cannot_drop_privileges_parses_nothing() {
    let userns = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    require!(userns, "unshare --user --map-root-user does not work here");
    let fx = Fx::new();
    fx.set
        .write("images/img/config/small.yaml", "executable: /bin/true\n");
    let images = fx.set.s("images/img");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user"])
        .arg(cairn_bin())
        .args(["check", "--container", &images, "/config/small.yaml"])
        .output()
        .expect("run unshare");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("config/small.yaml: not parsed: the config parser could not drop its privileges: setgroups"),
        "{err}"
    );
}
