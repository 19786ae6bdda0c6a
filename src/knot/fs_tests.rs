//! The container build through the recording fake (no root): the exact
//! calls and flags of the image, /dev, every volume kind, the etc files
//! and the pivot, and how each failing step stops the build.

use super::*;
use crate::knot::seam::fake::{Call, Fake, Node};
use crate::spec::MountSpec;

fn node(s: &str) -> Node {
    Node(s.to_string())
}

/// The sample instance (one volume of each kind), built on `/mnt`.
fn spec() -> InstanceSpec {
    let mut s = crate::spec::tests::sample("");
    s.host.mount_dir = "/mnt".into();
    s
}

/// A fake with the host files the sample copies.
fn fake() -> Fake {
    let k = Fake::new();
    k.host_file("/etc/hosts", b"127.0.0.1 localhost\n");
    k.host_file("/etc/resolv.conf", b"nameserver 192.0.2.1\n");
    k
}

fn build_on(k: &Fake, spec: &InstanceSpec) -> Result<()> {
    build_with(k, spec, &node("state"), None)
}

/// What the kernel says for `errno`, as the messages end.
fn says(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

fn position(lines: &[String], line: &str) -> usize {
    lines
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no {line:?} in {lines:#?}"))
}

#[test]
fn the_image_is_mounted_read_only_nosuid_nodev_first_and_the_pivot_is_last() {
    let k = fake();
    build_on(&k, &spec()).unwrap();
    let lines = k.lines();
    assert_eq!(
        lines[..7],
        [
            "make_all_private",
            "open_image /img web",
            "clone_tree /img/web rec",
            "set_attrs clone(/img/web) set=rdonly,nosuid,nodev clear=- rec",
            "open_dir /mnt",
            "attach clone(/img/web) -> /mnt",
            // Opened again: the path now leads to the image.
            "open_dir /mnt",
        ]
    );
    assert_eq!(lines.last().map(String::as_str), Some("pivot_into /mnt"));
    assert_eq!(lines.iter().filter(|l| l.starts_with("pivot")).count(), 1);
    // /dev, /proc, the volumes in order, the etc files, then the pivot.
    let order = [
        "attach tmpfs#1 -> /mnt/dev",
        "attach proc#1 -> /mnt/proc",
        "attach clone(/srv/ro) -> /mnt/ro",
        "attach tmpfs#6 -> /mnt/tmp",
        "attach clone(state) -> /mnt/state",
        "attach clone(/srv/data/x) -> /mnt/var/data",
        "attach clone(state/resolv.conf) -> /mnt/etc/resolv.conf",
        "attach clone(state/hosts) -> /mnt/etc/hosts",
        "pivot_into /mnt",
    ];
    let at: Vec<usize> = order.iter().map(|l| position(&lines, l)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{lines:#?}");
    // No sysfs unless the sandbox asks.
    assert!(!lines.iter().any(|l| l.contains("sysfs")));
}

#[test]
fn sysfs_comes_after_proc_and_before_the_volumes() {
    let mut s = spec();
    s.isolation.sysfs = true;
    let k = fake();
    build_on(&k, &s).unwrap();
    let lines = k.lines();
    let sys = position(&lines, "attach sysfs#1 -> /mnt/sys");
    assert!(position(&lines, "attach tmpfs#5 -> /mnt/proc/asound") < sys);
    assert!(sys < position(&lines, "attach clone(/srv/ro) -> /mnt/ro"));
}

#[test]
fn dev_is_a_small_tmpfs_with_its_nodes_links_devpts_and_shm_then_read_only() {
    let k = Fake::new();
    dev(&k, &spec(), &node("/mnt"), false).unwrap();
    assert_eq!(
        k.lines(),
        [
            "open_dir_beneath /mnt dev",
            "new_fs tmpfs [mode=0755,size=65536,nr_inodes=64] nosuid,noexec",
            "make_nodes tmpfs#1 [null:666:1:3,zero:666:1:5,full:666:1:7,random:666:1:8,\
             urandom:666:1:9,tty:666:5:0] [pts:755,shm:1777]",
            "symlink tmpfs#1/ptmx -> pts/ptmx",
            "symlink tmpfs#1/fd -> /proc/self/fd",
            "symlink tmpfs#1/stdin -> /proc/self/fd/0",
            "symlink tmpfs#1/stdout -> /proc/self/fd/1",
            "symlink tmpfs#1/stderr -> /proc/self/fd/2",
            "attach tmpfs#1 -> /mnt/dev",
            "open_dir_beneath /mnt dev",
            "open_dir_beneath /mnt/dev pts",
            "new_fs devpts [ptmxmode=0666,mode=0620,gid=5,max=64] nosuid,noexec",
            "attach devpts#1 -> /mnt/dev/pts",
            "open_dir_beneath /mnt/dev shm",
            "new_fs tmpfs [mode=1777,size=67108864] nosuid,nodev,noexec",
            "attach tmpfs#2 -> /mnt/dev/shm",
            // Not recursive: pts and shm keep their own flags.
            "set_attrs /mnt/dev set=rdonly,nosuid,noexec clear=- one",
        ]
    );
}

#[test]
fn a_devfs_dir_is_bound_read_only_nosuid_noexec_as_dev() {
    let mut s = spec();
    s.host.devfs_dir = Some("/var/lib/devfs".into());
    let k = Fake::new();
    dev(&k, &s, &node("/mnt"), false).unwrap();
    assert_eq!(
        k.lines(),
        [
            "open_dir_beneath /mnt dev",
            "open_dir /var/lib/devfs",
            "clone_tree /var/lib/devfs one",
            "set_attrs clone(/var/lib/devfs) set=rdonly,nosuid,noexec clear=- one",
            "attach clone(/var/lib/devfs) -> /mnt/dev",
        ]
    );
}

/// The calls one volume makes.
fn volume_calls(k: &Fake, target: &str, kind: MountKind) -> Vec<String> {
    let m = MountSpec {
        target: target.into(),
        kind,
    };
    volume(k, &node("/mnt"), &node("state"), &m).unwrap();
    k.lines()
}

#[test]
fn a_readonly_volume_is_a_recursive_read_only_nosuid_nodev_noexec_bind() {
    let kind = MountKind::Bind {
        base: "/srv/ro".into(),
        sub: String::new(),
        writable: false,
        mkdir: None,
    };
    assert_eq!(
        volume_calls(&Fake::new(), "/ro", kind),
        [
            "open_dir_beneath /mnt /ro",
            "open_dir /srv/ro",
            "open_dir_beneath /srv/ro ",
            "clone_tree /srv/ro rec",
            "set_attrs clone(/srv/ro) set=rdonly,nosuid,nodev,noexec clear=- rec",
            "attach clone(/srv/ro) -> /mnt/ro",
        ]
    );
}

#[test]
fn a_persistent_volume_without_mkdir_is_a_recursive_nosuid_nodev_noexec_bind() {
    let kind = MountKind::Bind {
        base: "/srv/data".into(),
        sub: "a/b".into(),
        writable: true,
        mkdir: None,
    };
    assert_eq!(
        volume_calls(&Fake::new(), "/data", kind),
        [
            "open_dir_beneath /mnt /data",
            "open_dir /srv/data",
            "open_dir_beneath /srv/data a/b",
            "clone_tree /srv/data/a/b rec",
            "set_attrs clone(/srv/data/a/b) set=nosuid,nodev,noexec clear=- rec",
            "attach clone(/srv/data/a/b) -> /mnt/data",
        ]
    );
}

fn persistent_mkdir() -> MountKind {
    MountKind::Bind {
        base: "/srv/data".into(),
        sub: "x".into(),
        writable: true,
        mkdir: Some((0o750, 1000, 1001)),
    }
}

#[test]
fn a_persistent_volume_with_mkdir_owns_the_dir_it_creates() {
    assert_eq!(
        volume_calls(&Fake::new(), "/var/data", persistent_mkdir()),
        [
            "open_dir_beneath /mnt /var/data",
            "open_dir /srv/data",
            "mkdir_beneath /srv/data x 750",
            "chown_chmod /srv/data/x 1000:1001 750",
            "clone_tree /srv/data/x rec",
            "set_attrs clone(/srv/data/x) set=nosuid,nodev,noexec clear=- rec",
            "attach clone(/srv/data/x) -> /mnt/var/data",
        ]
    );
}

#[test]
fn a_persistent_volume_with_mkdir_leaves_a_dir_that_was_there_alone() {
    let k = Fake::new();
    k.existing("/srv/data/x");
    let lines = volume_calls(&k, "/var/data", persistent_mkdir());
    assert!(!lines.iter().any(|l| l.starts_with("chown")), "{lines:#?}");
    assert_eq!(lines[2], "mkdir_beneath /srv/data x 750");
    assert_eq!(lines[3], "clone_tree /srv/data/x rec");
}

#[test]
fn a_tmpfs_volume_has_its_size_and_mode_and_is_nosuid_nodev_noexec() {
    let kind = MountKind::Tmpfs {
        size: 1 << 20,
        mode: 0o1777,
    };
    assert_eq!(
        volume_calls(&Fake::new(), "/tmp", kind),
        [
            "open_dir_beneath /mnt /tmp",
            "new_fs tmpfs [size=1048576,mode=1777] nosuid,nodev,noexec",
            "attach tmpfs#1 -> /mnt/tmp",
        ]
    );
}

#[test]
fn a_statedir_volume_is_created_owned_and_bound_nosuid_nodev_noexec() {
    let kind = MountKind::Statedir {
        sub: "cache".into(),
        mode: 0o700,
        uid: 1000,
        gid: 1000,
    };
    assert_eq!(
        volume_calls(&Fake::new(), "/state", kind),
        [
            "open_dir_beneath /mnt /state",
            "mkdir_beneath state cache 700",
            // Owned even when it was there: the state dir is cairn's.
            "chown_chmod state/cache 1000:1000 700",
            "clone_tree state/cache one",
            "set_attrs clone(state/cache) set=nosuid,nodev,noexec clear=- one",
            "attach clone(state/cache) -> /mnt/state",
        ]
    );
}

#[test]
fn every_volume_of_the_sample_is_nosuid_nodev_noexec() {
    let k = fake();
    build_on(&k, &spec()).unwrap();
    let calls = k.calls();
    for v in ["/mnt/ro", "/mnt/tmp", "/mnt/state", "/mnt/var/data"] {
        // The mount attached there, and the last call that set its flags.
        let at = calls
            .iter()
            .position(|c| matches!(c, Call::Attach(_, t) if t == v))
            .unwrap_or_else(|| panic!("nothing attached on {v}"));
        let Call::Attach(mnt, _) = &calls[at] else {
            unreachable!()
        };
        let flags = calls[..at].iter().rev().find_map(|c| match c {
            Call::SetAttrs { mnt: m, set, .. } if m == mnt => Some(*set),
            Call::NewFs(_, _, a) if mnt.starts_with("tmpfs#") => Some(*a),
            _ => None,
        });
        let flags = flags.unwrap_or_else(|| panic!("{v}: how {mnt} was made"));
        assert_eq!(flags.or(Attrs::SAFE), flags, "{v}: {mnt}");
    }
}

#[path = "fs_etc_tests.rs"]
mod etc_files;

#[path = "fs_fail_tests.rs"]
mod failures;

/// `ready: !Notify`: an empty file in the fresh `/dev` (before it is made
/// read-only), and the tree's socket file bound onto it read-only,
/// nosuid, nodev, noexec, not recursive, before the pivot.
#[test]
fn a_notify_socket_is_bound_read_only_onto_dev_cairn_notify() {
    let mut s = spec();
    s.service.ready = Some(crate::spec::Ready::Notify);
    let k = fake();
    build_with(&k, &s, &node("state"), Some(&node("/run/n/box:web.0"))).unwrap();
    let lines = k.lines();
    let made = position(&lines, "replace_file tmpfs#1 cairn-notify 444 \"\"");
    assert!(made < position(&lines, "attach tmpfs#1 -> /mnt/dev"));
    let ro = position(
        &lines,
        "set_attrs /mnt/dev set=rdonly,nosuid,noexec clear=- one",
    );
    let bound = position(
        &lines,
        "set_attrs clone(/run/n/box:web.0) set=rdonly,nosuid,nodev,noexec clear=- one",
    );
    let attached = position(
        &lines,
        "attach clone(/run/n/box:web.0) -> /mnt/dev/cairn-notify",
    );
    assert!(ro < bound && bound < attached, "{lines:#?}");
    assert!(attached < position(&lines, "pivot_into /mnt"));
}

/// Without the file (a devfs-dir that lacks it), the start fails and
/// names the path.
#[test]
fn a_notify_socket_without_its_file_fails_the_start() {
    let mut s = spec();
    s.service.ready = Some(crate::spec::Ready::Notify);
    s.host.devfs_dir = Some("/var/lib/devfs".into());
    let k = fake();
    k.fail_when(
        |l| l.starts_with("openat2 /mnt dev/cairn-notify"),
        libc::ENOENT,
    );
    let e = build_with(&k, &s, &node("state"), Some(&node("/run/n/x"))).unwrap_err();
    assert_eq!(e.path.as_deref(), Some("/dev/cairn-notify"), "{e}");
    assert_eq!(e.errno, Some(libc::ENOENT), "{e}");
    assert!(e.message.contains("devfs-dir"), "{e}");
}
