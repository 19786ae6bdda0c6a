//! The file system the workload can write, and what it cannot do with it:
//! read-only root, noexec/nodev volumes, volume kinds, symlinks in images.

use super::*;

#[test]
fn root_is_read_only() {
    let mut fx = fixture!();
    fs::write(fx.set.p("images/bb/work/owned"), "mine\n").unwrap();
    chown(&fx.set.p("images/bb/work/owned"), UID, GID);
    // /work and /work/owned belong to the container user: only the
    // read-only mount stops these writes.
    let out = fx.probe(
        "rofs",
        "",
        "for op in 'touch /x' 'mkdir /bin/x' 'touch /work/new' 'rm /work/owned'; do \
           $op 2>&1; echo \"rc=$?\"; done; { echo x >> /work/owned; } 2>&1; echo rc=$?",
    );
    let text = ok(&out);
    let rcs: Vec<&str> = text.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(rcs.len(), 5, "{text}");
    assert!(rcs.iter().all(|r| *r != "rc=0"), "{text}");
    assert_eq!(
        text.matches("Read-only file system").count(),
        5,
        "every write must fail with EROFS:\n{text}"
    );
    assert!(!fx.set.p("images/bb/x").exists());
    assert!(!fx.set.p("images/bb/work/new").exists());
    assert_eq!(
        fs::read_to_string(fx.set.p("images/bb/work/owned")).unwrap(),
        "mine\n"
    );
}

#[test]
fn binaries_in_writable_volumes_cannot_run() {
    let mut fx = fixture!();
    let out = fx.probe(
        "noexec",
        "volumes:\n  /data: !Persistent /data\n  /tmp: !Tmpfs {size: 10Mi}\n  \
         /state: !Statedir {}\n",
        "for d in /data /tmp /state /dev/shm; do \
           cp /bin/busybox $d/bb && chmod 755 $d/bb && echo \"copied=$d\"; \
           $d/bb true; echo \"$d=$?\"; done",
    );
    let text = ok(&out);
    let v = kv(&text);
    for d in ["/data", "/tmp", "/state", "/dev/shm"] {
        assert!(
            text.contains(&format!("copied={d}")),
            "{d} not writable:\n{text}"
        );
        assert_eq!(v[d], "126", "{d} ran a binary:\n{text}");
    }
    assert_eq!(
        stderr(&out).matches("Permission denied").count(),
        4,
        "{}",
        stderr(&out)
    );
    // The copy really went to the host dir behind /data.
    assert!(fx.set.p("srv/data/bb").exists());
}

#[test]
fn readonly_volume_is_read_only() {
    let mut fx = fixture!();
    let out = fx.probe(
        "rovol",
        "volumes:\n  /ro: !Readonly /ro\n",
        "cat /ro/hello.txt; touch /ro/new 2>&1; echo rc=$?; \
         { echo more >> /ro/hello.txt; } 2>&1; echo rc=$?; rm /ro/hello.txt 2>&1; echo rc=$?",
    );
    let text = ok(&out);
    assert!(text.starts_with("read-only data\n"), "{text}");
    assert_eq!(text.matches("Read-only file system").count(), 3, "{text}");
    assert!(!text.contains("rc=0"), "{text}");
    assert_eq!(
        fs::read_to_string(fx.set.p("srv/ro/hello.txt")).unwrap(),
        "read-only data\n"
    );
    assert!(!fx.set.p("srv/ro/new").exists());
}

#[test]
fn device_nodes_in_image_and_volumes_do_not_work() {
    let mut fx = fixture!();
    // Copies of /dev/zero (char 1:5, mode 0666): harmless, and readable by
    // anyone wherever devices are honoured.
    let nodes = ["images/bb/work/zero", "srv/data/zero", "srv/ro/zero"];
    for n in nodes {
        let c = std::ffi::CString::new(fx.set.s(n)).unwrap();
        // SAFETY: mknod(2) of a character device in our temp dir.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
        assert_eq!(r, 0, "mknod {n}: {}", std::io::Error::last_os_error());
        fs::set_permissions(fx.set.p(n), fs::Permissions::from_mode(0o666)).unwrap();
    }
    // Control: on the host the node works.
    let mut byte = [1u8; 1];
    std::io::Read::read_exact(&mut fs::File::open(fx.set.p(nodes[0])).unwrap(), &mut byte).unwrap();
    assert_eq!(byte, [0]);
    let out = fx.probe(
        "devnodes",
        "volumes:\n  /data: !Persistent /data\n  /ro: !Readonly /ro\n",
        "for f in /work/zero /data/zero /ro/zero; do \
           echo \"$f=$(head -c 1 $f 2>&1 >/dev/null)\"; done",
    );
    let v = kv(&ok(&out));
    for f in ["/work/zero", "/data/zero", "/ro/zero"] {
        assert!(v[f].contains("Permission denied"), "{f} opens: {v:?}");
    }
}

#[test]
fn persistent_volume_mkdir_creates_an_owned_directory() {
    let mut fx = fixture!();
    let out = fx.probe(
        "mkdir",
        "volumes:\n  /data: !Persistent {path: /data/made/deeper, mkdir: true, mode: 0o750, \
         user: 1234, group: 1235}\n",
        "touch /data/file; echo rc=$?",
    );
    assert_eq!(kv(&ok(&out))["rc"], "0");
    use std::os::unix::fs::MetadataExt;
    let made = fs::metadata(fx.set.p("srv/data/made/deeper")).unwrap();
    assert!(made.is_dir());
    assert_eq!(made.mode() & 0o7777, 0o750);
    assert_eq!((made.uid(), made.gid()), (UID, GID));
    let file = fs::metadata(fx.set.p("srv/data/made/deeper/file")).unwrap();
    assert_eq!((file.uid(), file.gid()), (UID, GID));
}

#[test]
fn tmpfs_size_is_enforced() {
    let mut fx = fixture!();
    let out = fx.probe(
        "tmpsize",
        "volumes:\n  /tmp: !Tmpfs {size: 1Mi}\n",
        "head -c 2097152 /dev/zero > /tmp/big; echo rc=$?; echo size=$(wc -c < /tmp/big)",
    );
    let text = ok(&out);
    let v = kv(&text);
    assert_ne!(v["rc"], "0", "{text}");
    assert_eq!(v["size"], "1048576", "{text}");
    // busybox head reports the failed write as an I/O error.
    let err = stderr(&out);
    assert!(
        err.contains("No space left on device") || err.contains("I/O error"),
        "{err}"
    );
}

#[test]
fn statedir_volume_is_the_instance_state_dir() {
    let mut fx = fixture!();
    fx.command(
        "statedir",
        &probe("interactive: true\nvolumes:\n  /state: !Statedir {path: /sub, mode: 0o700, user: 1234, group: 1235}\n"),
    );
    let mut run = fx.spawn("statedir", &["echo kept > /state/x && echo ready; read y"]);
    run.wait_for("ready");
    let host = fx.set.p(&format!(
        "run/state/box/cmd.statedir.{}/state/sub",
        run.pid()
    ));
    let seen = fs::read_to_string(host.join("x"));
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(&host);
    run.write_stdin(b"\n");
    let (status, _, err, _) = run.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(seen.unwrap(), "kept\n");
    let meta = meta.unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o700);
    assert_eq!((meta.uid(), meta.gid()), (UID, GID));
    // `cairn cmd` removes the instance's state when it ends.
    assert!(!host.exists());
    fx.assert_cleaned_up();
}

#[test]
fn stdout_stderr_file_is_opened_inside_without_following_symlinks() {
    let mut fx = fixture!();
    let out = fx.probe(
        "logfile",
        "stdout-stderr-file: /data/out.log\nvolumes:\n  /data: !Persistent /data\n",
        "echo to-stdout; echo to-stderr >&2",
    );
    assert_eq!(ok(&out), "");
    assert_eq!(stderr(&out), "");
    let log = fx.set.p("srv/data/out.log");
    assert_eq!(fs::read_to_string(&log).unwrap(), "to-stdout\nto-stderr\n");
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(&log).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (UID, GID),
        "opened as the workload's user"
    );

    // A symlink planted there (by an earlier run, say) is not followed.
    let before = host_mounts();
    let target = fx.set.write("host-log-target", "ORIGINAL\n");
    chown(&target, UID, GID);
    symlink(&target, fx.set.p("srv/data/link.log")).unwrap();
    fx.command(
        "loglink",
        &probe("stdout-stderr-file: /data/link.log\nvolumes:\n  /data: !Persistent /data\n"),
    );
    let out = fx.run("loglink", &[&format!("echo {STARTED}")]);
    assert_refused(&out, 125, &["box/cmd.loglink.", "/data/link.log"], &before);
    assert_eq!(fs::read_to_string(&target).unwrap(), "ORIGINAL\n");
}

#[test]
fn symlinks_in_the_image_resolve_inside_the_container() {
    let mut fx = fixture!();
    let secret = fx.set.write("host-secret", "SECRET\n");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    symlink(&secret, fx.set.p("images/bb/etc/secret-link")).unwrap();
    symlink("/usr/bin/id", fx.set.p("images/bb/bin/host-id")).unwrap();
    let out = fx.probe(
        "links",
        "",
        "cat /etc/secret-link 2>&1; cat /etc/../../../../etc/secret-link 2>&1; echo end",
    );
    let text = ok(&out);
    assert!(!text.contains("SECRET"), "{text}");
    // An executable that is a symlink to a host path is not found.
    fx.command(
        "hostexe",
        &probe("").replace("executable: /bin/sh", "executable: /bin/host-id"),
    );
    let out = fx.run("hostexe", &[]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
}

/// Run `cairn cmd` in a private mount namespace of its own (unshare(1)),
/// after mounting tmpfs instances inside the image and inside the volume
/// dirs there. The mounts exist only in that namespace (which dies with
/// the command) and only on directories of this test's temp dir: the host
/// mount table is never changed.
#[test]
fn submounts_of_image_and_volumes_get_the_same_flags() {
    let mut fx = fixture!();
    require!(
        Command::new("unshare").arg("--help").output().is_ok(),
        "unshare(1) not found"
    );
    let before = host_mounts();
    for d in ["images/bb/work/sub", "srv/ro/sub", "srv/data/sub"] {
        fs::create_dir_all(fx.set.p(d)).unwrap();
    }
    fx.command(
        "submounts",
        &probe("volumes:\n  /data: !Persistent /data\n  /ro: !Readonly /ro\n"),
    );
    let script = "cat /proc/self/mountinfo; echo ==; \
                  for d in /work/sub /ro/sub /data/sub; do \
                    touch $d/x 2>&1; echo \"$d=$?\"; \
                    cp /bin/busybox $d/bb 2>/dev/null; $d/bb true 2>/dev/null; echo \"$d exec=$?\"; \
                  done";
    let inner = fx.cmd("submounts", &[script]);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-ec"])
        .arg(
            "for d in \"$W\" \"$R\" \"$D\"; do \
               mount -t tmpfs -o size=4m,mode=0777 cairn-test \"$d\"; done; exec \"$@\"",
        )
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env("W", fx.set.p("images/bb/work/sub"))
        .env("R", fx.set.p("srv/ro/sub"))
        .env("D", fx.set.p("srv/data/sub"))
        .env("TERM", "xterm-cairn-test");
    let out = output_within(&mut cmd, None, TIMEOUT);
    fx.assert_cleaned_up();
    assert_host_mounts_unchanged(&before);
    let text = ok(&out);
    let (mi, results) = text.split_once("==\n").unwrap();
    let mounts = parse_mountinfo(mi);
    let v = kv(results);
    // A tmpfs inside the image: read-only, nosuid, nodev like the image.
    assert_flags(
        mount_at(&mounts, "/work/sub"),
        &["ro", "nosuid", "nodev"],
        &[],
    );
    assert_eq!(v["/work/sub"], "1", "{text}");
    // Inside a Readonly volume: ro, nosuid, nodev, noexec.
    assert_flags(
        mount_at(&mounts, "/ro/sub"),
        &["ro", "nosuid", "nodev", "noexec"],
        &[],
    );
    assert_eq!(v["/ro/sub"], "1", "{text}");
    // Inside a Persistent volume: writable, but nosuid, nodev, noexec.
    assert_flags(
        mount_at(&mounts, "/data/sub"),
        &["rw", "nosuid", "nodev", "noexec"],
        &[],
    );
    assert_eq!(v["/data/sub"], "0", "{text}");
    assert_eq!(v["/data/sub exec"], "126", "{text}");
}
