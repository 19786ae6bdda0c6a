//! The Debian package (scripts/build-deb) upgrades a running tree in place:
//! two versions are built from our binary (the second patched to another
//! build id), unpacked with `dpkg-deb` (never installed on the host), the
//! new binary renamed over the installed path as dpkg does, and the new
//! version's maintainer scripts run as dpkg would run them on an upgrade
//! (old `prerm upgrade NEW`, then new `postinst configure OLD`). The tree
//! then runs the new build with the same pid and the same workloads.

use super::*;

/// `scripts/build-deb --binary BIN --version V --out DIR`; the .deb's path.
fn build_deb(bin: &Path, version: &str, out: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-deb");
    let o = upg_output(
        Command::new(script)
            .arg("--binary")
            .arg(bin)
            .args(["--version", version])
            .arg("--out")
            .arg(out),
    );
    assert!(
        o.status.success(),
        "build-deb: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// `dpkg-deb ARGS`, which must succeed.
fn dpkg_deb(args: &[&std::ffi::OsStr]) {
    let o = upg_output(Command::new("dpkg-deb").args(args));
    assert!(o.status.success(), "dpkg-deb {args:?}: {o:?}");
}

/// Run a maintainer script as dpkg would, in test mode (no systemd, our
/// binary and master.yaml).
fn maintainer(w: &World, script: &Path, args: &[&str]) -> std::process::Output {
    upg_output(
        Command::new(script)
            .args(args)
            .env("CAIRN_PACKAGE_TEST", "1")
            .env("CAIRN_BIN", &w.exe)
            .env("CAIRN_MASTER", w.master()),
    )
}

#[test]
fn upgrading_the_package_upgrades_the_running_tree_in_place() {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    require!(
        have("dpkg-deb") && have("strip"),
        "dpkg-deb and strip (binutils) are needed"
    );
    let mut w = world!();
    w.sleepers("sleeper", 3);
    let dir = w.set.p("debs");
    fs::create_dir_all(&dir).expect("mkdir debs");
    // The second version: the same binary with another build id.
    let old_id = {
        let o = upg_output(Command::new(&w.exe).arg("--version"));
        let t = String::from_utf8_lossy(&o.stdout).into_owned();
        t.split_once('(')
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(id, _)| id.to_string())
            .unwrap_or_else(|| panic!("no build id in {t:?}"))
    };
    let new_id: String = old_id.chars().rev().collect();
    assert_ne!(new_id, old_id, "a palindromic build id");
    let v2_bin = w.set.p("cairn-v2");
    assert!(upg_patched_copy(&w.exe, &v2_bin, old_id.as_bytes(), new_id.as_bytes()) > 0);
    let v1 = build_deb(&w.exe, "0.1.0", &dir);
    let v2 = build_deb(&v2_bin, "0.1.1", &dir);

    // Version 1 installed: its binary at the installed path, its tree up.
    let root1 = w.set.p("root1");
    dpkg_deb(&["-x".as_ref(), v1.as_os_str(), root1.as_os_str()]);
    let installed = root1.join("usr/bin/cairn");
    fs::copy(&installed, &w.exe).expect("install v1");
    let tree = w.start_tree();
    let before = w.wait_running(3, START);
    assert!(
        before.version.contains(&format!("({old_id})")),
        "{}",
        before.version
    );

    // The upgrade, as dpkg runs it.
    let ctl1 = w.set.p("ctl1");
    let ctl2 = w.set.p("ctl2");
    dpkg_deb(&["-e".as_ref(), v1.as_os_str(), ctl1.as_os_str()]);
    dpkg_deb(&["-e".as_ref(), v2.as_os_str(), ctl2.as_os_str()]);
    let o = maintainer(&w, &ctl1.join("prerm"), &["upgrade", "0.1.1"]);
    assert!(o.status.success(), "prerm: {o:?}");
    assert_eq!(
        w.ps().expect("ps").pids(),
        before.pids(),
        "prerm stopped something"
    );
    let root2 = w.set.p("root2");
    dpkg_deb(&["-x".as_ref(), v2.as_os_str(), root2.as_os_str()]);
    let staged = w.set.p("bin/cairn.dpkg-new");
    fs::copy(root2.join("usr/bin/cairn"), &staged).expect("unpack v2");
    fs::rename(&staged, &w.exe).expect("rename over the installed path");
    let o = maintainer(&w, &ctl2.join("postinst"), &["configure", "0.1.0"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "postinst: {o:?}");
    assert!(out.contains("upgrading the running tree in place"), "{out}");

    let after = w.ps().expect("ps");
    assert!(
        after.version.contains(&format!("({new_id})")),
        "{}",
        after.version
    );
    assert_eq!(after.tree_pid, tree);
    assert_eq!(after.upgrades, 1);
    assert_eq!(after.pids(), before.pids(), "a workload restarted");
    for (name, i) in &after.inst {
        assert_eq!(i.restarts, 0, "{name} restarted");
    }

    // A first install (no old version) with no tree: nothing to upgrade,
    // nothing started (no systemd here), success.
    w.signal_tree(libc::SIGTERM);
    let mut child = w.tree.take().expect("the tree");
    child.wait().expect("wait for the tree");
    let o = maintainer(&w, &ctl2.join("postinst"), &["configure"]);
    assert!(o.status.success(), "postinst on a first install: {o:?}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("upgrading"));
}

/// The package's contents as the root of a container, cairn as its pid 1,
/// the way a container runtime runs `packaging/container/Containerfile`'s
/// entrypoint: a new mount, pid, UTS and IPC namespace, the root
/// pivoted into (the package unpacked with `dpkg-deb -x`, the C library
/// the binary needs, as a base image has it, busybox, configs and an
/// image), `/proc` of its own, `/dev` and `/sys` bound in. Its instances
/// start and log; `cairn ps` inside the namespace lists them; TERM stops
/// everything and the tree, pid 1, exits 0.
#[test]
fn the_package_runs_as_pid_1_of_a_container() {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    require!(
        have("dpkg-deb") && have("strip") && have("unshare") && have("nsenter") && have("ldd"),
        "dpkg-deb, strip, unshare, nsenter and ldd are needed"
    );
    let w = world!();
    let busybox = common::container_prereqs().expect("checked by world!");
    let dir = w.set.p("debs");
    fs::create_dir_all(&dir).expect("mkdir debs");
    let deb = build_deb(&w.exe, "0.1.0", &dir);
    let root = w.set.p("rootfs");
    dpkg_deb(&["-x".as_ref(), deb.as_os_str(), root.as_os_str()]);
    // What a base image gives: the C library the binary links (none for
    // the static build), a shell, /etc/hosts and /etc/resolv.conf.
    let ldd = upg_output(Command::new("ldd").arg(root.join("usr/bin/cairn")));
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|t| t.starts_with('/'))
    {
        let to = root.join(lib.trim_start_matches('/'));
        fs::create_dir_all(to.parent().expect("a dir")).expect("mkdir lib dir");
        fs::copy(lib, &to).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
    for d in [
        "bin", "proc", "dev", "sys", "run", "tmp", "var/log", "old", "srv",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir in the rootfs");
    }
    fs::copy(&busybox, root.join("bin/busybox")).expect("busybox");
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).expect("sh");
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").expect("hosts");
    fs::write(root.join("etc/resolv.conf"), "nameserver 127.0.0.1\n").expect("resolv.conf");
    common::copy_tree(&w.set.p("images"), &root.join("srv/images"));
    let master = root.join("etc/cairn/master.yaml");
    let skeleton = fs::read_to_string(&master).expect("the package's master.yaml");
    fs::write(
        &master,
        format!("{skeleton}cgroup-name: {}\n", w.cgroup.name),
    )
    .expect("master");
    fs::write(
        root.join("etc/cairn/sandboxes/box.yaml"),
        "image-dir: /srv/images\nallow-users: [1000]\nallow-groups: [1000]\n",
    )
    .expect("sandbox");
    fs::write(
        root.join("etc/cairn/processes/box.yaml"),
        "web:\n  image: bb\n  config: /config/web.yaml\n  instances: 2\n",
    )
    .expect("processes");
    fs::write(
        root.join("srv/images/bb/config/web.yaml"),
        format!(
            "kind: Daemon\nuser-id: {UID}\ngroup-id: {UID}\nexecutable: /bin/sh\n\
             arguments: [-c, 'echo up; exec sleep 1000']\nenviron: {{PATH: /bin}}\n\
             kill-timeout: 1\n"
        ),
    )
    .expect("container config");
    // The runtime's part, in the new namespaces.
    let enter = w.set.write(
        "enter.sh",
        "set -e\nR=$1\nmount --make-rprivate /\nmount --bind \"$R\" \"$R\"\n\
         mount -t proc proc \"$R/proc\"\nmount --rbind /dev \"$R/dev\"\n\
         mount --rbind /sys \"$R/sys\"\nmount -t tmpfs -o mode=0755 tmpfs \"$R/run\"\n\
         cd \"$R\"\npivot_root . old\n/bin/busybox umount -l /old\n\
         exec /usr/bin/cairn tree -c /etc/cairn/master.yaml --log-stderr\n",
    );
    let log = fs::File::create(w.set.p("pid1.log")).expect("pid1.log");
    let mut runtime = Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--fork",
            "--uts",
            "--ipc",
            "--kill-child",
            "sh",
        ])
        .arg(&enter)
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("unshare");
    let pid1_log = || fs::read_to_string(w.set.p("pid1.log")).unwrap_or_default();
    let stdio = root.join("var/log/cairn/stderr/box.log");
    let deadline = Instant::now() + START;
    while !fs::read_to_string(&stdio)
        .is_ok_and(|t| t.contains(" web.0 up") && t.contains(" web.1 up"))
    {
        assert!(
            Instant::now() < deadline,
            "the instances did not start; pid 1's log:\n{}",
            pid1_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The tree is pid 1 of its namespace.
    let tree = fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        runtime.id(),
        runtime.id()
    ))
    .expect("unshare's children")
    .split_whitespace()
    .next()
    .and_then(|p| p.parse::<i32>().ok())
    .expect("the tree");
    let status = fs::read_to_string(format!("/proc/{tree}/status")).expect("status");
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("NSpid");
    assert!(
        nspid.split_whitespace().last() == Some("1"),
        "NSpid:{nspid}"
    );
    // `cairn ps` where operators run it: in the tree's namespaces.
    let ps = upg_output(
        Command::new("nsenter")
            .args(["--target", &tree.to_string(), "--mount", "--pid", "--"])
            .args([
                "/usr/bin/cairn",
                "ps",
                "-c",
                "/etc/cairn/master.yaml",
                "--json",
            ]),
    );
    let ps: Value =
        serde_json::from_slice(&ps.stdout).unwrap_or_else(|e| panic!("ps --json: {e}: {ps:?}"));
    let running = ps["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter(|i| i["state"] == "running")
        .count();
    assert_eq!(running, 2, "{ps}");
    assert_eq!(ps["tree"]["pid"], 1, "{ps}");
    // TERM, as `podman stop` sends it: everything stops, pid 1 exits 0.
    kill(tree, libc::SIGTERM);
    let t0 = Instant::now();
    let code = loop {
        if let Some(st) = runtime.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t0.elapsed() < STEP,
            "pid 1 did not exit; log:\n{}",
            pid1_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}; log:\n{}", pid1_log());
    assert!(
        common::cgroup_root_dirs(&w.cgroup.name)
            .iter()
            .all(|d| common::cgroup_procs(d).is_empty())
    );
}
