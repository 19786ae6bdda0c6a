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
