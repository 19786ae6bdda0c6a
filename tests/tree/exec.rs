//! `cairn exec`: a command run inside a running instance, looked at from
//! inside (its /proc/self, what it sees of the container) and from the
//! host (namespaces, cgroup, what it leaves running); its exit statuses,
//! `--user`, `-t`, and the instances it refuses to join.

use super::*;

/// A Daemon sleeping as UID:GID with a small environ.
fn app() -> String {
    format!(
        "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sleep\n\
         arguments: ['1000']\nkill-timeout: 1\nenviron:\n  PATH: /bin\n  FOO: bar\n"
    )
}

/// A tree running `box/app.0`; (fixture, knot pid, workload pid).
fn running_app() -> Option<(Fx, i32, i32)> {
    let ready = container_prereqs();
    if let Err(why) = ready {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot run under CI: {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    let mut fx = Fx::new(&ready.expect("checked above"));
    fx.container("app", &app());
    fx.processes(&[("app", 1)]);
    fx.start();
    let ps = fx.wait_ps("app.0 running", |ps| all_running(ps, &["box/app.0"]));
    let (knot, workload) = pids(&ps, "box/app.0");
    Some((fx, knot, workload))
}

/// `cairn exec -c MASTER ARGS...` with a clean environment (PATH, TERM
/// and a variable that must not reach the command), stdin from `input`.
fn exec(fx: &Fx, args: &[&str], input: &[u8]) -> std::process::Output {
    output_within(
        Command::new(cairn_bin())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TERM", "xterm-test")
            .env("CALLER_SECRET", "leak")
            .args(["exec", "-c", &fx.master_path()])
            .args(args),
        Some(input),
        Duration::from_secs(20),
    )
}

/// `key` lines (`KEY value...`) of a probe's output.
fn lines_of<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .collect()
}

#[test]
fn exec_runs_as_a_process_of_the_instance() {
    let Some((fx, _knot, workload)) = running_app() else {
        return;
    };
    let probe = "echo ROOT $(stat -c %d:%i /); \
         for n in mnt uts ipc net pid cgroup user; do echo NS $n $(readlink /proc/self/ns/$n); done; \
         grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status \
           | sed 's/^/STATUS /'; \
         tr '\\0' '\\n' < /proc/$$/environ | sed 's/^/ENV /'; \
         echo CWD $(pwd); \
         sed 's/^/CG /' /proc/self/cgroup; \
         ps -o pid,user,args | sed 's/^/PS /'; \
         echo STDIN $(cat)";
    let out = exec(&fx, &["box/app.0", "sh", "-c", probe], b"typed\n");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    // The container's root: the image dir, not the host's /.
    let image = fs::metadata(fx.set.p("images/bb")).expect("image");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        lines_of(&text, "ROOT"),
        [format!("{}:{}", image.dev(), image.ino())],
        "{text}"
    );
    // Every namespace is the workload's (user and network included).
    for n in ["mnt", "uts", "ipc", "net", "pid", "cgroup", "user"] {
        let want = fs::read_link(format!("/proc/{workload}/ns/{n}")).expect("workload ns");
        assert!(
            lines_of(&text, "NS").contains(&format!("{n} {}", want.display()).as_str()),
            "{n}: {text}"
        );
    }
    // Its ids, no capability in any set, no_new_privs, the filter.
    let status = lines_of(&text, "STATUS").join("\n");
    for want in [
        "Uid:\t1000\t1000\t1000\t1000",
        "Gid:\t1000\t1000\t1000\t1000",
        "CapInh:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(status.contains(want), "{want:?} not in\n{status}");
    }
    let groups = status
        .lines()
        .find(|l| l.starts_with("Groups:"))
        .unwrap_or("");
    assert_eq!(groups.trim_end(), "Groups:", "{status}");
    // Nothing of the caller's environment but TERM.
    let mut env = lines_of(&text, "ENV");
    env.sort();
    assert_eq!(env, ["FOO=bar", "PATH=/bin", "TERM=xterm-test"], "{text}");
    assert_eq!(lines_of(&text, "CWD"), ["/"], "{text}");
    // Its cgroup namespace is rooted at the instance's leaf.
    let cg = lines_of(&text, "CG");
    assert!(
        !cg.is_empty() && cg.iter().all(|l| l.ends_with(":/")),
        "{text}"
    );
    // The same pid namespace: pid 1 is cairn-init, the workload is there.
    let ps = lines_of(&text, "PS").join("\n");
    assert!(
        ps.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 3 && f[1] == "1000" && f[2] == "/bin/sleep"
        }),
        "the workload is not in ps:\n{ps}"
    );
    assert!(
        ps.lines().any(|l| l.split_whitespace().next() == Some("1")),
        "{ps}"
    );
    // The caller's stdin reached it (through a pipe).
    assert_eq!(lines_of(&text, "STDIN"), ["typed"], "{text}");
    // From the host, while it runs: only fds 0, 1 and 2, each a pipe
    // (never a file or terminal of the caller), though the caller has
    // more open.
    let mut child = Command::new(cairn_bin())
        .args(["exec", "-c", &fx.master_path(), "box/app.0", "sh", "-c"])
        .arg("echo ready; exec sleep 30")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn exec");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    let joined = wait_for(Duration::from_secs(5), "the joined sleep", || {
        children(child.id() as i32).into_iter().find(|&p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
    });
    let mut fds: Vec<(String, String)> = fs::read_dir(format!("/proc/{joined}/fd"))
        .expect("fd dir")
        .flatten()
        .map(|e| {
            let link = fs::read_link(e.path()).unwrap_or_default();
            (
                e.file_name().to_string_lossy().into_owned(),
                link.display().to_string(),
            )
        })
        .collect();
    fds.sort();
    kill(child.id() as i32, libc::SIGTERM);
    let _ = wait_child(&mut child, WAIT);
    assert_eq!(
        fds.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{fds:?}"
    );
    assert!(fds.iter().all(|(_, l)| l.starts_with("pipe:")), "{fds:?}");
}

#[test]
fn exec_exit_statuses_come_back_as_for_cmd() {
    let Some((fx, _, _)) = running_app() else {
        return;
    };
    for (script, want) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("kill -TERM $$", 128 + libc::SIGTERM),
        ("kill -KILL $$", 128 + libc::SIGKILL),
    ] {
        let out = exec(&fx, &["box/app.0", "sh", "-c", script], b"");
        assert_eq!(out.status.code(), Some(want), "{script}: {}", stderr(&out));
    }
    // Not found in the container's PATH: 127, naming the command.
    let out = exec(&fx, &["box/app.0", "no-such-command"], b"");
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("box/app.0: no-such-command: not found in the container"),
        "{}",
        stderr(&out)
    );
    let out = exec(&fx, &["box/app.0", "/bin/no-such-file"], b"");
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    // There but not executable: 126.
    let out = exec(&fx, &["box/app.0", "/etc/hosts"], b"");
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(stderr(&out).contains("/etc/hosts"), "{}", stderr(&out));
    // Words after the instance are the command's, options included.
    let out = exec(&fx, &["box/app.0", "echo", "-c", "x"], b"");
    assert_eq!(stdout(&out), "-c x\n", "{}", stderr(&out));
    // A TERM sent to cairn exec reaches the command, which chooses its
    // status.
    let mut child = Command::new(cairn_bin())
        .args(["exec", "-c", &fx.master_path(), "box/app.0", "sh", "-c"])
        .arg("trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn exec");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    assert_eq!(line, "ready\n");
    kill(child.id() as i32, libc::SIGTERM);
    let status = wait_child(&mut child, WAIT).expect("cairn exec ended");
    assert_eq!(status.code(), Some(42));
    // Killed with SIGKILL, cairn exec takes the command with it.
    let mut child = Command::new(cairn_bin())
        .args([
            "exec",
            "-c",
            &fx.master_path(),
            "box/app.0",
            "sleep",
            "1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn exec");
    let joined = wait_for(Duration::from_secs(5), "the joined sleep", || {
        children(child.id() as i32).into_iter().find(|&p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
    });
    kill(child.id() as i32, libc::SIGKILL);
    let _ = child.wait();
    wait_for(Duration::from_secs(5), "the command gone", || {
        (!alive(joined)).then_some(())
    });
}

#[test]
fn exec_user_must_be_allowed_by_the_sandbox() {
    let Some((fx, _, _)) = running_app() else {
        return;
    };
    let id = |user: &str| exec(&fx, &["--user", user, "box/app.0", "id"], b"");
    let out = id("1500");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "uid=1500 gid=1000\n");
    let out = id("1500:1600");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "uid=1500 gid=1600\n");
    for (user, why) in [
        (
            "0",
            "--user 0:1000: 0 is not in the sandbox's allow-users [1000-1999]",
        ),
        (
            "1500:0",
            "--user 1500:0: 0 is not in the sandbox's allow-groups [1000-1999]",
        ),
        ("root", "--user: not UID or UID:GID"),
    ] {
        let out = id(user);
        assert_eq!(out.status.code(), Some(125), "{user}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("box/app.0: {why}")),
            "{user}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{user} ran: {}", stdout(&out));
    }
}

#[test]
fn exec_refuses_instances_that_do_not_run_with_125() {
    let ready = container_prereqs();
    require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
    let mut fx = Fx::new(&ready.expect("checked above"));
    fx.container("app", &app());
    fx.container("crash", &sh("exit 1", "restart-timeout: 60\n"));
    fx.processes(&[("app", 1), ("crash", 1)]);
    let out = exec(&fx, &["box/app.0", "true"], b"");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("box/app.0: not running (no cairn tree runs with runtime dir"),
        "{}",
        stderr(&out)
    );
    fx.start();
    fx.wait_ps("app.0 running, crash.0 backing off", |ps| {
        all_running(ps, &["box/app.0"]) && state(ps, "box/crash.0") == Some("backoff")
    });
    for (target, why) in [
        ("box/nope.0", "no entry \"nope\""),
        ("box/app", "\"box/app\" is not an instance name"),
        (
            "box/app.1",
            "box/app.1: not running (the tree does not list it)",
        ),
        ("box/crash.0", "box/crash.0: not running (backoff)"),
        ("nobox/app.0", "no such sandbox \"nobox\""),
    ] {
        let out = exec(&fx, &[target, "true"], b"");
        assert_eq!(out.status.code(), Some(125), "{target}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{target}: {}", stderr(&out));
    }
    // A config changed since the instance started (not reloaded yet):
    // exec would not give the command the instance's environ and ids.
    fx.container("app", &app().replace("FOO: bar", "FOO: baz"));
    let out = exec(&fx, &["box/app.0", "true"], b"");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("box/app.0: runs config"),
        "{}",
        stderr(&out)
    );
    fx.container("app", &app());
    // Only root may join a container.
    let out = output_within(
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(cairn_bin())
            .args(["exec", "-c", &fx.master_path(), "box/app.0", "true"]),
        None,
        WAIT,
    );
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must run as root"),
        "{}",
        stderr(&out)
    );
    // The instance it refused is untouched, and joinable as before.
    let out = exec(&fx, &["box/app.0", "true"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn what_exec_leaves_running_dies_with_the_instance() {
    let Some((fx, knot, _)) = running_app() else {
        return;
    };
    // The command returns while what it started in the background runs
    // on (holding the command's stdout).
    let start = Instant::now();
    let out = exec(&fx, &["box/app.0", "sh", "-c", "sleep 1000 & echo $!"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(10));
    let inside: i32 = stdout(&out).trim().parse().expect("a pid");
    // On the host: a process of the instance (its pid namespace and its
    // cgroup leaf), not of ours.
    let leftover = wait_for(Duration::from_secs(5), "the leftover sleep", || {
        fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|&p| {
                let ns = nspids(p);
                ns.len() == 2 && ns[1] == inside && sys_pid_ns(p) == sys_pid_ns(knot)
            })
    });
    let leaf = cgroup_leaves(&fx.cgroup.name)
        .into_iter()
        .find(|d| d.to_string_lossy().ends_with("box:app.0"))
        .expect("the instance's leaf");
    assert!(
        cgroup_procs(&leaf).contains(&leftover),
        "{leftover} not in {}",
        leaf.display()
    );
    // Stopping the instance ends it.
    fx.set.write("processes/box.yaml", "{}\n");
    reload_and_wait(&fx);
    fx.wait_ps("app.0 gone", |ps| inst(ps, "box/app.0").is_none());
    wait_for(Duration::from_secs(10), "the leftover gone", || {
        (!alive(leftover)).then_some(())
    });
}

/// The pid namespace link of a process, if it can be read.
fn sys_pid_ns(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

#[test]
fn exec_joins_the_workloads_user_namespace() {
    let ready = container_prereqs();
    require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
    let mut fx = Fx::new(&ready.expect("checked above"));
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [0-1]\nallow-groups: [0-1]\n\
             uid-map: [{{inside: 0, outside: 100000, count: 2}}]\n\
             gid-map: [{{inside: 0, outside: 200000, count: 2}}]\nmin-restart-timeout: 0\n",
            fx.set.s("images"),
        ),
    );
    fx.container(
        "app",
        &app()
            .replace(&format!("user-id: {UID}"), "user-id: 1")
            .replace(&format!("group-id: {GID}"), "group-id: 1"),
    );
    fx.processes(&[("app", 1)]);
    fx.start();
    let ps = fx.wait_ps("app.0 running", |ps| all_running(ps, &["box/app.0"]));
    let (_, workload) = pids(&ps, "box/app.0");
    let probe = "id; readlink /proc/self/ns/user; cat /proc/self/uid_map; \
                 grep -E '^(CapEff|CapPrm|CapBnd):' /proc/self/status";
    let out = exec(&fx, &["box/app.0", "sh", "-c", probe], b"");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let userns = fs::read_link(format!("/proc/{workload}/ns/user")).expect("workload userns");
    assert!(text.starts_with("uid=1 gid=1"), "{text}");
    assert!(text.contains(&userns.display().to_string()), "{text}");
    assert!(text.contains("0     100000          2"), "{text}");
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            text.contains(&format!("{set}:\t0000000000000000")),
            "{text}"
        );
    }
    // Root of the user namespace, if the sandbox allows uid 0: still no
    // capability.
    let out = exec(&fx, &["--user", "0", "box/app.0", "sh", "-c", probe], b"");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.starts_with("uid=0 gid=1"), "{text}");
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
}

#[test]
fn exec_t_gives_a_terminal_of_the_container_sized_as_the_callers() {
    let Some((fx, _, _)) = running_app() else {
        return;
    };
    let (master, slave) = common::open_pty();
    let set_size = |rows: u16, cols: u16| {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
        let r = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&master),
                libc::TIOCSWINSZ,
                &ws,
            )
        };
        assert_eq!(r, 0, "TIOCSWINSZ");
    };
    let termios = |f: &fs::File| {
        // SAFETY: tcgetattr fills a zeroed termios.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(
                libc::tcgetattr(std::os::fd::AsRawFd::as_raw_fd(f), &mut t),
                0
            );
            (t.c_iflag, t.c_oflag, t.c_lflag)
        }
    };
    set_size(30, 100);
    let before = termios(&slave);
    let mut cmd = Command::new(cairn_bin());
    cmd.args([
        "exec",
        "-c",
        &fx.master_path(),
        "-t",
        "box/app.0",
        "sh",
        "-c",
    ])
    .arg("tty; stty size; echo ready; read x; stty size; echo got $x; exit 5")
    .stdin(slave.try_clone().expect("dup"))
    .stdout(slave.try_clone().expect("dup"))
    .stderr(slave.try_clone().expect("dup"));
    // The pty is cairn exec's controlling terminal, as a shell's would be:
    // its resizes reach it as SIGWINCH.
    // SAFETY: setsid(2) and ioctl(TIOCSCTTY) in the forked child, both
    // async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn cairn exec -t");
    drop(slave);
    let mut got = String::new();
    let mut reader = master.try_clone().expect("dup");
    let read_until = |got: &mut String, reader: &mut fs::File, want: &str| {
        use std::io::Read;
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while !got.contains(want) {
            assert!(start.elapsed() < WAIT, "no {want:?} in {got:?}");
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    };
    read_until(&mut got, &mut reader, "ready");
    // The command's terminal is its container's (/dev/pts of its own
    // devpts), sized as ours; our terminal is raw meanwhile.
    assert!(got.contains("/dev/pts/0"), "{got:?}");
    assert!(got.contains("30 100"), "{got:?}");
    assert_ne!(termios(&master), before, "the caller's terminal is not raw");
    set_size(40, 120);
    std::thread::sleep(Duration::from_millis(300));
    use std::io::Write;
    (&master).write_all(b"hello\r").expect("type");
    read_until(&mut got, &mut reader, "got hello");
    assert!(got.contains("40 120"), "not resized: {got:?}");
    let status = wait_child(&mut child, WAIT).expect("cairn exec -t ended");
    assert_eq!(status.code(), Some(5), "{got:?}");
    // Our terminal is as it was.
    assert_eq!(termios(&master), before);
}

#[test]
fn exec_joins_the_instances_user_namespace_not_one_the_workload_made() {
    let ready = container_prereqs();
    require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
    let mut fx = Fx::new(&ready.expect("checked above"));
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [0-1]\nallow-groups: [0-1]\n\
             uid-map: [{{inside: 0, outside: 100000, count: 2}}]\n\
             gid-map: [{{inside: 0, outside: 200000, count: 2}}]\n\
             allow-user-namespaces: true\nmin-restart-timeout: 0\n",
            fx.set.s("images"),
        ),
    );
    // The workload moves itself into a user namespace of its own, where
    // it has every capability.
    fx.container(
        "nested",
        "kind: Daemon\nuser-id: 1\ngroup-id: 1\nexecutable: /bin/unshare\n\
         arguments: [-U, /bin/sleep, '1000']\nkill-timeout: 1\nenviron:\n  PATH: /bin\n",
    );
    fx.processes(&[("nested", 1)]);
    fx.start();
    let ps = fx.wait_ps("nested.0 running", |ps| all_running(ps, &["box/nested.0"]));
    let (_, workload) = pids(&ps, "box/nested.0");
    let theirs = wait_for(WAIT, "the workload in its own user namespace", || {
        let status = fs::read_to_string(format!("/proc/{workload}/status")).ok()?;
        // Unmapped in its own namespace: the overflow uid, seen from ours
        // as the instance's mapped uid still.
        let comm = fs::read_to_string(format!("/proc/{workload}/comm")).ok()?;
        (comm.trim() == "sleep" && status.contains("Uid:\t100001"))
            .then(|| fs::read_link(format!("/proc/{workload}/ns/user")).ok())
            .flatten()
    });
    let probe = "readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u";
    let out = exec(&fx, &["box/nested.0", "sh", "-c", probe], b"");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        !text.contains(&theirs.display().to_string()),
        "joined the workload's own user namespace: {text}"
    );
    assert!(text.contains("0     100000          2"), "{text}");
    assert!(text.ends_with("1\n"), "{text}");
}
