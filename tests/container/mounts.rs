//! The mount table seen from inside: flags on every mount, masked and
//! read-only parts of /proc, the minimal /dev, generated /etc files.

use super::*;

/// Host /proc entries that exist on this kernel (the container can only
/// mask or protect what exists).
fn host_proc_has(name: &str) -> bool {
    Path::new("/proc").join(name).symlink_metadata().is_ok()
}

#[test]
fn mountinfo_shows_expected_flags() {
    let mut fx = fixture!();
    let out = fx.probe(
        "mounts",
        "volumes:\n  /data: !Persistent /data\n  /ro: !Readonly /ro\n  \
         /tmp: !Tmpfs {size: 10Mi, mode: 0o750}\n  /state: !Statedir {}\n",
        "cat /proc/self/mountinfo",
    );
    let mounts = parse_mountinfo(&ok(&out));
    let all = |m: &Mount| format!("{m:?}");

    // Every mount in the container is nosuid.
    for m in &mounts {
        assert!(m.opts.contains("nosuid"), "no nosuid: {}", all(m));
    }
    let root = mount_at(&mounts, "/");
    assert_flags(root, &["ro", "nosuid", "nodev"], &["rw"]);
    assert!(root.root.ends_with("/images/bb"), "{root:?}");

    let safe = ["nosuid", "nodev", "noexec"];
    for (point, rw) in [
        ("/data", true),
        ("/state", true),
        ("/tmp", true),
        ("/ro", false),
    ] {
        let m = mount_at(&mounts, point);
        assert_flags(m, &safe, &[]);
        assert_flags(m, &[if rw { "rw" } else { "ro" }], &[]);
    }
    let tmp = mount_at(&mounts, "/tmp");
    assert_eq!(tmp.fstype, "tmpfs");
    assert!(tmp.super_opts.contains("size=10240k"), "{tmp:?}");
    assert!(tmp.super_opts.contains("mode=750"), "{tmp:?}");
    assert!(mount_at(&mounts, "/data").root.ends_with("/srv/data"));
    assert!(mount_at(&mounts, "/ro").root.ends_with("/srv/ro"));
    assert!(mount_at(&mounts, "/state").root.ends_with("/state"));

    let proc = mount_at(&mounts, "/proc");
    assert_eq!(proc.fstype, "proc");
    assert_flags(proc, &safe, &[]);
    for name in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        if host_proc_has(name) {
            let m = mount_at(&mounts, &format!("/proc/{name}"));
            assert_eq!(m.fstype, "proc", "{m:?}");
            assert_flags(m, &["ro"], &[]);
        }
    }
    for name in [
        "kcore",
        "keys",
        "timer_list",
        "latency_stats",
        "sched_debug",
        "kallsyms",
    ] {
        if host_proc_has(name) {
            let m = mount_at(&mounts, &format!("/proc/{name}"));
            // Our /dev/null (on the container's /dev tmpfs), read-only.
            assert_eq!((m.fstype.as_str(), m.root.as_str()), ("tmpfs", "/null"));
            assert_flags(m, &["ro"], &[]);
        }
    }
    for name in ["acpi", "scsi"] {
        if host_proc_has(name) {
            let m = mount_at(&mounts, &format!("/proc/{name}"));
            assert_eq!(m.fstype, "tmpfs", "{m:?}");
            assert_flags(m, &["ro"], &[]);
        }
    }
    let dev = mount_at(&mounts, "/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert_flags(dev, &["ro", "nosuid", "noexec"], &[]);
    let pts = mount_at(&mounts, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    assert_flags(pts, &["nosuid", "noexec"], &[]);
    let shm = mount_at(&mounts, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    assert_flags(shm, &safe, &[]);
    for f in ["/etc/hosts", "/etc/resolv.conf"] {
        assert_flags(
            mount_at(&mounts, f),
            &["ro", "nosuid", "nodev", "noexec"],
            &[],
        );
    }

    // Nothing else: no /sys, no cgroupfs, no host mounts carried along.
    for m in &mounts {
        let known = [
            "/",
            "/data",
            "/ro",
            "/tmp",
            "/state",
            "/etc/hosts",
            "/etc/resolv.conf",
        ]
        .contains(&m.point.as_str())
            || m.point == "/proc"
            || m.point.starts_with("/proc/")
            || m.point == "/dev"
            || m.point.starts_with("/dev/");
        assert!(known, "unexpected mount: {}", all(m));
        assert!(
            !["sysfs", "cgroup", "cgroup2"].contains(&m.fstype.as_str()),
            "{}",
            all(m)
        );
    }
}

#[test]
fn kernel_files_in_proc_are_masked() {
    let mut fx = fixture!();
    let out = fx.probe(
        "masked",
        "",
        &format!(
            "for f in {FILES}; do \
               [ -e /proc/$f ] && echo \"$f=$(cat /proc/$f 2>/dev/null | wc -c)\"; done; \
             for d in {DIRS}; do [ -d /proc/$d ] && echo \"$d=$(ls -A /proc/$d | wc -l)\"; done; \
             cat /proc/self/mountinfo"
        ),
    );
    let text = ok(&out);
    let v = kv(&text);
    let mounts = parse_mountinfo(&text);
    for name in FILES.split(' ').chain(DIRS.split(' ')) {
        if host_proc_has(name) {
            assert_eq!(
                v.get(name).map(String::as_str),
                Some("0"),
                "{name}:\n{text}"
            );
            // Masked by a mount, not only unreadable to this uid.
            mount_at(&mounts, &format!("/proc/{name}"));
        }
    }
}

/// The /proc files Docker masks, and those like them: kernel memory and
/// symbols, keys and key quotas of every user, timers, scheduler
/// internals, the kernel's build config, per-page flags and counts.
const FILES: &str = "kcore keys key-users timer_list timer_stats latency_stats sched_debug \
                     kallsyms config.gz kpageflags kpagecount kpagecgroup";
const DIRS: &str = "acpi scsi asound";

/// A container's devpts holds at most 64 ptys (`max=64`): one container
/// cannot take the pool of ptys the kernel has for all of them.
#[test]
fn a_container_holds_at_most_64_ptys() {
    let mut fx = fixture!();
    let built = super::seccomp::secprobe(&fx, false);
    require!(built.is_ok(), built.err().unwrap_or_default());
    fx.command(
        "ptys",
        &super::seccomp::program("/bin/secprobe", &["ptys", "100"], ""),
    );
    let out = fx.run("ptys", &[]);
    assert_eq!(ok(&out), "ptys=64 errno=ENOSPC\n");
    let out = fx.probe("pts", "", "grep ' /dev/pts ' /proc/self/mountinfo");
    let pts = parse_mountinfo(&ok(&out));
    assert!(pts[0].super_opts.contains("max=64"), "{pts:?}");
}

/// No /sys by default; `sysfs: true` mounts one, read-only, nosuid, nodev,
/// noexec, with firmware and powercap hidden and none of the host's
/// submounts (cgroups, debugfs, ...).
#[test]
fn sysfs_only_with_the_sandbox_key_and_read_only() {
    let mut fx = fixture!();
    let script = "ls -A /sys | wc -l; awk '$5 ~ \"^/sys(/|$)\"' /proc/self/mountinfo; \
                  echo firmware=$(ls -A /sys/firmware 2>/dev/null | wc -l); \
                  echo cgroup=$(ls -A /sys/fs/cgroup 2>/dev/null | wc -l); \
                  echo x > /sys/kernel/uevent_helper; echo write=$?";
    let out = fx.probe("sys", "", script);
    let text = ok(&out);
    assert_eq!(text.lines().next(), Some("0"), "{text}");
    assert!(parse_mountinfo(&text).is_empty(), "{text}");

    fx.sandbox("allow-users: [1000-1999]\nallow-groups: [1000-1999]\nsysfs: true\n");
    let out = fx.run("sys", &[script]);
    let text = ok(&out);
    let mounts = parse_mountinfo(&text);
    let sys = mount_at(&mounts, "/sys");
    assert_eq!(sys.fstype, "sysfs", "{text}");
    assert_flags(sys, &["ro", "nosuid", "nodev", "noexec"], &["rw"]);
    let v = kv(&text);
    assert_eq!(v["firmware"], "0", "{text}");
    assert_eq!(v["cgroup"], "0", "{text}");
    assert_ne!(v["write"], "0", "{text}");
    if Path::new("/sys/firmware").is_dir() {
        assert_eq!(mount_at(&mounts, "/sys/firmware").fstype, "tmpfs");
    }
    assert!(
        mounts
            .iter()
            .all(|m| m.point == "/sys" || !m.point.starts_with("/sys/") || m.fstype == "tmpfs"),
        "a host mount under /sys: {mounts:#?}"
    );
}

#[test]
fn dev_is_minimal() {
    let mut fx = fixture!();
    let out = fx.probe(
        "dev",
        "",
        "ls -A /dev | tr '\\n' ' '; echo; \
         for d in null zero full random urandom tty; do \
           echo \"$d=$(stat -c '%F %t:%T %a' /dev/$d)\"; done; \
         echo hi > /dev/null; echo null_write=$?; \
         echo random_bytes=$(head -c 4 /dev/urandom | wc -c); \
         touch /dev/evil 2>&1; echo touch=$?; mknod /dev/shm/sda b 8 0 2>&1; echo mknod=$?",
    );
    let text = ok(&out);
    let mut names: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ],
        "{text}"
    );
    let v = kv(&text);
    for (d, num) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        assert_eq!(v[d], format!("character special file {num} 666"), "{text}");
    }
    assert_eq!(v["null_write"], "0");
    assert_eq!(v["random_bytes"], "4");
    assert_ne!(v["touch"], "0", "{text}");
    assert_ne!(v["mknod"], "0", "{text}");
    assert!(text.contains("Read-only file system"), "{text}");
}

#[test]
fn generated_hosts_and_resolv_conf() {
    let mut fx = fixture!();
    let out = fx.probe(
        "etc",
        "",
        "cat /etc/hosts; echo ==; cat /etc/resolv.conf; echo ==; \
         echo x >> /etc/hosts 2>&1; echo rc=$?",
    );
    let text = ok(&out);
    let parts: Vec<&str> = text.split("==\n").collect();
    assert_eq!(
        parts[0], "10.9.8.7 from-host\n10.1.2.3 db.example\n",
        "{text}"
    );
    assert_eq!(parts[1], "nameserver 10.9.8.1\n", "{text}");
    assert!(!parts[2].contains("rc=0"), "{text}");
    // The host's files and the image's are untouched.
    assert_eq!(
        fs::read_to_string(fx.set.p("host-hosts")).unwrap(),
        "10.9.8.7 from-host\n"
    );
    assert_eq!(
        fs::read_to_string(fx.set.p("images/bb/etc/hosts")).unwrap(),
        ""
    );
}
