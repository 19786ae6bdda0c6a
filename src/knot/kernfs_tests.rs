//! /proc and /sys through the recording fake (no root): every mask and
//! read-only path with its flags, what a missing path does and what any
//! other error does.

use super::*;
use crate::knot::seam::fake::{Fake, Node};

#[test]
fn only_a_missing_proc_file_goes_without_its_mask() {
    let err =
        |errno| crate::sys::Error::new("openat2", "x", std::io::Error::from_raw_os_error(errno));
    assert!(matches!(
        missing_is_none(Err::<(), _>(err(libc::ENOENT))),
        Ok(None)
    ));
    assert!(matches!(missing_is_none(Ok(1)), Ok(Some(1))));
    for errno in [
        libc::EACCES,
        libc::ELOOP,
        libc::EXDEV,
        libc::ENOMEM,
        libc::EPERM,
        libc::EIO,
    ] {
        assert!(
            missing_is_none(Err::<(), _>(err(errno))).is_err(),
            "errno {errno}"
        );
    }
}

// Named here, not taken from the constants: a path dropped from them
// fails these tests.
const PROC_READONLY: [&str; 5] = ["sys", "sysrq-trigger", "irq", "bus", "fs"];
const PROC_FILES: [&str; 12] = [
    "kcore",
    "keys",
    "key-users",
    "timer_list",
    "timer_stats",
    "latency_stats",
    "sched_debug",
    "kallsyms",
    "config.gz",
    "kpageflags",
    "kpagecount",
    "kpagecgroup",
];
const PROC_DIRS: [&str; 3] = ["acpi", "scsi", "asound"];

fn root() -> Node {
    Node("/mnt".into())
}

fn open(dir: &str, name: &str) -> String {
    format!("openat2 {dir} {name} O_PATH|O_NOFOLLOW 0 beneath-no-symlinks")
}

/// The calls that mask the directory `dir` with the `n`th tmpfs.
fn hidden(calls: &mut Vec<String>, dir: &str, n: usize) {
    calls.push("new_fs tmpfs [size=4096,mode=0555,nr_inodes=1] rdonly,nosuid,nodev,noexec".into());
    calls.push(format!("attach tmpfs#{n} -> {dir}"));
}

/// The calls that bind `/dev/null` read-only, nosuid, noexec over `t`.
fn devnull_over(calls: &mut Vec<String>, t: &str) {
    calls.push("clone_tree /mnt/dev/null one".into());
    calls.push("set_attrs clone(/mnt/dev/null) set=rdonly,nosuid,noexec clear=- one".into());
    calls.push(format!("attach clone(/mnt/dev/null) -> {t}"));
}

#[test]
fn proc_is_nosuid_nodev_noexec_with_every_mask_and_read_only_path() {
    let k = Fake::new();
    proc(&k, &root()).unwrap();
    let mut want: Vec<String> = [
        "open_dir_beneath /mnt proc",
        "new_fs proc [] nosuid,nodev,noexec",
        "attach proc#1 -> /mnt/proc",
        "open_dir_beneath /mnt proc",
    ]
    .map(String::from)
    .to_vec();
    for name in PROC_READONLY {
        // Bound over itself, read-only, its submounts too.
        let t = format!("/mnt/proc/{name}");
        want.push(open("/mnt/proc", name));
        want.push(format!("clone_tree {t} rec"));
        want.push(format!(
            "set_attrs clone({t}) set=rdonly,nosuid,nodev,noexec clear=- rec"
        ));
        want.push(format!("attach clone({t}) -> {t}"));
    }
    want.push("open_dir_beneath /mnt dev".into());
    want.push(open("/mnt/dev", "null"));
    for (i, name) in PROC_FILES.iter().enumerate() {
        let t = format!("/mnt/proc/{name}");
        want.push(open("/mnt/proc", name));
        if i == 0 {
            devnull_over(&mut want, &t);
        } else {
            // A copy of the first mask, flags and all.
            want.push("clone_tree clone(/mnt/dev/null) one".into());
            want.push(format!("attach clone(clone(/mnt/dev/null)) -> {t}"));
        }
    }
    for (i, name) in PROC_DIRS.iter().enumerate() {
        want.push(open("/mnt/proc", name));
        hidden(&mut want, &format!("/mnt/proc/{name}"), i + 1);
    }
    assert_eq!(k.lines(), want);
}

#[test]
fn a_proc_path_this_kernel_lacks_is_skipped_and_the_rest_masked() {
    let k = Fake::new();
    for name in ["sys", "kcore", "acpi"] {
        let line = open("/mnt/proc", name);
        k.fail_when(move |l| l == line, libc::ENOENT);
    }
    proc(&k, &root()).unwrap();
    let lines = k.lines();
    for name in ["sys", "kcore", "acpi"] {
        let t = format!("/mnt/proc/{name}");
        assert!(!lines.iter().any(|l| l.ends_with(&t)), "{name}: {lines:#?}");
    }
    // With kcore missing, keys gets the first mask, from /dev/null.
    let keys = lines
        .iter()
        .position(|l| *l == open("/mnt/proc", "keys"))
        .unwrap();
    let mut want = vec![open("/mnt/proc", "keys")];
    devnull_over(&mut want, "/mnt/proc/keys");
    assert_eq!(lines[keys..keys + 4], want);
    let masked = |t: &str| {
        lines
            .iter()
            .any(|l| l.starts_with("attach") && l.ends_with(t))
    };
    for name in PROC_READONLY.iter().chain(&PROC_FILES).chain(&PROC_DIRS) {
        if !["sys", "kcore", "acpi"].contains(name) {
            assert!(masked(&format!("/mnt/proc/{name}")), "{name}");
        }
    }
}

#[test]
fn any_other_error_on_a_proc_path_stops_the_start() {
    for name in PROC_READONLY.iter().chain(&PROC_FILES).chain(&PROC_DIRS) {
        for errno in [libc::EACCES, libc::ELOOP, libc::EXDEV, libc::EIO] {
            let k = Fake::new();
            let line = open("/mnt/proc", name);
            let failing = line.clone();
            k.fail_when(move |l| l == failing, errno);
            let e = proc(&k, &root()).unwrap_err();
            let says = std::io::Error::from_raw_os_error(errno);
            assert_eq!(e.message, format!("/proc/{name}: openat2 {name}: {says}"));
            assert_eq!(e.errno, Some(errno));
            assert_eq!(k.lines().last(), Some(&line), "nothing after it");
        }
    }
}

#[test]
fn a_mask_that_cannot_be_copied_is_bound_from_dev_null_instead() {
    let k = Fake::new();
    k.fail_when(|l| l.starts_with("clone_tree clone("), libc::ENOMEM);
    proc(&k, &root()).unwrap();
    let lines = k.lines();
    let at = lines
        .iter()
        .position(|l| *l == open("/mnt/proc", "keys"))
        .unwrap();
    let mut want = vec![
        open("/mnt/proc", "keys"),
        "clone_tree clone(/mnt/dev/null) one".into(),
    ];
    devnull_over(&mut want, "/mnt/proc/keys");
    assert_eq!(lines[at..at + 5], want);
}

#[test]
fn a_failing_mask_step_names_the_mask_and_keeps_the_errno() {
    let says = std::io::Error::from_raw_os_error(libc::EPERM);
    let cases = [
        (
            "openat2 /mnt/dev null",
            format!("/dev/null: openat2 null: {says}"),
        ),
        (
            "attach clone(/mnt/dev/null) -> /mnt/proc/kcore",
            format!("mask /proc/kcore: move_mount kcore: {says}"),
        ),
        (
            "attach clone(clone(/mnt/dev/null)) -> /mnt/proc/kallsyms",
            format!("mask /proc/kallsyms: move_mount kallsyms: {says}"),
        ),
        (
            "set_attrs clone(/mnt/dev/null)",
            format!("mask /proc/kcore: mount_setattr /dev/null: {says}"),
        ),
        (
            "set_attrs clone(/mnt/proc/irq)",
            format!("/proc/irq read-only: mount_setattr irq: {says}"),
        ),
        (
            "attach clone(/mnt/proc/bus)",
            format!("mount /proc/bus: move_mount bus: {says}"),
        ),
        (
            "attach tmpfs#2 -> /mnt/proc/scsi",
            format!("mask /proc/scsi: move_mount /proc/scsi: {says}"),
        ),
        ("new_fs proc", format!("proc: fsopen proc: {says}")),
        (
            "attach proc#1",
            format!("mount /proc: move_mount /proc: {says}"),
        ),
    ];
    for (step, message) in cases {
        let k = Fake::new();
        k.fail_when(move |l| l.starts_with(step), libc::EPERM);
        let e = proc(&k, &root()).unwrap_err();
        assert_eq!((e.message, e.errno), (message, Some(libc::EPERM)), "{step}");
        let lines = k.lines();
        assert!(
            lines.last().is_some_and(|l| l.starts_with(step)),
            "{lines:#?}"
        );
    }
}

fn open_sys_dir(name: &str) -> String {
    format!("openat2 /mnt/sys {name} O_PATH|O_DIRECTORY|O_NOFOLLOW 0 beneath-no-symlinks")
}

#[test]
fn sys_is_read_only_nosuid_nodev_noexec_with_firmware_and_powercap_hidden() {
    let k = Fake::new();
    sys(&k, &root()).unwrap();
    let mut want: Vec<String> = [
        "open_dir_beneath /mnt sys",
        // Read-only on the mount: the superblock is shared with the host.
        "new_fs sysfs [] rdonly,nosuid,nodev,noexec",
        "attach sysfs#1 -> /mnt/sys",
        "open_dir_beneath /mnt sys",
    ]
    .map(String::from)
    .to_vec();
    for (i, name) in ["firmware", "devices/virtual/powercap"].iter().enumerate() {
        want.push(open_sys_dir(name));
        hidden(&mut want, &format!("/mnt/sys/{name}"), i + 1);
    }
    assert_eq!(k.lines(), want);
}

#[test]
fn a_sys_dir_this_kernel_lacks_is_skipped_any_other_error_stops_the_start() {
    let k = Fake::new();
    k.fail_when(|l| *l == open_sys_dir("firmware"), libc::ENOENT);
    sys(&k, &root()).unwrap();
    let lines = k.lines();
    assert!(!lines.iter().any(|l| l.ends_with("/mnt/sys/firmware")));
    assert_eq!(
        lines.last().map(String::as_str),
        Some("attach tmpfs#1 -> /mnt/sys/devices/virtual/powercap")
    );

    let k = Fake::new();
    k.fail_when(|l| *l == open_sys_dir("firmware"), libc::EACCES);
    let e = sys(&k, &root()).unwrap_err();
    let says = std::io::Error::from_raw_os_error(libc::EACCES);
    assert_eq!(
        e.message,
        format!("/sys/firmware: openat2 firmware: {says}")
    );
    assert_eq!(e.errno, Some(libc::EACCES));
    assert_eq!(k.lines().last(), Some(&open_sys_dir("firmware")));
}
