//! /etc/hosts and /etc/resolv.conf: written to the state dir, then bound
//! read-only over the image's file when that is a regular file.

use super::*;

fn hosts(copy: bool, lines: &[&str], public: bool, mount: Option<bool>) -> EtcFile {
    EtcFile {
        copy_from: copy.then(|| "/etc/hosts".into()),
        extra_lines: lines.iter().map(|l| l.to_string()).collect(),
        public_hostname: public,
        mount,
    }
}

fn etc_calls(k: &Fake, name: &str, f: &EtcFile) -> (Result<()>, Vec<String>) {
    let r = etc_file(k, &node("/mnt"), &node("state"), name, f);
    (r, k.lines())
}

const WRITE: &str = "replace_file state hosts 644 \"127.0.0.1 localhost\\n10.0.0.5 db\\n\"";

#[test]
fn nothing_asked_for_is_neither_written_nor_mounted() {
    for mount in [None, Some(true), Some(false)] {
        let (r, lines) = etc_calls(&fake(), "hosts", &hosts(false, &[], false, mount));
        assert_eq!((r, lines), (Ok(()), vec![]));
    }
}

#[test]
fn the_file_is_written_then_bound_read_only_nosuid_nodev_noexec_over_the_images() {
    let (r, lines) = etc_calls(
        &fake(),
        "hosts",
        &hosts(true, &["10.0.0.5 db"], false, None),
    );
    r.unwrap();
    assert_eq!(
        lines,
        [
            "read_host_file /etc/hosts 1048576",
            WRITE,
            "openat2 /mnt etc/hosts O_PATH|O_NOFOLLOW 0 beneath-no-symlinks",
            "is_regular /mnt/etc/hosts",
            "openat2 state hosts O_PATH|O_NOFOLLOW 0 beneath-no-symlinks",
            "clone_tree state/hosts one",
            "set_attrs clone(state/hosts) set=rdonly,nosuid,nodev,noexec clear=- one",
            "attach clone(state/hosts) -> /mnt/etc/hosts",
        ]
    );
}

#[test]
fn public_hostname_adds_the_hosts_name_and_address() {
    let (r, lines) = etc_calls(&fake(), "hosts", &hosts(false, &["a b"], true, None));
    r.unwrap();
    assert_eq!(
        lines[..2],
        [
            "public_host",
            "replace_file state hosts 644 \"a b\\n192.0.2.7 box\\n\"",
        ]
    );
}

#[test]
fn mount_false_writes_the_file_and_mounts_nothing() {
    let (r, lines) = etc_calls(
        &fake(),
        "hosts",
        &hosts(true, &["10.0.0.5 db"], false, Some(false)),
    );
    r.unwrap();
    assert_eq!(lines, ["read_host_file /etc/hosts 1048576", WRITE]);
}

#[test]
fn an_image_file_that_is_not_regular_is_left_alone_unless_mount_is_true() {
    let missing = |k: &Fake| {
        k.fail_when(|l| l.starts_with("openat2 /mnt etc/hosts"), libc::ENOENT);
    };
    let symlink = |k: &Fake| {
        k.fail_when(|l| l.starts_with("openat2 /mnt etc/hosts"), libc::ELOOP);
    };
    let special = |k: &Fake| {
        k.special("/mnt/etc/hosts");
    };
    let unreadable = |k: &Fake| {
        k.fail_when(|l| l.starts_with("is_regular"), libc::EIO);
    };
    let cases: [&dyn Fn(&Fake); 4] = [&missing, &symlink, &special, &unreadable];
    for (i, case) in cases.iter().enumerate() {
        let k = fake();
        case(&k);
        let (r, lines) = etc_calls(&k, "hosts", &hosts(true, &["10.0.0.5 db"], false, None));
        assert_eq!(r, Ok(()), "case {i}");
        assert_eq!(lines[1], WRITE, "case {i}");
        assert!(!lines.iter().any(|l| l.starts_with("attach")), "case {i}");

        let k = fake();
        case(&k);
        let f = hosts(true, &["10.0.0.5 db"], false, Some(true));
        let (r, lines) = etc_calls(&k, "hosts", &f);
        assert_eq!(
            r.map_err(|e| e.message),
            Err(
                "/etc/hosts in the image is not a regular file (missing, a symlink or special), \
                 so it cannot be replaced"
                    .to_string()
            ),
            "case {i}"
        );
        assert!(!lines.iter().any(|l| l.starts_with("attach")), "case {i}");
    }
}

#[test]
fn a_host_file_that_cannot_be_read_stops_the_start_before_anything_is_written() {
    let k = Fake::new();
    let (r, lines) = etc_calls(&k, "hosts", &hosts(true, &[], false, None));
    let e = r.unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "sandbox hosts-file /etc/hosts: cannot open: {}",
            says(libc::ENOENT)
        )
    );
    assert_eq!(lines, ["read_host_file /etc/hosts 1048576"]);

    let k = Fake::new();
    let mut f = hosts(false, &[], false, None);
    f.copy_from = Some("/etc/resolv.conf".into());
    let (r, _) = etc_calls(&k, "resolv.conf", &f);
    assert!(
        r.unwrap_err()
            .message
            .starts_with("sandbox resolv-conf /etc/resolv.conf: ")
    );
}

#[test]
fn a_failed_write_or_bind_names_the_file_and_keeps_the_errno() {
    let f = hosts(true, &["10.0.0.5 db"], false, None);
    let cases = [
        (
            "replace_file",
            format!("write state/hosts: openat2 hosts: {}", says(libc::EACCES)),
        ),
        (
            "openat2 state",
            format!("state/hosts: openat2 hosts: {}", says(libc::EACCES)),
        ),
        (
            "clone_tree",
            format!("/etc/hosts: open_tree hosts: {}", says(libc::EACCES)),
        ),
        (
            "set_attrs",
            format!("/etc/hosts: mount_setattr hosts: {}", says(libc::EACCES)),
        ),
        (
            "attach",
            format!("mount /etc/hosts: move_mount hosts: {}", says(libc::EACCES)),
        ),
    ];
    for (step, message) in cases {
        let k = fake();
        k.fail_when(move |l| l.starts_with(step), libc::EACCES);
        let (r, lines) = etc_calls(&k, "hosts", &f);
        let e = r.unwrap_err();
        assert_eq!((e.message, e.errno), (message, Some(libc::EACCES)));
        // Nothing after the step that failed.
        assert!(
            lines.last().is_some_and(|l| l.starts_with(step)),
            "{lines:#?}"
        );
    }
}
