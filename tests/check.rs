//! `cairn check` end to end: the real binary on real files.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{ConfigSet, cairn, copy_tree, fixtures, output_within, stderr, stdout};

/// Build a temp copy of a lithos example set: its `configs/` as the config
/// dir, its `code/` configs as `/config/*.yaml` of the image it names (with
/// the files a real image of it has: /usr/bin/python3, /tmp, /etc), and
/// image-dir pointed at the temp image dir. The configs are unchanged.
fn lithos_example(name: &str) -> ConfigSet {
    let set = ConfigSet::new();
    let src = fixtures().join("lithos-examples").join(name);
    copy_tree(&src.join("configs"), set.path());
    let images = set.p("images");
    for sb in fs::read_dir(set.p("sandboxes")).unwrap() {
        let path = sb.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let text = text
            .lines()
            .map(|l| {
                if l.starts_with("image-dir:") {
                    format!("image-dir: {}", images.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        fs::write(&path, text + "\n").unwrap();
    }
    for pr in fs::read_dir(set.p("processes")).unwrap() {
        let text = fs::read_to_string(pr.unwrap().path()).unwrap();
        for line in text.lines() {
            if let Some(img) = line.trim().strip_prefix("image:") {
                let img = images.join(img.trim());
                copy_tree(&src.join("code"), &img.join("config"));
                // What the configs use of a real image (its python, its
                // /tmp mount point, /etc files): `check` looks for them.
                for d in ["usr/bin", "tmp", "etc"] {
                    fs::create_dir_all(img.join(d)).unwrap();
                }
                for f in ["usr/bin/python3", "etc/hosts", "etc/resolv.conf"] {
                    fs::write(img.join(f), "").unwrap();
                }
            }
        }
    }
    set
}

#[test]
fn lithos_examples_pass_unchanged() {
    for name in ["py", "py_bridged", "py_systemd", "py_var", "multi_level"] {
        let set = lithos_example(name);
        let out = cairn(&["check", "-c", &set.master()]);
        assert!(
            out.status.success(),
            "{name}: exit {:?}\n{}",
            out.status.code(),
            stderr(&out)
        );
        assert!(stdout(&out).starts_with("ok:"), "{name}: {}", stdout(&out));
    }
}

#[test]
fn lithos_example_alternate_config() {
    let set = lithos_example("py");
    let alt = set.write(
        "alt.yaml",
        "socket:\n  instances: 5\n  image: py-example\n  config: /config/socket.yaml\n",
    );
    let out = cairn(&[
        "check",
        "-c",
        &set.master(),
        "--sandbox",
        "socket",
        "--alternate-config",
        alt.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("5 instance"), "{}", stdout(&out));
}

/// A small valid set to break in one place per test.
fn base_set() -> ConfigSet {
    let set = ConfigSet::new();
    set.write("master.yaml", "runtime-dir: run\n");
    set.write(
        "sandboxes/web.yaml",
        format!(
            "image-dir: {}\nallow-users: [1, 1000-1999]\nallow-groups: [0-1]\n\
             allow-tcp-ports: [8000-8099]\nwritable-paths: {{/data: /srv/data}}\n\
             readonly-paths: {{/shared: /srv/shared}}\n",
            set.s("images")
        ),
    );
    set.write(
        "processes/web.yaml",
        "app:\n  image: app\n  config: /config/app.yaml\n  instances: 2\n  variables: {port: 8000}\n",
    );
    set.write(
        "images/app/config/app.yaml",
        "executable: /bin/app\nuser-id: 1000\nvariables:\n  port: !TcpPort\n\
         arguments: ['--port=@{port}']\ntcp-ports:\n  '@{port}': {fd: 3}\n\
         volumes:\n  /data: !Persistent /data\n  /tmp: !Tmpfs {size: 10Mi}\n",
    );
    // What the config needs of its image: the program, the mount points.
    set.write("images/app/bin/app", "");
    for d in ["data", "tmp", "state", "etc"] {
        fs::create_dir_all(set.p("images/app").join(d)).unwrap();
    }
    set.write("images/app/etc/hosts", "");
    set.write("images/app/etc/resolv.conf", "");
    set
}

/// `check` finds what would fail every start: the executable, a volume's
/// mount point or the workdir missing from the image (errors, naming the
/// container config and the key), and an image without /etc/hosts (a
/// warning: the hosts entries cairn writes would be dropped).
#[test]
fn check_looks_for_the_configs_paths_in_the_image() {
    let set = base_set();
    fs::remove_file(set.p("images/app/bin/app")).unwrap();
    fs::remove_dir(set.p("images/app/tmp")).unwrap();
    fs::remove_file(set.p("images/app/etc/hosts")).unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let cfg = set.s("images/app/config/app.yaml");
    assert!(
        err.contains(&format!(
            "{cfg}: executable: /bin/app does not exist in the image"
        )),
        "{err}"
    );
    assert!(
        err.contains("volumes./tmp: mount point /tmp does not exist in the image"),
        "{err}"
    );
    assert!(
        err.contains("warning:") && err.contains("no regular /etc/hosts"),
        "{err}"
    );
    // Repaired: ok again (the warning stays until /etc/hosts is there).
    set.write("images/app/bin/app", "");
    fs::create_dir_all(set.p("images/app/tmp")).unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no regular /etc/hosts"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn base_set_is_valid() {
    let set = base_set();
    let out = cairn(&["check", "-c", &set.master()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "ok: 1 sandbox(es), 1 process entry, 2 instance(s)"
    );
}

/// Break `file` by replacing `from` with `to`; check fails naming `needle`
/// and the file.
fn rejects(file: &str, from: &str, to: &str, needle: &str) {
    let set = base_set();
    let path = set.p(file);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {file}");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{file}: {from:?} -> {to:?} should fail: {err}"
    );
    assert!(
        err.contains(needle),
        "{from:?} -> {to:?}: expected {needle:?} in:\n{err}"
    );
    assert!(
        err.contains(path.to_str().unwrap()),
        "message must name {}:\n{err}",
        path.display()
    );
}

#[test]
fn rejects_user_outside_allowed_range() {
    rejects(
        "images/app/config/app.yaml",
        "user-id: 1000",
        "user-id: 5000",
        "user-id: 5000 is not in the sandbox's allow-users [1, 1000-1999]",
    );
}

#[test]
fn rejects_group_outside_allowed_range() {
    rejects(
        "images/app/config/app.yaml",
        "user-id: 1000",
        "user-id: 1000\ngroup-id: 2",
        "group-id: 2 is not in the sandbox's allow-groups",
    );
}

#[test]
fn rejects_unknown_virtual_path() {
    rejects(
        "images/app/config/app.yaml",
        "!Persistent /data",
        "!Persistent /nowhere",
        "virtual path /nowhere is not in sandbox \"web\"'s writable-paths",
    );
}

#[test]
fn rejects_readonly_path_used_as_persistent() {
    rejects(
        "images/app/config/app.yaml",
        "!Persistent /data",
        "!Persistent /shared",
        "writable-paths",
    );
}

#[test]
fn rejects_port_not_allowed() {
    rejects(
        "processes/web.yaml",
        "port: 8000",
        "port: 9000",
        "port 9000 is not in sandbox \"web\"'s allow-tcp-ports",
    );
}

#[test]
fn rejects_relative_paths() {
    rejects(
        "images/app/config/app.yaml",
        "executable: /bin/app",
        "executable: bin/app",
        "executable: \"bin/app\" is not an absolute path",
    );
    rejects(
        "processes/web.yaml",
        "config: /config/app.yaml",
        "config: config/app.yaml",
        "is not an absolute path",
    );
    rejects(
        "images/app/config/app.yaml",
        "/tmp: !Tmpfs",
        "tmp: !Tmpfs",
        "volume mount point",
    );
}

#[test]
fn rejects_dotdot_paths() {
    rejects(
        "images/app/config/app.yaml",
        "/tmp: !Tmpfs",
        "/a/../tmp: !Tmpfs",
        "contains '..'",
    );
    rejects(
        "images/app/config/app.yaml",
        "executable: /bin/app",
        "workdir: /x/..\nexecutable: /bin/app",
        "contains '..'",
    );
}

#[test]
fn rejects_bad_image_names() {
    rejects(
        "processes/web.yaml",
        "image: app",
        "image: ../app",
        "plain path components",
    );
    rejects(
        "processes/web.yaml",
        "image: app",
        "image: /app",
        "must be relative",
    );
    rejects(
        "processes/web.yaml",
        "image: app",
        "image: app/v1",
        "image-dir-levels 1",
    );
    rejects(
        "processes/web.yaml",
        "image: app",
        "image: other",
        "not found",
    );
}

#[test]
fn rejects_image_symlink_escape() {
    let set = base_set();
    std::os::unix::fs::symlink("/", set.p("images/evil")).unwrap();
    let text = fs::read_to_string(set.p("processes/web.yaml")).unwrap();
    fs::write(
        set.p("processes/web.yaml"),
        text.replace("image: app", "image: evil"),
    )
    .unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
}

#[test]
fn container_config_symlink_stays_inside_image() {
    // A config that is a symlink to an absolute path resolves inside the
    // image, never to the host file of that name.
    let set = base_set();
    fs::remove_file(set.p("images/app/config/app.yaml")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", set.p("images/app/config/app.yaml")).unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no such file in the image"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rejects_missing_and_mistyped_variables() {
    rejects(
        "processes/web.yaml",
        "  variables: {port: 8000}\n",
        "\n",
        "app.variables.port: ",
    );
    rejects(
        "processes/web.yaml",
        "port: 8000",
        "port: http",
        "app.variables.port: \"http\" is not a TCP port",
    );
    rejects(
        "images/app/config/app.yaml",
        "--port=@{port}",
        "--port=@{prot}",
        "@{prot} is not a declared variable",
    );
}

#[test]
fn rejects_ip_address_count_in_bridged_sandbox() {
    let set = base_set();
    let sb = set.p("sandboxes/web.yaml");
    let text = fs::read_to_string(&sb).unwrap();
    fs::write(
        &sb,
        text + "bridged-network: {bridge: br0, network: 10.0.0.0/24}\n",
    )
    .unwrap();
    let pr = set.p("processes/web.yaml");
    let text = fs::read_to_string(&pr).unwrap();
    fs::write(&pr, text + "  ip-addresses: [10.0.0.2]\n").unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("1 ip-addresses for 2 instances"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(pr.to_str().unwrap()));
}

#[test]
fn rejects_unknown_keys_with_line() {
    let set = base_set();
    let cfg = set.p("images/app/config/app.yaml");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, text + "memroy-limit: 1Gi\n").unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:11: memroy-limit: unknown key", cfg.display())),
        "{err}"
    );
}

/// A mistyped `syslog-facility` fails `check` (and the tree's start)
/// naming master.yaml, the line, the key and the closest facility; a good
/// one passes.
#[test]
fn check_names_an_unknown_syslog_facility() {
    let set = base_set();
    set.write(
        "master.yaml",
        "runtime-dir: run\nlog-level: info\nsyslog-facility: locl3\n",
    );
    let out = cairn(&["check", "-c", &set.master()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:3: syslog-facility: \"locl3\" is not a syslog facility; did you mean \"local3\"?",
            set.master()
        )),
        "{err}"
    );
    set.write(
        "master.yaml",
        "runtime-dir: run\nsyslog-facility: local3\nsyslog-name: web-tree\nlog-journal: false\n",
    );
    let out = cairn(&["check", "-c", &set.master()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn one_bad_sandbox_does_not_hide_another() {
    let set = base_set();
    set.write(
        "sandboxes/aaa.yaml",
        "image-dir: /x\nallow-users: [oops]\nallow-groups: [0]\n",
    );
    let cfg = set.p("images/app/config/app.yaml");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, text.replace("user-id: 1000", "user-id: 7")).unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("sandboxes/aaa.yaml"), "{err}");
    assert!(err.contains("user-id: 7 is not in"), "{err}");
}

#[test]
fn alias_bomb_fails_fast() {
    let set = base_set();
    let mut bomb = String::from(
        "executable: /bin/app\nuser-id: 1000\n_a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("_a{i}: &a{i} [{refs}]\n"));
    }
    set.write("images/app/config/app.yaml", bomb);
    let start = Instant::now();
    let out = cairn(&["check", "-c", &set.master()]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("YAML nodes"), "{}", stderr(&out));
    assert!(took.as_millis() < 1000, "took {took:?}");
}

#[test]
fn huge_config_fails_fast() {
    let set = base_set();
    let mut big = String::from("executable: /bin/app\nuser-id: 1000\nenviron:\n");
    let mut i = 0;
    while big.len() < 3 << 20 {
        big.push_str(&format!("  VAR_{i}: \"{}\"\n", "x".repeat(100)));
        i += 1;
    }
    set.write("images/app/config/app.yaml", big);
    let start = Instant::now();
    let out = cairn(&["check", "-c", &set.master()]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("larger than 1048576 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(took.as_millis() < 1000, "took {took:?}");
}

/// `cairn check ARGS...`, killed (and the test failed) if it takes more
/// than 10 s: a file that makes it wait must fail the test, not hang it.
fn check_within(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(common::cairn_bin());
    cmd.arg("check").args(args).env_remove("RUST_BACKTRACE");
    let out = output_within(&mut cmd, None, Duration::from_secs(10));
    (out.status.code(), stderr(&out))
}

/// Replace the file at `path` with a FIFO (no writer ever opens it).
fn make_fifo(path: &Path) {
    let _ = fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a path in our own temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// A FIFO or a device where a config file is expected is refused at once,
/// naming the file, whichever file it is: opening a FIFO for reading would
/// otherwise wait for a writer that never comes.
#[test]
fn fifos_and_devices_as_configs_are_refused_without_waiting() {
    // The master config itself, directly and through a symlink.
    let set = base_set();
    make_fifo(&set.p("master.yaml"));
    let (code, err) = check_within(&["-c", &set.master()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: not a regular file (a FIFO)", set.master())),
        "{err}"
    );
    let link = set.p("link.yaml");
    std::os::unix::fs::symlink(set.p("master.yaml"), &link).unwrap();
    let (code, err) = check_within(&["-c", link.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("link.yaml: not a regular file (a FIFO)"),
        "{err}"
    );
    let (code, err) = check_within(&["-c", "/dev/zero"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("/dev/zero: not a regular file (a device)"),
        "{err}"
    );

    // A sandbox's process config, and one given with --alternate-config.
    let set = base_set();
    let procs = set.p("processes/web.yaml");
    make_fifo(&procs);
    let (code, err) = check_within(&["-c", &set.master()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: not a regular file (a FIFO)", procs.display())),
        "{err}"
    );
    let set = base_set();
    let alt = set.p("alt.yaml");
    make_fifo(&alt);
    let (code, err) = check_within(&[
        "-c",
        &set.master(),
        "--sandbox",
        "web",
        "--alternate-config",
        alt.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: not a regular file (a FIFO)", alt.display())),
        "{err}"
    );

    // A container config, found through the master config or named with
    // --container; a device node in the image too.
    let set = base_set();
    let cfg = set.p("images/app/config/app.yaml");
    make_fifo(&cfg);
    let (code, err) = check_within(&["-c", &set.master()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: is not a regular file", cfg.display())),
        "{err}"
    );
    let (code, err) = check_within(&["--container", &set.s("images/app"), "/config/app.yaml"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: is not a regular file", cfg.display())),
        "{err}"
    );
    let null = set.p("images/app/config/null.yaml");
    let c = std::ffi::CString::new(null.to_str().unwrap()).unwrap();
    // SAFETY: mknod(2) of /dev/null's numbers in our own temp dir.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if made == 0 {
        let (code, err) = check_within(&["--container", &set.s("images/app"), "/config/null.yaml"]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("null.yaml: is not a regular file"), "{err}");
    } else {
        eprintln!("no device node made (not root?): skipped that case");
    }

    // A sandbox's resolv-conf: named with the sandbox key.
    let set = base_set();
    let resolv = set.p("resolv.conf");
    make_fifo(&resolv);
    let sandbox = set.p("sandboxes/web.yaml");
    let text = fs::read_to_string(&sandbox).unwrap();
    fs::write(
        &sandbox,
        format!("{text}resolv-conf: {}\n", resolv.display()),
    )
    .unwrap();
    let (code, err) = check_within(&["-c", &set.master()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "resolv-conf: {}: not a regular file (a FIFO)",
            resolv.display()
        )),
        "{err}"
    );

    // In the sandboxes dir, only regular files are sandboxes (master.md):
    // a FIFO there is passed over, never opened.
    let set = base_set();
    make_fifo(&set.p("sandboxes/other.yaml"));
    let (code, err) = check_within(&["-c", &set.master()]);
    assert_eq!(code, Some(0), "{err}");
}

/// A container config under a write lease (fcntl(2) F_SETLEASE, which the
/// file's owner may take) is refused at once: a blocking open would wait
/// for the lease holder up to /proc/sys/fs/lease-break-time (45 s).
#[test]
fn leased_container_config_is_refused_without_waiting() {
    use std::os::fd::AsRawFd;
    let set = base_set();
    let cfg = set.p("images/app/config/app.yaml");
    // A write lease needs the only open fd of the file; ours is read-only.
    let held = fs::File::open(&cfg).unwrap();
    // SAFETY: fcntl(2) on our own fd.
    if unsafe { libc::fcntl(held.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) } != 0 {
        eprintln!(
            "skipped: no lease ({}; fs.leases-enable off?)",
            std::io::Error::last_os_error()
        );
        return;
    }
    // No owner: breaking the lease must not signal (SIGIO kills) this test.
    // SAFETY: fcntl(2) on our own fd.
    assert_eq!(
        unsafe { libc::fcntl(held.as_raw_fd(), libc::F_SETOWN, 0) },
        0
    );
    let start = Instant::now();
    let (code, err) = check_within(&["--container", &set.s("images/app"), "/config/app.yaml"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: is leased by another process (fcntl F_SETLEASE): not waiting for it",
            cfg.display()
        )),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // Once the lease is let go, the same file is read.
    // SAFETY: fcntl(2) on our own fd.
    assert_eq!(
        unsafe { libc::fcntl(held.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) },
        0
    );
    let (code, err) = check_within(&["--container", &set.s("images/app"), "/config/app.yaml"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    let out = cairn(&["check", "--alternate-config", "/x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cairn(&["check", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cairn(&["nosuchcommand"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_master_is_an_error() {
    let out = cairn(&["check", "-c", "/nonexistent/master.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/master.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_one_container_config() {
    let set = base_set();
    let out = cairn(&[
        "check",
        "--container",
        &set.s("images/app"),
        "/config/app.yaml",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    set.write(
        "images/app/config/bad.yaml",
        "executable: /x\narguments: ['@{undeclared}']\n",
    );
    let out = cairn(&[
        "check",
        "--container",
        &set.s("images/app"),
        "/config/bad.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("config/bad.yaml: arguments[0]: @{undeclared} is not a declared variable"),
        "{}",
        stderr(&out)
    );
}

/// `base_set` with `from` replaced by `to` in the container config and
/// `sandbox_extra` added to the sandbox: (exit code, stderr, config path,
/// sandbox path).
fn check_changed(
    from: &str,
    to: &str,
    sandbox_extra: &str,
) -> (Option<i32>, String, String, String) {
    let set = base_set();
    let cfg = set.p("images/app/config/app.yaml");
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(from), "{from:?} not in the config");
    fs::write(&cfg, text.replacen(from, to, 1)).unwrap();
    let sb = set.p("sandboxes/web.yaml");
    let text = fs::read_to_string(&sb).unwrap();
    fs::write(&sb, text + sandbox_extra).unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    (
        out.status.code(),
        stderr(&out),
        cfg.display().to_string(),
        sb.display().to_string(),
    )
}

#[test]
fn rejects_limits_above_the_default_ceilings() {
    // What one image asked for: every value lands on its own line (3-7),
    // and the tmpfs is the last volume (line 14).
    let (code, err, cfg, sb) = check_changed(
        "user-id: 1000\n",
        "user-id: 1000\npids-limit: 4194304\nfileno-limit: 1048576\nkill-timeout: 86400\n\
         restart-timeout: 0\nnormal-exit-codes: [0]\n",
        "",
    );
    assert_eq!(code, Some(1), "{err}");
    for want in [
        "3: pids-limit: 4194304 is above the sandbox's max-pids-limit 4096",
        "4: fileno-limit: 1048576 is above the sandbox's max-fileno-limit 65536",
        "5: kill-timeout: 86400 is above the sandbox's max-kill-timeout 60",
        "6: restart-timeout: 0 is below the sandbox's min-restart-timeout 1",
    ] {
        let want = format!("{cfg}:{want} ({sb}; the default)");
        assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    }
    let (code, err, cfg, sb) =
        check_changed("/tmp: !Tmpfs {size: 10Mi}", "/tmp: !Tmpfs {size: 15Ei}", "");
    assert_eq!(code, Some(1), "{err}");
    let want = format!(
        "{cfg}:10: volumes./tmp.size: 15Ei is above the sandbox's max-tmpfs-size 1Gi ({sb}; the default)"
    );
    assert!(err.contains(&want), "expected {want:?} in:\n{err}");
}

#[test]
fn sandbox_ceilings_are_named_and_may_be_reached() {
    let ceilings = "max-memory-limit: 64Mi\nmax_pids_limit: 100\nmax-fileno-limit: 2048\n\
                    max-tmpfs-size: 16Mi\nmax-kill-timeout: 2\nmin-restart-timeout: 0\n";
    let (code, err, cfg, sb) = check_changed(
        "user-id: 1000\n",
        "user-id: 1000\nmemory-limit: 65Mi\npids-limit: 101\nfileno-limit: 2049\nkill-timeout: 2.5\n",
        ceilings,
    );
    assert_eq!(code, Some(1), "{err}");
    for want in [
        "3: memory-limit: 65Mi is above the sandbox's max-memory-limit 64Mi",
        "4: pids-limit: 101 is above the sandbox's max-pids-limit 100",
        "5: fileno-limit: 2049 is above the sandbox's max-fileno-limit 2048",
        "6: kill-timeout: 2.5 is above the sandbox's max-kill-timeout 2",
    ] {
        let want = format!("{cfg}:{want} ({sb})");
        assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    }
    // "No limit" is more than any ceiling.
    let (code, err, cfg, _) = check_changed(
        "user-id: 1000\n",
        "user-id: 1000\nmemory-limit: 0x7fffffffffffffff\n",
        ceilings,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{cfg}:3: memory-limit: no limit is above the sandbox's max-memory-limit 64Mi"
        )),
        "{err}"
    );
    // At the ceilings, and a restart-timeout of 0 where the sandbox allows it.
    let (code, err, _, _) = check_changed(
        "user-id: 1000\n",
        "user-id: 1000\nmemory-limit: 64Mi\npids-limit: 100\nfileno-limit: 2048\nkill-timeout: 2\n\
         restart-timeout: 0\n",
        ceilings,
    );
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn rejects_bad_ceiling_values_in_the_sandbox() {
    for (extra, needle) in [
        (
            "max-pids-limit: 0\n",
            "max-pids-limit: 0 is below the minimum of 1",
        ),
        (
            "max-pids-limit: 5000000\n",
            "max-pids-limit: 5000000 is larger than the maximum of 4194304",
        ),
        (
            "max-fileno-limit: 2\n",
            "max-fileno-limit: 2 is below the minimum of 3",
        ),
        (
            "max-memory-limit: 1k\n",
            "max-memory-limit: 1000 bytes is below the minimum of 1048576",
        ),
        ("max-tmpfs-size: 0\n", "max-tmpfs-size: 0"),
        (
            "min-restart-timeout: -1\n",
            "min-restart-timeout: \"-1\" is negative",
        ),
        (
            "max-kill-timeout: x\n",
            "max-kill-timeout: \"x\" is not a number of seconds",
        ),
    ] {
        let (code, err, _, sb) = check_changed("user-id: 1000", "user-id: 1000", extra);
        assert_eq!(code, Some(1), "{extra}: {err}");
        assert!(err.contains(&format!("{sb}:7: {needle}")), "{extra}: {err}");
    }
}

#[test]
fn rejects_volume_owners_and_setid_modes() {
    let (code, err, cfg, _) = check_changed(
        "/data: !Persistent /data",
        "/data: !Persistent {path: /data/x, mkdir: true, user: 0, group: 7, mode: 0o7777}",
        "",
    );
    assert_eq!(code, Some(1), "{err}");
    for want in [
        "9: volumes./data.user: 0 is not in the sandbox's allow-users [1, 1000-1999]",
        "9: volumes./data.group: 7 is not in the sandbox's allow-groups [0-1]",
        "9: volumes./data.mode: 0o7777 has the setuid/setgid bits",
    ] {
        let want = format!("{cfg}:{want}");
        assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    }
    // The mode needs no sandbox: `check --container` refuses it too.
    let set = base_set();
    set.write(
        "images/app/config/setgid.yaml",
        "executable: /x\nvolumes:\n  /tmp: !Tmpfs {mode: 0o2777}\n",
    );
    let out = cairn(&[
        "check",
        "--container",
        &set.s("images/app"),
        "/config/setgid.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("setgid.yaml:3: volumes./tmp.mode: 0o2777 has the setuid/setgid bits"),
        "{}",
        stderr(&out)
    );
    // Allowed owners, the sticky bit, and no owner at all are fine.
    let (code, err, _, _) = check_changed(
        "/data: !Persistent /data",
        "/data: !Persistent {path: /data/x, mkdir: true, user: 1000, group: 1, mode: 0o1777}\n  \
         /state: !Statedir {}",
        "",
    );
    assert_eq!(code, Some(0), "{err}");
}

/// `cairn ps`, `reload` and `upgrade` read files of the runtime dir: a
/// FIFO there (state.json, tree.pid) is refused at once, never waited on.
#[test]
fn ps_and_signals_refuse_a_fifo_in_the_runtime_dir_without_waiting() {
    let set = base_set();
    fs::create_dir_all(set.p("run")).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(common::cairn_bin());
        cmd.args(args).env_remove("RUST_BACKTRACE");
        let out = output_within(&mut cmd, None, Duration::from_secs(10));
        (out.status.code(), stderr(&out))
    };
    let (code, err) = run(&["ps", "-c", &set.master()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no cairn tree runs"), "{err}");
    make_fifo(&set.p("run/state.json"));
    let (code, err) = run(&["ps", "-c", &set.master()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("state.json: not a regular file (a FIFO)"),
        "{err}"
    );
    make_fifo(&set.p("run/tree.pid"));
    for cmd in ["reload", "upgrade"] {
        let (code, err) = run(&[cmd, "-c", &set.master()]);
        assert_eq!(code, Some(1), "{cmd}: {err}");
        assert!(err.contains("tree.pid: not a regular file"), "{cmd}: {err}");
    }
}

/// Files that look like config but are not read, and a sandbox that runs
/// nothing for want of a process config, are warnings (the check passes).
#[test]
fn ignored_yml_files_and_sandboxes_without_processes_are_warned_of() {
    let set = base_set();
    set.write("sandboxes/typo.yml", "image-dir: /x\n");
    set.write(
        "sandboxes/idle.yaml",
        format!(
            "image-dir: {}\nallow-users: [1]\nallow-groups: [1]\n",
            set.s("images")
        ),
    );
    set.write("processes/idle.yml", "{}\n");
    let out = cairn(&["check", "-c", &set.master()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("typo.yml: ignored: only *.yaml files in the sandboxes dir are read"),
        "{err}"
    );
    assert!(
        err.contains("sandbox \"idle\" has no process config")
            && err.contains("it runs nothing")
            && err.contains("idle.yml is there, but only .yaml is read"),
        "{err}"
    );
}

/// The stdio log keys of a sandbox: a value out of range names the file,
/// the line and the key; valid ones (and `null` for no limit) pass.
#[test]
fn stdio_log_keys_are_checked() {
    let set = base_set();
    let sb = set.p("sandboxes/web.yaml");
    let text = fs::read_to_string(&sb).unwrap();
    for (extra, want) in [
        (
            "stdio-log-files: 0\n",
            ":7: stdio-log-files: 0 is not between 1 and 100",
        ),
        (
            "stdio-log-max-size: 1000\n",
            ":7: stdio-log-max-size: 1000 bytes is below",
        ),
        (
            "stdio-log-names: maybe\n",
            ":7: stdio-log-names: \"maybe\" is not a boolean",
        ),
    ] {
        fs::write(&sb, format!("{text}{extra}")).unwrap();
        let out = cairn(&["check", "-c", &set.master()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{extra}: {err}");
        assert!(
            err.contains(&format!("{}{want}", sb.display())),
            "{extra}: {err}"
        );
    }
    fs::write(
        &sb,
        format!(
            "{text}stdio-log-max-size: null\nstdio-log-files: 100\nstdio-log-timestamps: false\n"
        ),
    )
    .unwrap();
    let out = cairn(&["check", "-c", &set.master()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
