//! Reading hostile container configs from an image: a YAML alias bomb, a
//! device node, a symlink out of the image, a FIFO and a huge file each fail
//! their own entry alone; `..` symlinks resolve despite concurrent renames;
//! the reader never opens special files.

use super::*;

/// Billion laughs: 9^12 nodes once expanded.
fn alias_bomb() -> String {
    let mut bomb = format!(
        "executable: /bin/sleep\nuser-id: {UID}\n_a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    );
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("_a{i}: &a{i} [{refs}]\n"));
    }
    bomb
}

fn mknod_char(path: &Path, major: u32, minor: u32) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: mknod(2) on a path in this test's temp dir.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o644,
            libc::makedev(major, minor),
        )
    };
    assert_eq!(r, 0, "mknod {}", path.display());
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: mkfifo(3) on a path in this test's temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn hostile_container_configs_fail_alone() {
    let mut fx = fixture!();
    fx.container("good", &sleeper(""));
    fx.container("bomb", &alias_bomb());
    // /dev/zero inside the image (symlinks resolve in the image's root).
    mknod_char(&fx.set.p("images/bb/dev/zero"), 1, 5);
    symlink("/dev/zero", fx.set.p("images/bb/config/zero.yaml")).expect("symlink");
    // An escape attempt lands on the same node inside the image.
    symlink(
        "../../../../../../../../../dev/zero",
        fx.set.p("images/bb/config/escape.yaml"),
    )
    .expect("symlink");
    mkfifo(&fx.set.p("images/bb/config/fifo.yaml"));
    let mut huge = format!("executable: /bin/sleep\nuser-id: {UID}\nenviron:\n");
    while huge.len() < 3 << 20 {
        huge.push_str(&format!("  VAR_{}: \"{}\"\n", huge.len(), "x".repeat(100)));
    }
    fx.container("huge", &huge);
    fx.processes(&[
        ("good", 1),
        ("bomb", 2),
        ("zero", 1),
        ("escape", 1),
        ("fifo", 1),
        ("huge", 1),
    ]);
    let started = Instant::now();
    fx.start();
    let bad = [
        ("box/bomb.0", "bomb.yaml", "YAML nodes"),
        ("box/bomb.1", "bomb.yaml", "YAML nodes"),
        ("box/zero.0", "zero.yaml", "regular"),
        // Lands on the same node inside the image; the exact reason is
        // checked in `dotdot_symlinks_resolve_despite_concurrent_renames`.
        ("box/escape.0", "escape.yaml", ""),
        ("box/fifo.0", "fifo.yaml", "regular"),
        ("box/huge.0", "huge.yaml", "large"),
    ];
    let ps = fx.wait_ps("good running, the rest failed", |ps| {
        all_running(ps, &["box/good.0"])
            && bad.iter().all(|(n, _, _)| state(ps, n) == Some("failed"))
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    for (name, file, why) in bad {
        let i = inst(&ps, name).expect("listed");
        let err = i["error"].as_str().unwrap_or_else(|| panic!("{i}"));
        assert!(err.contains(file) && err.contains(why), "{name}: {err}");
        assert!(i["pid"].is_null() && i["workload_pid"].is_null(), "{i}");
    }
    let errors = ps["config_errors"].to_string();
    for (_, file, _) in bad {
        assert!(errors.contains(file), "{file} not in {errors}");
    }
    // ps answers at once, in both forms.
    for args in [vec!["ps", "-c"], vec!["ps", "--json", "-c"]] {
        let t = Instant::now();
        let mut cmd = Command::new(cairn_bin());
        cmd.args(&args).arg(fx.master_path());
        let out = output_within(&mut cmd, None, Duration::from_secs(5));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "ps took {:?}",
            t.elapsed()
        );
        assert!(stdout(&out).contains("box/zero.0"));
    }
    // The tree itself still answers a reload, and a repaired config runs.
    let good = pids(&ps, "box/good.0");
    fx.container("bomb", &sleeper(""));
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = fx.wait_ps("the repaired bomb entry running", |ps| {
        all_running(ps, &["box/bomb.0", "box/bomb.1"])
    });
    assert_eq!(pids(&ps, "box/good.0"), good, "good.0 was restarted");
    assert_eq!(state(&ps, "box/fifo.0"), Some("failed"));
}

/// A `..` in a symlink of the image (legal, and common) makes openat2's
/// RESOLVE_IN_ROOT check the kernel's rename and mount sequence counters;
/// any rename anywhere on the host meanwhile (every tree replaces its
/// state.json by rename) makes it fail with EAGAIN, which the man page says
/// to retry. A config read must not fail for that.
#[test]
fn dotdot_symlinks_resolve_despite_concurrent_renames() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut fx = fixture!();
    fx.set.write("images/bb/etc/web.yaml", sleeper(""));
    symlink("../etc/web.yaml", fx.set.p("images/bb/config/web.yaml")).expect("symlink");
    mknod_char(&fx.set.p("images/bb/dev/zero"), 1, 5);
    symlink(
        "../../../../../../../../../dev/zero",
        fx.set.p("images/bb/config/escape.yaml"),
    )
    .expect("symlink");
    fx.processes(&[("web", 1), ("escape", 1)]);
    // Renames elsewhere on the host, as busy hosts have.
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = stop.clone();
        let (a, b) = (fx.set.p("storm-a"), fx.set.p("storm-b"));
        fs::write(&a, "x").expect("write");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::rename(&a, &b);
                let _ = fs::rename(&b, &a);
            }
        })
    };
    fx.start();
    let mut problems = Vec::new();
    let mut ps = fx.wait_ps("web running, escape failed", |ps| {
        state(ps, "box/escape.0") == Some("failed")
            && matches!(state(ps, "box/web.0"), Some("running" | "failed"))
    });
    for round in 0..20 {
        let web = inst(&ps, "box/web.0")
            .map(|i| i.to_string())
            .unwrap_or_default();
        let escape = inst(&ps, "box/escape.0")
            .map(|i| i.to_string())
            .unwrap_or_default();
        if state(&ps, "box/web.0") != Some("running") || !escape.contains("regular") {
            problems.push(format!("round {round}: web {web}\nescape {escape}"));
        }
        let errors = ps["config_errors"].to_string();
        if errors.contains("temporarily unavailable") {
            problems.push(format!("round {round}: {errors}"));
        }
        let before = reloads(&ps);
        let out = cairn(&["reload", "-c", &fx.master_path()]);
        assert!(out.status.success(), "{}", stderr(&out));
        ps = fx.wait_ps("the reload", |ps| reloads(ps) > before);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = storm.join();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The config reader must not open what is not a regular file: opening a
/// device node can have effects (a tape rewinds, a watchdog arms), and
/// opening a FIFO wakes the writer blocked on it. Here a writer blocks in
/// open(2) on a FIFO in the image; it must still be blocked once the tree
/// has marked the entry failed.
#[test]
fn config_reader_does_not_open_special_files() {
    let mut fx = fixture!();
    let fifo = fx.set.p("images/bb/config/fifo.yaml");
    mkfifo(&fifo);
    fx.container("good", &sleeper(""));
    fx.processes(&[("good", 1), ("fifo", 1)]);
    let (tx, rx) = std::sync::mpsc::channel();
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        // Blocks until somebody opens the FIFO for reading.
        let r = fs::OpenOptions::new().write(true).open(&writer_path);
        let _ = tx.send(r.is_ok());
    });
    fx.start();
    fx.wait_ps("fifo.0 failed", |ps| {
        state(ps, "box/fifo.0") == Some("failed")
    });
    let opened = rx.recv_timeout(Duration::from_millis(500)).is_ok();
    if !opened {
        // Release the writer ourselves.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
    }
    let _ = writer.join();
    assert!(!opened, "the tree's config reader opened the FIFO");
}
