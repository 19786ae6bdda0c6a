//! Processes, fds, environment and resource limits inside the container,
//! and what the workload can reach outside it.

use super::*;

#[test]
fn only_container_processes_are_visible() {
    let mut fx = fixture!();
    let out = fx.probe(
        "pids",
        "",
        "echo self=$$; for d in /proc/[0-9]*; do echo \"pid=${d#/proc/}\"; done; \
         echo comm1=$(cat /proc/1/comm); \
         echo \"exe=$(cat /proc/1/exe 2>&1 >/dev/null)\"; \
         echo \"root=$(ls /proc/1/root/ 2>&1 >/dev/null)\"; \
         echo \"environ=$(cat /proc/1/environ 2>&1 >/dev/null)\"; \
         echo \"mem=$(head -c 1 /proc/1/mem 2>&1 >/dev/null)\"; \
         echo \"cwd=$(ls /proc/1/cwd/ 2>&1 >/dev/null)\"; \
         echo \"fd=$(ls /proc/1/fd/ 2>&1 >/dev/null)\"",
    );
    let text = ok(&out);
    let v = kv(&text);
    let pids: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("pid="))
        .collect();
    let want: BTreeSet<&str> = ["1", v["self"].as_str()].into_iter().collect();
    assert_eq!(pids, want, "{text}");
    // The knot, named after its instance `box/cmd.pids.PID`: the 15 bytes
    // kept are `cmd.pids.PID`, or its tail for a long PID.
    assert!(
        v["comm1"]
            .split_once(".pids.")
            .is_some_and(|(_, pid)| pid.parse::<u32>().is_ok()),
        "pid 1 must be the knot:\n{text}"
    );
    for k in ["exe", "root", "environ", "mem", "cwd", "fd"] {
        assert!(
            v[k].contains("Permission denied"),
            "/proc/1/{k} is reachable:\n{text}"
        );
    }
}

#[test]
fn only_stdio_fds_are_open() {
    let mut fx = fixture!();
    fx.command("fds", &probe(""));
    // Leak an fd without close-on-exec into `cairn cmd`: it must not reach
    // the workload either.
    let leak = fs::File::open(fx.set.p("host-hosts")).unwrap();
    let leak_fd = std::os::fd::AsRawFd::as_raw_fd(&leak);
    let mut cmd = fx.cmd(
        "fds",
        // No pipe and no command substitution: the shell itself must
        // hold no extra fd while ls reads its fd table.
        &["ls /proc/$$/fd; echo ==; readlink /proc/$$/fd/0"],
    );
    // SAFETY: only dup2(2) between fork and exec, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(leak_fd, 7) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output_within(&mut cmd, None, TIMEOUT);
    fx.assert_cleaned_up();
    let text = ok(&out);
    let (fds, stdin) = text.split_once("==\n").unwrap();
    assert_eq!(
        fds.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{text}"
    );
    assert_eq!(stdin, "/dev/null\n", "{text}");
}

#[test]
fn environment_is_exactly_configured() {
    let mut fx = fixture!();
    fx.command(
        "env",
        &format!(
            "kind: Command\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sh\n\
             arguments: [-c]\nenviron:\n  PATH: /bin\n  GREETING: hello world\n  \
             EMPTY: ''\n  MYPID: '@{{lithos:pid}}'\n"
        ),
    );
    fx.command(
        "envterm",
        &format!(
            "kind: Command\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sh\n\
             arguments: [-c]\nenviron:\n  PATH: /bin\n  TERM: vt100\n"
        ),
    );
    let script = "echo self=$$; echo ==; env";
    let run = |name: &str| {
        let mut cmd = fx.cmd(name, &[script]);
        cmd.env("CALLER_SECRET", "must-not-leak")
            .env("LD_PRELOAD", "/nonexistent.so")
            .env("CAIRN_INJECTED", "x");
        let out = output_within(&mut cmd, None, TIMEOUT);
        fx.assert_cleaned_up();
        let text = ok(&out);
        let (head, env) = text.split_once("==\n").unwrap();
        let mut env = kv(env);
        // What busybox sh itself exports.
        for k in ["PWD", "SHLVL", "_", "OLDPWD"] {
            env.remove(k);
        }
        (kv(head)["self"].clone(), env)
    };

    let (self_pid, env) = run("env");
    let name = env.get("CAIRN_NAME").cloned().unwrap_or_default();
    let pid_part = name.strip_prefix("box/cmd.env.").unwrap_or("");
    assert!(
        !pid_part.is_empty() && pid_part.bytes().all(|b| b.is_ascii_digit()),
        "CAIRN_NAME={name}"
    );
    let want: BTreeMap<String, String> = [
        ("PATH", "/bin"),
        ("GREETING", "hello world"),
        ("EMPTY", ""),
        ("MYPID", self_pid.as_str()),
        ("TERM", "xterm-cairn-test"),
        ("CAIRN_NAME", name.as_str()),
        ("LITHOS_NAME", name.as_str()),
        ("CAIRN_CONFIG", "/config/env.yaml"),
        ("LITHOS_CONFIG", "/config/env.yaml"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env, want);

    // A TERM in environ wins over the caller's.
    let (_, env) = run("envterm");
    assert_eq!(env.get("TERM").map(String::as_str), Some("vt100"));
}

#[test]
fn fileno_limit_applies() {
    let mut fx = fixture!();
    let out = fx.probe(
        "fileno",
        "fileno-limit: 100\n",
        "echo soft=$(ulimit -Sn); echo hard=$(ulimit -Hn)",
    );
    let v = kv(&ok(&out));
    assert_eq!(v["soft"], "100");
    assert_eq!(v["hard"], "100");
}

#[test]
fn memory_limit_kills_by_oom_and_is_reported() {
    let mut fx = fixture!();
    // The workload itself (awk, exec'd by sh as pid 2) doubles a string up
    // to 128 MiB, far past the 16 MiB limit.
    let out = fx.probe(
        "oom",
        "memory-limit: 16Mi\n",
        &format!(
            "echo {STARTED}; exec awk 'BEGIN {{ s = \"x\"; for (i = 0; i < 27; i++) s = s s; \
             print \"survived\", length(s) }}'"
        ),
    );
    let err = stderr(&out);
    assert!(stdout(&out).contains(STARTED), "{err}");
    assert!(
        !stdout(&out).contains("survived"),
        "no limit: {}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(err.contains("OOM"), "the OOM kill is not reported:\n{err}");
    assert!(
        err.contains("box/cmd.oom."),
        "the instance is not named:\n{err}"
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let mut fx = fixture!();
    fx.command("forkbomb", &probe("pids-limit: 20\ninteractive: true\n"));
    let mut run = fx.spawn(
        "forkbomb",
        &[&format!(
            "echo {STARTED}; \
             (i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done) 2>&1; \
             set -- /proc/[0-9]*; echo procs=$#; echo ready; read x"
        )],
    );
    run.wait_for("ready");
    // While the bomb's children sleep: the instance cgroup holds at most 20
    // tasks, and the host still forks.
    let leaves = cgroup_leaves(&fx.cgroup.name);
    let pids_leaf = leaves
        .iter()
        .find(|p| p.join("pids.max").exists())
        .expect("an instance cgroup with the pids controller");
    assert_eq!(
        fs::read_to_string(pids_leaf.join("pids.max"))
            .unwrap()
            .trim(),
        "20"
    );
    let current: u64 = fs::read_to_string(pids_leaf.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 20, "pids.current {current}");
    assert!(Command::new("true").status().unwrap().success());
    let pid = run.pid();
    run.write_stdin(b"\n");
    let (status, lines, err, _) = run.finish();
    assert_eq!(status.code(), Some(0), "{lines:?}\n{err}");
    let procs: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("procs="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(procs <= 20, "{lines:?}");
    let text = lines.join("\n");
    assert!(
        text.contains("Resource temporarily unavailable") || text.contains("can't fork"),
        "forks did not fail:\n{text}\n{err}"
    );
    // Nothing is left: no process under `cairn cmd`, no instance cgroup.
    assert!(descendants(pid).is_empty());
    fx.assert_cleaned_up();
    assert!(Command::new("true").status().unwrap().success());
}

#[test]
fn limits_fail_closed() {
    let mut fx = fixture!();
    let before = host_mounts();
    fx.command("memlim", &probe("memory-limit: 64Mi\n"));
    fx.command("pidlim", &probe("pids-limit: 64\n"));
    let cg = fx.cgroup.name.clone();
    let cases = [
        (
            format!("cgroup-name: {cg}\ncgroup-controllers: [pids]\n"),
            "memlim",
            "the memory cgroup controller is not available",
        ),
        (
            format!("cgroup-name: {cg}\ncgroup-controllers: [memory]\n"),
            "pidlim",
            "the pids cgroup controller is not available",
        ),
        (
            "cgroup-name: null\n".to_string(),
            "memlim",
            "memory-limit is set but cgroups are off",
        ),
        (
            "cgroup-name: null\n".to_string(),
            "pidlim",
            "pids-limit is set but cgroups are off",
        ),
    ];
    for (master, name, needle) in cases {
        fx.master(&master);
        let out = fx.run(name, &[&format!("echo {STARTED}")]);
        let instance = format!("box/cmd.{name}.");
        assert_refused(&out, 125, &[&instance, needle], &before);
    }
}

#[test]
fn orphaned_grandchildren_are_reaped() {
    let mut fx = fixture!();
    let out = fx.probe(
        "orphans",
        "",
        r#"for i in 1 2 3 4 5; do
             p=$(sh -c 'sleep 0.2 >/dev/null 2>&1 & echo $!')
             read -r s < /proc/$p/stat; set -- ${s##*\)}; echo "ppid_$i=$2"
             last=$p
           done
           sleep 0.8
           z=0
           for f in /proc/[0-9]*/stat; do
             read -r s < $f || continue; set -- ${s##*\)}
             [ "$1" = Z ] && z=$((z+1))
           done
           echo zombies=$z
           [ -e /proc/$last ] && echo last=alive || echo last=gone"#,
    );
    let text = ok(&out);
    let v = kv(&text);
    for i in 1..=5 {
        assert_eq!(
            v[&format!("ppid_{i}")],
            "1",
            "orphan not adopted by pid 1:\n{text}"
        );
    }
    assert_eq!(v["zombies"], "0", "{text}");
    assert_eq!(v["last"], "gone", "{text}");
}

/// `cairn cmd` started from a terminal (its controlling tty) for a
/// command that is not `interactive`: the workload must not reach that
/// terminal through /dev/tty (stdin is /dev/null, and the caller's keys are
/// not the workload's business).
#[test]
fn non_interactive_command_cannot_reach_the_callers_terminal() {
    let mut fx = fixture!();
    fx.command("notty", &probe(""));
    let (mut master, slave) = open_pty();
    let mut cmd = fx.cmd(
        "notty",
        &["read -r s < /proc/$$/stat; set -- $s; echo tty_nr=$7; \
           { echo leaked-to-tty > /dev/tty; } 2>/dev/null; echo tty_write=$?; \
           line=; read -t 2 -r line < /dev/tty 2>/dev/null; echo \"tty_read=$line\""],
    );
    cmd.stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid(2) and ioctl(2) between fork and exec: a new session
    // whose controlling terminal is the pty, like a login shell's.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn cairn cmd");
    // What the user types at the terminal.
    master.write_all(b"typed-secret\n").unwrap();
    let out = wait_output_within(child, TIMEOUT);
    fx.assert_cleaned_up();
    let text = ok(&out);
    let v = kv(&text);
    assert_eq!(
        v["tty_nr"], "0",
        "the workload has a controlling terminal:\n{text}"
    );
    assert_ne!(
        v["tty_write"], "0",
        "the workload wrote to the caller's terminal:\n{text}"
    );
    assert_eq!(
        v["tty_read"], "",
        "the workload read the caller's keys:\n{text}"
    );
}

/// The workload must not be able to signal processes outside its container
/// that merely share the caller's process group (here a process of the
/// same uid as the workload, started next to `cairn cmd` in one job).
#[test]
fn workload_cannot_signal_the_callers_process_group() {
    use std::os::unix::process::CommandExt;
    let mut fx = fixture!();
    fx.command("pgrp", &probe(""));
    // A bystander in a process group of its own, running as the
    // container's uid.
    let mut bystander = Command::new("sleep")
        .arg("30")
        .uid(UID)
        .gid(GID)
        .process_group(0)
        .spawn()
        .expect("spawn sleep");
    let pgid = bystander.id() as i32;
    // `cairn cmd` joins that process group, as two commands of one shell
    // pipeline would.
    let mut cmd = fx.cmd(
        "pgrp",
        &["trap '' TERM; kill -TERM 0 2>&1; echo rc=$?; sleep 0.2"],
    );
    cmd.process_group(pgid);
    let out = output_within(&mut cmd, None, TIMEOUT);
    fx.assert_cleaned_up();
    let text = ok(&out);
    std::thread::sleep(Duration::from_millis(100));
    let hit = bystander.try_wait().expect("try_wait");
    if hit.is_none() {
        let _ = bystander.kill();
    }
    let _ = bystander.wait();
    assert!(
        hit.is_none(),
        "a process outside the container got the workload's kill(0, SIGTERM): {hit:?}\n{text}"
    );
}

/// Each container has a cgroup namespace rooted at its own cgroup, in
/// every hierarchy (v1 controllers, the named systemd one and the v2
/// unified one alike): /proc/self/cgroup shows "/" and nothing of the
/// host's cgroup tree or of the instance's name.
#[test]
fn the_cgroup_namespace_shows_only_the_containers_root() {
    let mut fx = fixture!();
    let out = fx.probe(
        "cgroupns",
        "",
        "cat /proc/self/cgroup; echo ns=$(readlink /proc/self/ns/cgroup)",
    );
    let text = ok(&out);
    let host_ns = fs::read_link("/proc/self/ns/cgroup").unwrap();
    let v = kv(&text);
    assert_ne!(Path::new(&v["ns"]), host_ns, "the host's cgroup namespace");
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("ns=")).collect();
    let host_lines = fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(lines.len(), host_lines.lines().count(), "{text}");
    for l in &lines {
        let path = l.splitn(3, ':').nth(2).unwrap_or("?");
        assert_eq!(path, "/", "{l} in:\n{text}");
    }
    assert!(!text.contains(&fx.cgroup.name), "{text}");
}
