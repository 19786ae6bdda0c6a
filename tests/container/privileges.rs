//! Who the workload is and what it may do: ids, user namespaces,
//! capabilities, no_new_privs, setuid and file-capability binaries.

use super::*;

#[test]
fn runs_as_configured_uid_and_gid() {
    let mut fx = fixture!();
    let out = fx.probe(
        "ids",
        "additional-groups: [1300]\n",
        "id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
    );
    let text = ok(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("1234"), "{text}");
    assert_eq!(lines.next(), Some("1235"), "{text}");
    assert_eq!(
        field(&text, "Uid"),
        Some("1234\t1234\t1234\t1234"),
        "{text}"
    );
    assert_eq!(
        field(&text, "Gid"),
        Some("1235\t1235\t1235\t1235"),
        "{text}"
    );
    assert_eq!(field(&text, "Groups"), Some("1300"), "{text}");
}

#[test]
fn user_namespace_maps_ids() {
    let mut fx = fixture!();
    fx.sandbox(
        "allow-users: [0-1]\nallow-groups: [0-1]\n\
         uid-map: [{inside: 0, outside: 100000, count: 2}]\n\
         gid-map: [{inside: 0, outside: 200000, count: 2}]\n",
    );
    // A volume dir created for inside id 1 is owned by its host ids.
    fx.command(
        "userns",
        &probe(
            "interactive: true\nvolumes:\n  /data: !Persistent {path: /data/u, mkdir: true, \
             mode: 0o700, user: 1, group: 1}\n",
        )
        .replace("user-id: 1234", "user-id: 1")
        .replace("group-id: 1235", "group-id: 1"),
    );
    let mut run = fx.spawn(
        "userns",
        &[
            "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; touch /data/f; \
           echo ready; read x",
        ],
    );
    run.wait_for("ready");
    // From the host: the workload runs as the mapped ids, not as 1 or 0.
    let mut workload = Vec::new();
    for pid in descendants(run.pid()) {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if field(&status, "Uid") != Some("0\t0\t0\t0") {
            workload.push(status);
        }
    }
    run.write_stdin(b"\n");
    let (status, lines, err, _) = run.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(workload.len(), 1, "non-root processes: {workload:?}");
    assert_eq!(
        field(&workload[0], "Uid"),
        Some("100001\t100001\t100001\t100001")
    );
    assert_eq!(
        field(&workload[0], "Gid"),
        Some("200001\t200001\t200001\t200001")
    );
    let words: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(words[0], ["1"], "{lines:?}");
    assert_eq!(words[1], ["1"], "{lines:?}");
    assert_eq!(words[2], ["0", "100000", "2"], "{lines:?}");
    assert_eq!(words[3], ["0", "200000", "2"], "{lines:?}");
    fx.assert_cleaned_up();
    use std::os::unix::fs::MetadataExt;
    for p in ["srv/data/u", "srv/data/u/f"] {
        let m = fs::metadata(fx.set.p(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (100_001, 200_001), "{p}");
    }

    // uid 0 inside the user namespace: still no capabilities after exec,
    // in any set.
    fx.command(
        "usernsroot",
        &probe("")
            .replace("user-id: 1234", "user-id: 0")
            .replace("group-id: 1235", "group-id: 0"),
    );
    let out = fx.run("usernsroot", &["cat /proc/$$/status"]);
    let text = ok(&out);
    assert_eq!(field(&text, "Uid"), Some("0\t0\t0\t0"), "{text}");
    for (k, v) in caps(&text) {
        assert_eq!(v, "0000000000000000", "{k}:\n{text}");
    }
    assert_eq!(field(&text, "NoNewPrivs"), Some("1"), "{text}");
}

#[test]
fn setuid_binary_does_not_elevate() {
    let mut fx = fixture!();
    // busybox drops privileges by itself unless /etc/busybox.conf (owned
    // by root, not writable by others) says an applet keeps them: this one
    // makes `id` keep euid 0 when the binary is setuid root.
    let img = fx.set.p("images/bb");
    let suid = img.join("bin/busybox-suid");
    fs::copy(&fx.busybox, &suid).unwrap();
    chown(&suid, 0, 0);
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    fx.set
        .write("images/bb/etc/busybox.conf", "[SUID]\nid = ssx 0.0\n");
    fs::set_permissions(
        img.join("etc/busybox.conf"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    // Control: outside cairn (a plain chroot, no mounts), the binary does
    // elevate, so the check below is not vacuous.
    let control = Command::new("chroot")
        .arg(format!("--userspec={UID}:{GID}"))
        .arg(&img)
        .args(["/bin/busybox-suid", "id", "-u"])
        .output();
    match control {
        Ok(o) if o.status.success() => assert_eq!(
            stdout(&o).trim(),
            "0",
            "control: a setuid-root busybox must elevate outside cairn"
        ),
        _ => eprintln!("note: chroot control not run (no usable chroot(1))"),
    }

    let out = fx.probe(
        "suid",
        "",
        "echo euid=$(busybox-suid id -u); echo egid=$(busybox-suid id -g); busybox-suid id",
    );
    let text = ok(&out);
    let v = kv(&text);
    assert_eq!(v["euid"], UID.to_string(), "{text}");
    assert_eq!(v["egid"], GID.to_string(), "{text}");
    assert!(!text.contains("euid=0"), "{text}");
}

#[test]
fn capabilities_are_all_dropped() {
    let mut fx = fixture!();
    let out = fx.probe(
        "caps",
        "",
        "cat /proc/$$/status; echo ==child; cat /proc/self/status; echo ==hostname; \
         hostname evil-name 2>&1; echo rc=$?",
    );
    let text = ok(&out);
    let (shell, child) = text.split_once("==child").unwrap();
    for status in [shell, child] {
        for (k, v) in caps(status) {
            assert_eq!(v, "0000000000000000", "{k}:\n{status}");
        }
    }
    // CAP_SYS_ADMIN is gone: not even the container's own hostname.
    assert!(!text.ends_with("rc=0\n"), "{text}");
}

#[test]
fn allowed_capability_is_kept_exactly() {
    let mut fx = fixture!();
    fx.sandbox(
        "allow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
         allow-capabilities: [CAP_NET_BIND_SERVICE]\n",
    );
    let out = fx.probe(
        "netbind",
        "capabilities: [CAP_NET_BIND_SERVICE]\n",
        "cat /proc/$$/status; echo ==child; cat /proc/self/status",
    );
    let text = ok(&out);
    let (shell, child) = text.split_once("==child").unwrap();
    // Bit 10 is CAP_NET_BIND_SERVICE; ambient keeps it across exec.
    for status in [shell, child] {
        let c = caps(status);
        for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(c[k], "0000000000000400", "{k}:\n{status}");
        }
        assert_eq!(field(status, "Uid"), Some("1234\t1234\t1234\t1234"));
    }
}

#[test]
fn capability_not_allowed_by_sandbox_is_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    fx.command("greedy", &probe("capabilities: [CAP_NET_BIND_SERVICE]\n"));
    let out = fx.run("greedy", &[&format!("echo {STARTED}")]);
    let cfg = fx.set.s("images/bb/config/greedy.yaml");
    assert_refused(
        &out,
        1,
        &[
            &cfg,
            "CAP_NET_BIND_SERVICE is not in sandbox \"box\"'s allow-capabilities",
        ],
        &before,
    );
}

#[test]
fn no_new_privs_is_set() {
    let mut fx = fixture!();
    let out = fx.probe("nnp", "", "cat /proc/$$/status");
    let text = ok(&out);
    assert_eq!(field(&text, "NoNewPrivs"), Some("1"), "{text}");
}

/// uid 0 without a user namespace is still powerless: no capabilities
/// after exec (the bounding set is empty), and the knot (also uid 0) is
/// out of reach because it is not dumpable, not because of a uid mismatch.
#[test]
fn root_in_the_container_has_no_privileges() {
    let mut fx = fixture!();
    fx.sandbox("allow-users: [0, 1000-1999]\nallow-groups: [0, 1000-1999]\n");
    fx.command(
        "root",
        &probe("")
            .replace("user-id: 1234", "user-id: 0")
            .replace("group-id: 1235", "group-id: 0"),
    );
    let out = fx.run(
        "root",
        &[
            "echo uid=$(id -u); cat /proc/$$/status; echo ==child; cat /proc/self/status; echo ==; \
         for f in exe root cwd; do echo \"$f=$(ls /proc/1/$f/ 2>&1 >/dev/null)\"; done; \
         for f in /proc/1/fd/*; do echo \"fd${f##*/}=$(cat $f 2>&1 >/dev/null)\"; done; \
         echo \"environ=$(cat /proc/1/environ 2>&1 >/dev/null)\"; \
         echo \"mem=$(head -c 1 /proc/1/mem 2>&1 >/dev/null)\"; \
         v=$(cat /proc/sys/vm/stat_interval); \
         echo \"sysctl=$({ echo $v > /proc/sys/vm/stat_interval; } 2>&1)\"; \
         echo \"rootfs=$(touch /x 2>&1)\"; \
         echo \"mount=$(mount -t tmpfs none /tmp 2>&1)\"",
        ],
    );
    let text = ok(&out);
    let (shell, rest) = text.split_once("==child").unwrap();
    let (child, results) = rest.split_once("==\n").unwrap();
    assert_eq!(kv(shell)["uid"], "0", "{text}");
    for status in [shell, child] {
        assert_eq!(field(status, "Uid"), Some("0\t0\t0\t0"), "{status}");
        for (k, v) in caps(status) {
            assert_eq!(v, "0000000000000000", "{k}:\n{status}");
        }
        assert_eq!(field(status, "NoNewPrivs"), Some("1"), "{status}");
    }
    let v = kv(results);
    for k in ["exe", "root", "cwd", "environ", "mem"] {
        assert!(
            v[k].contains("Permission denied"),
            "/proc/1/{k} is reachable by uid 0:\n{text}"
        );
    }
    // The fd numbers of pid 1 can be listed by uid 0 (the directory is
    // root's), but none of them can be opened.
    let fds: Vec<_> = v.iter().filter(|(k, _)| k.starts_with("fd")).collect();
    assert!(!fds.is_empty(), "{text}");
    for (k, msg) in fds {
        assert!(
            msg.contains("Permission denied"),
            "/proc/1/fd/{k} opens:\n{text}"
        );
    }
    assert!(v["sysctl"].contains("Read-only file system"), "{text}");
    assert!(v["rootfs"].contains("Read-only file system"), "{text}");
    assert!(v["mount"].contains("permission denied"), "{text}");
}

/// `security.capability` of a binary: `caps` permitted and effective
/// (vfs_cap_data revision 2, as setcap(8) writes it).
fn set_file_caps(path: &Path, caps: u32) {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes()); // rev 2, effective
    v.extend_from_slice(&caps.to_le_bytes()); // permitted, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted, high word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, high word
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let name = c"security.capability";
    // SAFETY: setxattr(2) with valid C strings and a buffer of v.len() bytes.
    let r = unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
}

#[test]
fn file_capabilities_in_the_image_are_ignored() {
    let mut fx = fixture!();
    let bin = fx.set.p("images/bb/bin/busybox-cap");
    fs::copy(&fx.busybox, &bin).unwrap();
    set_file_caps(&bin, 1 << 10); // CAP_NET_BIND_SERVICE
    // Control: outside cairn a uid-1234 process gains the capability.
    let control = Command::new("setpriv")
        .args([
            &format!("--reuid={UID}"),
            &format!("--regid={GID}"),
            "--clear-groups",
        ])
        .arg(&bin)
        .args(["grep", "CapEff", "/proc/self/status"])
        .output();
    match control {
        Ok(o) if o.status.success() => assert_eq!(
            field(&stdout(&o), "CapEff"),
            Some("0000000000000400"),
            "control: file capabilities must work outside cairn"
        ),
        _ => eprintln!("note: setpriv control not run"),
    }
    let out = fx.probe("filecaps", "", "busybox-cap cat /proc/self/status");
    let text = ok(&out);
    for (k, v) in caps(&text) {
        assert_eq!(v, "0000000000000000", "{k}:\n{text}");
    }
}
