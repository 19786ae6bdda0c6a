//! No way out: paths from the container config that lead through magic
//! links, the host binary behind `/proc/self/exe`, the caller's session
//! keyring, and limits that must be set while the knot still may.
//! Each test shows the attack, and would print the host's secret (or the
//! host binary's version) if cairn let it through.

use super::*;

/// A secret file on the host, outside every container, and the relative
/// path that reaches it from the host's `/`.
fn host_secret(fx: &Fixture) -> (String, String) {
    let marker = format!("host-secret-{}", std::process::id());
    let path = fx.set.write("host-secret", &marker);
    let rel = path
        .display()
        .to_string()
        .trim_start_matches('/')
        .to_string();
    (marker, rel)
}

/// A probe that climbs from its working directory to the top of whatever
/// file system tree that directory is in, and reads `rel` from there.
fn climb_and_read(rel: &str) -> String {
    format!(
        "echo {STARTED}; cd ../../../../../../../../../../..; cat {rel} 2>/dev/null; \
         echo; pwd"
    )
}

/// `workdir: /proc/self/fd/N` named a directory the knot still held open
/// on the host (runc's CVE-2024-21626): `cd ..` from there walked the
/// host's file system. The config is refused before anything runs, by
/// `cairn cmd` and by `cairn check`, naming the file and the key.
#[test]
fn workdir_through_proc_is_refused() {
    let mut fx = fixture!();
    let (marker, rel) = host_secret(&fx);
    let before = host_mounts();
    for n in 3..=12 {
        let name = format!("wd{n}");
        fx.command(&name, &probe(&format!("workdir: /proc/self/fd/{n}\n")));
        let out = fx.run(&name, &[&climb_and_read(&rel)]);
        assert!(
            !stdout(&out).contains(&marker),
            "fd {n}: the workload read the host's file: {}",
            stdout(&out)
        );
        assert_refused(&out, 1, &[&format!("{name}.yaml"), "workdir"], &before);
    }
    let check = common::cairn(&["check", "-c", &fx.set.master()]);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    let err = stderr(&check);
    assert!(
        err.lines()
            .any(|l| l.contains("wd4.yaml:") && l.contains("workdir") && l.contains("/proc")),
        "{err}"
    );
}

/// The same paths reached through a symlink in the image (which no
/// config check can see): the working directory is resolved inside the
/// container's root without following magic links, so the start fails
/// (125) instead of landing in a host directory.
#[test]
fn workdir_through_an_image_symlink_to_proc_does_not_escape() {
    let mut fx = fixture!();
    let (marker, rel) = host_secret(&fx);
    for n in 3..=12 {
        let link = format!("escape{n}");
        symlink(
            format!("/proc/self/fd/{n}"),
            fx.set.p(&format!("images/bb/{link}")),
        )
        .unwrap();
        let name = format!("wd{n}");
        fx.command(&name, &probe(&format!("workdir: /{link}\n")));
        let out = fx.run(&name, &[&climb_and_read(&rel)]);
        assert!(
            !stdout(&out).contains(&marker),
            "fd {n}: the workload read the host's file: {}",
            stdout(&out)
        );
        assert_eq!(out.status.code(), Some(125), "fd {n}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("workdir") && stderr(&out).contains(&link),
            "fd {n}: {}",
            stderr(&out)
        );
    }
    // A symlink that stays inside the image still works as a workdir.
    symlink("/work", fx.set.p("images/bb/inside")).unwrap();
    let out = fx.probe("inside", "workdir: /inside\n", "pwd");
    assert_eq!(ok(&out).trim(), "/work");
}

/// Every other path of the container config that names a file the
/// container uses is refused under `/proc` too: the executable (which
/// would be the host binary behind `/proc/self/exe`), `stdout-stderr-file`.
#[test]
fn other_config_paths_through_proc_are_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    for (name, extra) in [
        ("exe", "executable: /proc/self/exe\n"),
        ("exe1", "executable: /proc/1/exe\n"),
        ("root", "executable: /proc/self/root/bin/sh\n"),
        ("out", "stdout-stderr-file: /proc/self/fd/1\n"),
        ("out2", "stdout-stderr-file: /dev/fd/5\n"),
    ] {
        let yaml = probe("").replace("executable: /bin/sh\n", "") + extra;
        let yaml = if yaml.contains("executable:") {
            yaml
        } else {
            format!("{yaml}executable: /bin/sh\n")
        };
        fx.command(name, &yaml);
        let out = fx.run(name, &[&format!("echo {STARTED}")]);
        let key = extra.split(':').next().unwrap_or_default();
        assert_refused(&out, 1, &[&format!("{name}.yaml"), key], &before);
    }
}

/// An image script whose interpreter is `/proc/self/exe` ran the host's
/// cairn binary inside the container (runc's CVE-2019-5736): the process
/// that calls execve for the workload was a fork of cairn. Now it is
/// cairn-init run from a sealed memfd, so the script reaches nothing of
/// the host, and no `exe` link a workload can read is the host binary.
#[test]
fn script_interpreter_proc_self_exe_does_not_run_the_host_binary() {
    let mut fx = fixture!();
    // The image has what any Debian image has: the dynamic loader and the
    // C library, so the host binary (a dynamic build in tests) could run.
    give_image_the_hosts_libraries(&fx);
    let script = fx
        .set
        .write("images/bb/bin/evil", "#!/proc/self/exe --version\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let version = String::from_utf8_lossy(&common::cairn(&["--version"]).stdout)
        .trim()
        .to_string();
    assert!(version.starts_with("cairn "), "{version}");
    for (name, uid) in [("evil", UID), ("evilroot", 0)] {
        fx.sandbox("allow-users: [0, 1000-1999]\nallow-groups: [0, 1000-1999]\n");
        let yaml = probe("")
            .replace("executable: /bin/sh", "executable: /bin/evil")
            .replace(&format!("user-id: {UID}"), &format!("user-id: {uid}"));
        fx.command(name, &yaml);
        let out = fx.run(name, &[]);
        assert!(
            !stdout(&out).contains(&version) && !stderr(&out).contains(&version),
            "uid {uid}: the host binary ran in the container:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert_ne!(out.status.code(), Some(0), "uid {uid}: {}", stderr(&out));
    }
    // What a root workload can read of every process's exe link: never
    // the host binary (pid 1 is closed to it; its own is busybox).
    let out = fx.probe(
        "links",
        "",
        &format!("echo {STARTED}; for p in /proc/[0-9]*; do readlink $p/exe; done; true"),
    );
    let host = common::cairn_bin().canonicalize().unwrap();
    let text = ok(&out);
    assert!(
        !text.lines().any(|l| Path::new(l) == host),
        "a workload sees the host binary: {text}"
    );
}

/// Copy the shared libraries the test's cairn binary needs (`ldd`) into
/// the image, at the same paths.
fn give_image_the_hosts_libraries(fx: &Fixture) {
    let out = Command::new("ldd").arg(cairn_bin()).output().unwrap();
    for lib in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let real = fs::canonicalize(lib).unwrap();
        let dst = fx.set.p("images/bb").join(lib.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(&real, &dst).unwrap();
    }
}

/// Build tests/helpers/keyprobe.c statically, for the image and the host.
fn keyprobe(fx: &Fixture) -> Result<PathBuf, String> {
    let bin = fx.set.p("images/bb/bin/keyprobe");
    common::build_helper("keyprobe", &["-static"], &bin)?;
    Ok(bin)
}

/// `cairn cmd` of `name` run from a fresh session keyring of the test's
/// own that holds a root-owned secret (as a login session of root would).
fn run_with_session_secret(fx: &Fixture, name: &str, secret: &str, args: &[&str]) -> Output {
    let mut c = fx.cmd(name, args);
    let secret = secret.to_string();
    // SAFETY: between fork and exec only async-signal-safe raw syscalls
    // on data prepared before the fork.
    unsafe {
        use std::os::unix::process::CommandExt;
        let ty = std::ffi::CString::new("user").unwrap();
        let desc = std::ffi::CString::new("cairn-test-secret").unwrap();
        c.pre_exec(move || {
            const JOIN: libc::c_long = 1; // KEYCTL_JOIN_SESSION_KEYRING
            if libc::syscall(libc::SYS_keyctl, JOIN, 0usize) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let r = libc::syscall(
                libc::SYS_add_key,
                ty.as_ptr(),
                desc.as_ptr(),
                secret.as_ptr(),
                secret.len(),
                -3i64, // KEY_SPEC_SESSION_KEYRING
            );
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output_within(&mut c, None, TIMEOUT);
    fx.assert_cleaned_up();
    out
}

/// Workloads inherited the session keyring of whoever started them: a
/// uid-1234 workload read root's secret from it, and two instances with
/// different uids passed data through it. Each workload now gets a fresh
/// anonymous session keyring of its own.
#[test]
fn each_workload_gets_a_fresh_session_keyring() {
    let mut fx = fixture!();
    // The keyring itself is tested here, so without the system call
    // filter (which refuses keyctl and add_key on its own: seccomp tests).
    fx.sandbox("allow-users: [1000-1999]\nallow-groups: [1000-1999]\nseccomp: unconfined\n");
    let built = keyprobe(&fx);
    require!(built.is_ok(), built.err().unwrap_or_default());
    let kp = |extra: &str| {
        probe(extra)
            .replace("executable: /bin/sh", "executable: /bin/keyprobe")
            .replace("arguments: [-c]", "arguments: []")
    };
    fx.command("keys", &kp(""));
    let secret = format!("root-secret-{}", std::process::id());
    let out = run_with_session_secret(&fx, "keys", &secret, &[]);
    let text = ok(&out);
    let got = kv(&text);
    assert_eq!(
        got.get("secret").map(String::as_str),
        Some("none"),
        "{text}"
    );
    // A keyring of its own: anonymous (`_ses`), not the caller's.
    let session = got.get("session").cloned().unwrap_or_default();
    assert!(
        session.starts_with("keyring;") && session.ends_with(";_ses"),
        "{session}"
    );

    // Two workloads of different uids started from one session cannot
    // pass data through a keyring.
    fx.command("sender", &kp(""));
    fx.command(
        "receiver",
        &kp("").replace(&format!("user-id: {UID}"), "user-id: 1300"),
    );
    // Both run from one session (a fresh keyring of the test's): the
    // sender leaves a key, the receiver looks for it.
    let shell = format!(
        "{cairn} cmd -c {m} box sender put hello && {cairn} cmd -c {m} box receiver get",
        cairn = cairn_bin().display(),
        m = fx.set.master()
    );
    let mut c = Command::new("/bin/sh");
    c.args(["-c", &shell]);
    let out = {
        // SAFETY: as in run_with_session_secret: a raw syscall only.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                if libc::syscall(libc::SYS_keyctl, 1 as libc::c_long, 0usize) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        output_within(&mut c, None, TIMEOUT)
    };
    fx.assert_cleaned_up();
    let text = stdout(&out);
    assert!(
        text.contains("put=ok"),
        "the sender could not even use its own keyring: {text}\n{}",
        stderr(&out)
    );
    assert!(text.contains("channel=none"), "{text}\n{}", stderr(&out));
}

/// `fileno-limit` above the hard limit of whoever runs `cairn cmd`: the
/// limit was set after the capabilities were dropped, so raising the hard
/// limit failed (EPERM) and the start failed. It is set while the knot
/// still may.
#[test]
fn fileno_limit_above_the_callers_hard_limit_applies() {
    let mut fx = fixture!();
    fx.command("nofile", &probe("fileno-limit: 4096\n"));
    let mut c = fx.cmd("nofile", &["ulimit -n; ulimit -Hn"]);
    // SAFETY: setrlimit(2) only, between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output_within(&mut c, None, TIMEOUT);
    fx.assert_cleaned_up();
    if !has_cap_sys_resource() {
        // Raising a hard limit needs CAP_SYS_RESOURCE, which root on some
        // hosts (this one) does not have: then the start fails closed,
        // naming the step, instead of running with a lower limit.
        eprintln!("no CAP_SYS_RESOURCE here: checking that the start fails closed");
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert!(stderr(&out).contains("fileno-limit"), "{}", stderr(&out));
        return;
    }
    let text = ok(&out);
    assert_eq!(
        text.split_whitespace().collect::<Vec<_>>(),
        ["4096", "4096"],
        "{text}"
    );
}

/// Whether this process may raise hard limits (CAP_SYS_RESOURCE, bit 24,
/// in its effective set).
fn has_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = field(&status, "CapEff").unwrap();
    u64::from_str_radix(eff, 16).unwrap() & (1 << 24) != 0
}

/// The workload's oom_score_adj is 0, and it cannot lower it (a workload
/// left at the tree's -1000 would make its memory limit toothless).
#[test]
fn workload_oom_score_adj_is_zero_and_cannot_be_lowered() {
    let mut fx = fixture!();
    let out = fx.probe(
        "oom",
        "",
        "cat /proc/self/oom_score_adj; echo -1 > /proc/self/oom_score_adj && echo lowered; \
         cat /proc/self/oom_score_adj",
    );
    let text = ok(&out);
    assert_eq!(
        text.split_whitespace().collect::<Vec<_>>(),
        ["0", "0"],
        "{text}"
    );
}
