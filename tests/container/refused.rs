//! Hostile images and configs: refused before anything runs, with an
//! error naming the problem, and nothing mounted on the host.

use super::*;

#[test]
fn volume_target_through_a_symlink_is_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    symlink("/etc", fx.set.p("images/bb/evil")).unwrap();
    // Even a link that stays inside the image is refused: targets must be
    // real directories.
    symlink("tmp", fx.set.p("images/bb/inner")).unwrap();
    for (name, target) in [
        ("evil", "/evil"),
        ("evilsub", "/evil/ssl"),
        ("inner", "/inner"),
    ] {
        fx.command(
            name,
            &probe(&format!("volumes:\n  {target}: !Tmpfs {{size: 1Mi}}\n")),
        );
        let out = fx.run(name, &[&format!("echo {STARTED}")]);
        let instance = format!("box/cmd.{name}.");
        assert_refused(&out, 125, &[&instance, &target[1..], "symlink"], &before);
    }
}

#[test]
fn volume_target_that_is_a_file_is_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    fx.command(
        "onfile",
        &probe("volumes:\n  /bin/busybox: !Tmpfs {size: 1Mi}\n"),
    );
    let out = fx.run("onfile", &[&format!("echo {STARTED}")]);
    assert_refused(&out, 125, &["bin/busybox", "not a directory"], &before);
}

#[test]
fn volume_on_kernel_paths_is_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    for (i, target) in ["/", "/proc", "/proc/sys", "/sys/fs", "/dev", "/dev/shm"]
        .iter()
        .enumerate()
    {
        let name = format!("kern{i}");
        fx.command(
            &name,
            &probe(&format!("volumes:\n  {target}: !Tmpfs {{size: 1Mi}}\n")),
        );
        let out = fx.run(&name, &[&format!("echo {STARTED}")]);
        let cfg = fx.set.s(&format!("images/bb/config/{name}.yaml"));
        let msg = format!("a volume may not be mounted on {target}");
        assert_refused(&out, 1, &[&cfg, &msg], &before);
    }
}

#[test]
fn host_symlink_under_a_writable_path_is_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    fs::create_dir_all(fx.set.p("outside")).unwrap();
    symlink("/etc", fx.set.p("srv/data/link")).unwrap();
    symlink(fx.set.p("outside"), fx.set.p("srv/data/out")).unwrap();
    symlink("/etc", fx.set.p("srv/ro/link")).unwrap();
    let cases = [
        ("plink", "/data: !Persistent /data/link", "data/link"),
        (
            "pmkdir",
            "/data: !Persistent {path: /data/out/made, mkdir: true, mode: 0o755, user: 1234, group: 1235}",
            "data/out/made",
        ),
        ("rlink", "/ro: !Readonly /ro/link", "ro/link"),
    ];
    for (name, volume, needle) in cases {
        fx.command(name, &probe(&format!("volumes:\n  {volume}\n")));
        let out = fx.run(name, &[&format!("echo {STARTED}")]);
        let instance = format!("box/cmd.{name}.");
        assert_refused(&out, 125, &[&instance, needle], &before);
    }
    // Nothing was created through the link.
    assert_eq!(fs::read_dir(fx.set.p("outside")).unwrap().count(), 0);
}

#[test]
fn image_that_is_a_symlink_is_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    symlink("/", fx.set.p("images/evil")).unwrap();
    symlink("bb", fx.set.p("images/alias")).unwrap();
    for image in ["evil", "alias"] {
        let name = format!("img{image}");
        fx.command_in(&name, image, &probe(""));
        let out = fx.run(&name, &[&format!("echo {STARTED}")]);
        assert_refused(&out, 1, &[image, "symlink"], &before);
    }
}

#[test]
fn uid_or_gid_outside_the_allowed_range_is_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    fx.command(
        "baduid",
        &probe("").replace("user-id: 1234", "user-id: 5000"),
    );
    let out = fx.run("baduid", &[&format!("echo {STARTED}")]);
    let cfg = fx.set.s("images/bb/config/baduid.yaml");
    assert_refused(
        &out,
        1,
        &[
            &cfg,
            "user-id: 5000 is not in the sandbox's allow-users [1000-1999]",
        ],
        &before,
    );
    fx.command(
        "badgid",
        &probe("").replace("group-id: 1235", "group-id: 0"),
    );
    let out = fx.run("badgid", &[&format!("echo {STARTED}")]);
    let cfg = fx.set.s("images/bb/config/badgid.yaml");
    assert_refused(
        &out,
        1,
        &[&cfg, "group-id: 0 is not in the sandbox's allow-groups"],
        &before,
    );
}

#[test]
fn dev_and_proc_must_be_real_directories() {
    let mut fx = fixture!();
    let before = host_mounts();
    fx.command("devproc", &probe(""));
    let img = fx.set.p("images/bb");
    let host_dir = fx.set.p("host-dir");
    fs::create_dir_all(&host_dir).unwrap();
    type Make = fn(&Path, &Path);
    let cases: [(&str, Make); 5] = [
        ("dev", |p, host| symlink(host, p).unwrap()),
        ("dev", |p, _| fs::write(p, "").unwrap()),
        ("proc", |p, _| symlink("/proc", p).unwrap()),
        ("proc", |p, host| symlink(host, p).unwrap()),
        ("proc", |p, _| fs::write(p, "").unwrap()),
    ];
    for (name, make) in cases {
        let path = img.join(name);
        fs::remove_dir(&path).unwrap();
        make(&path, &host_dir);
        let out = fx.run("devproc", &[&format!("echo {STARTED}")]);
        let what = format!("{name} in the image");
        assert_refused(&out, 125, &["box/cmd.devproc.", &what], &before);
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert_eq!(fs::read_dir(&host_dir).unwrap().count(), 0, "{name}");
    }
    // Restored, the same image runs.
    let out = fx.run("devproc", &[&format!("echo {STARTED}")]);
    assert!(ok(&out).contains(STARTED));
}

#[test]
fn etc_hosts_symlink_in_image_is_not_followed() {
    let mut fx = fixture!();
    let before = host_mounts();
    let target_hosts = fx.set.write("host-target/hosts", "ORIGINAL hosts\n");
    let target_resolv = fx.set.write("host-target/resolv.conf", "ORIGINAL resolv\n");
    let img = fx.set.p("images/bb");
    fs::remove_file(img.join("etc/hosts")).unwrap();
    fs::remove_file(img.join("etc/resolv.conf")).unwrap();
    symlink(&target_hosts, img.join("etc/hosts")).unwrap();
    symlink(&target_resolv, img.join("etc/resolv.conf")).unwrap();

    // Default settings: the symlinks are left alone, nothing is mounted
    // over them, and they resolve inside the container (to nothing).
    let out = fx.probe(
        "etclink",
        "",
        "grep -c ' /etc/' /proc/self/mountinfo; cat /etc/hosts /etc/resolv.conf 2>&1; echo end",
    );
    let text = ok(&out);
    assert!(
        text.starts_with("0\n"),
        "something is mounted on /etc:\n{text}"
    );
    assert!(!text.contains("ORIGINAL"), "{text}");
    assert_eq!(
        fs::read_to_string(&target_hosts).unwrap(),
        "ORIGINAL hosts\n"
    );
    assert_eq!(
        fs::read_to_string(&target_resolv).unwrap(),
        "ORIGINAL resolv\n"
    );
    assert!(
        img.join("etc/hosts")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );

    // Asking for the mount with a symlink there is an error, not a follow.
    fx.command(
        "etcforce",
        &probe("hosts-file: {mount: true}\nresolv-conf: {mount: false}\n"),
    );
    let out = fx.run("etcforce", &[&format!("echo {STARTED}")]);
    assert_refused(
        &out,
        125,
        &[
            "box/cmd.etcforce.",
            "/etc/hosts in the image is not a regular file",
        ],
        &before,
    );
    assert_eq!(
        fs::read_to_string(&target_hosts).unwrap(),
        "ORIGINAL hosts\n"
    );

    // /etc itself a symlink to a host dir: not followed either.
    fs::rename(img.join("etc"), img.join("etc.real")).unwrap();
    symlink(fx.set.p("host-target"), img.join("etc")).unwrap();
    let out = fx.probe(
        "etcdir",
        "",
        "grep -c ' /etc/' /proc/self/mountinfo; echo end",
    );
    assert!(ok(&out).starts_with("0\n"), "{}", stdout(&out));
    assert_eq!(
        fs::read_to_string(&target_hosts).unwrap(),
        "ORIGINAL hosts\n"
    );
    assert_host_mounts_unchanged(&before);
}
