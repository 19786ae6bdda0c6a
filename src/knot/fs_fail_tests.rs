//! Fail closed: a step of the build that fails stops it there, with an
//! error that names the step and carries the kernel's errno.

use super::*;

/// Failures the build goes on after, on purpose: a /proc mask that could
/// not be copied from the first one is bound from /dev/null instead; an
/// image's /etc file that cannot be opened or looked at is not replaced
/// (with `mount: true` that is an error, see the etc tests).
fn tolerated(line: &str) -> bool {
    line.starts_with("clone_tree clone(")
        || line.starts_with("openat2 /mnt etc/")
        || line.starts_with("is_regular /mnt/etc/")
}

/// Steps whose errors are words without an errno (reading a host file).
fn wordy(line: &str) -> bool {
    line.starts_with("read_host_file")
}

#[test]
fn every_failing_step_stops_the_build_with_its_errno() {
    let mut s = spec();
    s.isolation.sysfs = true;
    let all = {
        let k = fake();
        build_on(&k, &s).unwrap();
        k.lines()
    };
    assert!(all.len() > 100, "{}", all.len());
    let mut stopped = 0;
    for (n, line) in all.iter().enumerate() {
        let k = fake();
        k.fail_nth(n, libc::EIO);
        let r = build_on(&k, &s);
        let lines = k.lines();
        assert_eq!(lines[..n], all[..n], "the calls before call {n}");
        if tolerated(line) {
            assert_eq!(r, Ok(()), "{line}");
            continue;
        }
        let e = r.expect_err(line);
        assert_eq!(lines.len(), n + 1, "nothing runs after {line}: {lines:#?}");
        assert!(e.message.ends_with(&says(libc::EIO)), "{line}: {e}");
        let errno = if wordy(line) { None } else { Some(libc::EIO) };
        assert_eq!(e.errno, errno, "{line}: {e}");
        stopped += 1;
    }
    assert!(stopped > 80, "{stopped}");
}

/// The build's error when the first call whose line starts with `step`
/// fails with `errno`, and the calls made.
fn failing(step: &'static str, errno: i32) -> (SetupError, Vec<String>) {
    let k = fake();
    k.fail_when(move |l| l.starts_with(step), errno);
    let e = build_on(&k, &spec()).unwrap_err();
    (e, k.lines())
}

#[test]
fn each_error_names_its_step() {
    let io = says(libc::EIO);
    let cases: &[(&str, String)] = &[
        ("make_all_private", format!("mount --make-rprivate /: {io}")),
        ("open_image", format!("image \"web\": openat2 web: {io}")),
        ("clone_tree /img/web", format!("image: open_tree web: {io}")),
        (
            "set_attrs clone(/img/web)",
            format!("image: mount_setattr web: {io}"),
        ),
        ("open_dir /mnt", format!("mount-dir: open /mnt: {io}")),
        (
            "attach clone(/img/web)",
            format!("mount image: move_mount image: {io}"),
        ),
        (
            "open_dir_beneath /mnt dev",
            format!("dev in the image: openat2 dev: {io}"),
        ),
        (
            "new_fs tmpfs [mode=0755",
            format!("/dev tmpfs: fsopen tmpfs: {io}"),
        ),
        ("make_nodes", format!("/dev: mknod null: {io}")),
        (
            "symlink tmpfs#1/stdin",
            format!("/dev: symlink stdin: {io}"),
        ),
        (
            "attach tmpfs#1",
            format!("mount /dev: move_mount /dev: {io}"),
        ),
        (
            "open_dir_beneath /mnt/dev pts",
            format!("/dev/pts: openat2 pts: {io}"),
        ),
        ("new_fs devpts", format!("devpts: fsopen devpts: {io}")),
        (
            "attach devpts#1",
            format!("mount /dev/pts: move_mount /dev/pts: {io}"),
        ),
        (
            "open_dir_beneath /mnt/dev shm",
            format!("/dev/shm: openat2 shm: {io}"),
        ),
        (
            "new_fs tmpfs [mode=1777",
            format!("/dev/shm tmpfs: fsopen tmpfs: {io}"),
        ),
        (
            "attach tmpfs#2",
            format!("mount /dev/shm: move_mount /dev/shm: {io}"),
        ),
        (
            "set_attrs /mnt/dev",
            format!("/dev read-only: mount_setattr /dev: {io}"),
        ),
        (
            "open_dir_beneath /mnt /ro",
            format!("/ro in the image: openat2 ro: {io}"),
        ),
        (
            "open_dir /srv/ro",
            format!("volume /ro: host dir /srv/ro: open /srv/ro: {io}"),
        ),
        (
            "open_dir_beneath /srv/ro",
            format!("volume /ro: /srv/ro/ (no symlinks allowed): openat2 .: {io}"),
        ),
        (
            "clone_tree /srv/ro",
            format!("volume /ro: open_tree /ro: {io}"),
        ),
        (
            "set_attrs clone(/srv/ro)",
            format!("volume /ro: mount_setattr /ro: {io}"),
        ),
        (
            "attach clone(/srv/ro)",
            format!("mount volume /ro: move_mount /ro: {io}"),
        ),
        (
            "new_fs tmpfs [size=1048576",
            format!("volume /tmp: fsopen tmpfs: {io}"),
        ),
        (
            "mkdir_beneath state",
            format!("volume /state: mkdir /: {io}"),
        ),
        ("chown_chmod state", format!("volume /state: chown /: {io}")),
        (
            "mkdir_beneath /srv/data",
            format!("volume /var/data: create /srv/data/x: mkdir x: {io}"),
        ),
        (
            "chown_chmod /srv/data/x",
            format!("volume /var/data: chown x: {io}"),
        ),
        (
            "attach clone(/srv/data/x)",
            format!("mount volume /var/data: move_mount /var/data: {io}"),
        ),
        (
            "read_host_file /etc/resolv.conf",
            format!("sandbox resolv-conf /etc/resolv.conf: cannot open: {io}"),
        ),
        (
            "replace_file state resolv.conf",
            format!("write state/resolv.conf: openat2 resolv.conf: {io}"),
        ),
        (
            "pivot_into",
            format!("pivot_root: pivot_root new root: {io}"),
        ),
    ];
    for (step, message) in cases {
        let (e, lines) = failing(step, libc::EIO);
        assert_eq!(&e.message, message, "{step}");
        assert!(
            lines.last().is_some_and(|l| l.starts_with(step)),
            "{step}: {lines:#?}"
        );
    }
}

#[test]
fn a_mount_point_the_image_lacks_or_fakes_is_named_as_such() {
    let cases: &[(&str, i32, &str)] = &[
        (
            "open_dir_beneath /mnt dev",
            libc::ENOENT,
            "dev does not exist in the image (cairn mounts /dev there)",
        ),
        (
            "open_dir_beneath /mnt proc",
            libc::ELOOP,
            "proc in the image is or goes through a symlink; it must be a real directory \
             (cairn mounts /proc there)",
        ),
        (
            "open_dir_beneath /mnt /var/data",
            libc::EXDEV,
            "/var/data in the image is or goes through a symlink; it must be a real directory \
             (volume mount points must exist in the image)",
        ),
        (
            "open_dir_beneath /mnt /tmp",
            libc::ENOTDIR,
            "/tmp in the image is not a directory (volume mount points must exist in the image)",
        ),
    ];
    for (step, errno, message) in cases {
        let (e, lines) = failing(step, *errno);
        assert_eq!((e.message.as_str(), e.errno), (*message, Some(*errno)));
        assert!(lines.last().is_some_and(|l| l.starts_with(step)));
    }
}
