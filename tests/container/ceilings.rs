//! Sandbox ceilings: an untrusted container config cannot pick its own
//! limits. Asking for more than the sandbox allows is refused before
//! anything runs, naming the file, line, key and ceiling; asking for
//! nothing gets the ceiling. Volume owners are checked like the
//! container's own ids.

use super::*;

/// The first line of a probe's `extra` keys (see `probe`).
const EXTRA_LINE: usize = 8;

/// A limit of the instance's leaf cgroup in the hierarchy that has
/// `file` (v1 and v2 names are both given), read while it runs.
fn leaf_limit(fx: &Fixture, files: &[&str]) -> String {
    for leaf in cgroup_leaves(&fx.cgroup.name) {
        for f in files {
            if let Ok(v) = fs::read_to_string(leaf.join(f)) {
                return v.trim().to_string();
            }
        }
    }
    panic!("no instance cgroup with {files:?}");
}

#[test]
fn limits_above_the_sandbox_ceilings_are_refused() {
    let mut fx = fixture!();
    let before = host_mounts();
    let sandbox = fx.set.s("sandboxes/box.yaml");
    // The default sandbox: what an image asked for in the wild.
    let cases = [
        (
            "pids",
            "pids-limit: 4194304\n",
            EXTRA_LINE,
            "pids-limit: 4194304 is above the sandbox's max-pids-limit 4096",
        ),
        (
            "fileno",
            "fileno-limit: 1048576\n",
            EXTRA_LINE,
            "fileno-limit: 1048576 is above the sandbox's max-fileno-limit 65536",
        ),
        (
            "killt",
            "kill-timeout: 86400\n",
            EXTRA_LINE,
            "kill-timeout: 86400 is above the sandbox's max-kill-timeout 60",
        ),
        (
            "restartt",
            "restart-timeout: 0\nnormal-exit-codes: [0]\n",
            EXTRA_LINE,
            "restart-timeout: 0 is below the sandbox's min-restart-timeout 1",
        ),
        (
            "tmpfs",
            "volumes:\n  /tmp: !Tmpfs {size: 15Ei}\n",
            EXTRA_LINE + 1,
            "volumes./tmp.size: 15Ei is above the sandbox's max-tmpfs-size 1Gi",
        ),
    ];
    for (name, extra, line, msg) in cases {
        fx.command(name, &probe(extra));
        let out = fx.run(name, &[&format!("echo {STARTED}")]);
        let cfg = fx.set.s(&format!("images/bb/config/{name}.yaml"));
        let at = format!("{cfg}:{line}: {msg} ({sandbox}");
        assert_refused(&out, 1, &[&at], &before);
    }
    // A ceiling the sandbox sets is named the same way; at the ceiling is
    // fine.
    fx.sandbox(
        "allow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
         max-memory-limit: 64Mi\nmax_pids_limit: 100\n",
    );
    fx.command("mem", &probe("memory-limit: 1Gi\npids-limit: 101\n"));
    let out = fx.run("mem", &[&format!("echo {STARTED}")]);
    let cfg = fx.set.s("images/bb/config/mem.yaml");
    assert_refused(
        &out,
        1,
        &[
            &format!(
                "{cfg}:{EXTRA_LINE}: memory-limit: 1Gi is above the sandbox's max-memory-limit 64Mi ({sandbox})"
            ),
            &format!(
                "{cfg}:{}: pids-limit: 101 is above the sandbox's max-pids-limit 100 ({sandbox})",
                EXTRA_LINE + 1
            ),
        ],
        &before,
    );
    fx.command("atmax", &probe("memory-limit: 64Mi\npids-limit: 100\n"));
    let out = fx.run("atmax", &[&format!("echo {STARTED}")]);
    assert!(ok(&out).contains(STARTED));
}

#[test]
fn unset_limits_get_the_sandbox_ceiling() {
    let mut fx = fixture!();
    // The default sandbox: no pids-limit gives its max-pids-limit.
    fx.command("dflt", &probe("interactive: true\n"));
    let mut run = fx.spawn("dflt", &["echo ready; read x"]);
    run.wait_for("ready");
    let pids = leaf_limit(&fx, &["pids.max"]);
    run.write_stdin(b"\n");
    let (status, _, err, _) = run.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(pids, "4096");

    // A sandbox with its own ceilings: unset limits get them, and defaults
    // above a ceiling (fileno 1024, tmpfs 100Mi) come down to it.
    fx.sandbox(
        "allow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
         max-pids-limit: 64\nmax-memory-limit: 48Mi\nmax-fileno-limit: 512\n\
         max-tmpfs-size: 2Mi\n",
    );
    fx.command(
        "capped",
        &probe("interactive: true\nvolumes:\n  /tmp: !Tmpfs\n"),
    );
    let mut run = fx.spawn(
        "capped",
        &["echo nofile=$(ulimit -n); \
           head -c 4194304 /dev/zero > /tmp/big 2>/dev/null; echo tmp=$(wc -c < /tmp/big); \
           echo ready; read x"],
    );
    run.wait_for("ready");
    let pids = leaf_limit(&fx, &["pids.max"]);
    let memory = leaf_limit(&fx, &["memory.limit_in_bytes", "memory.max"]);
    run.write_stdin(b"\n");
    let (status, lines, err, _) = run.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(pids, "64");
    assert_eq!(memory, (48u64 << 20).to_string());
    let v = kv(&lines.join("\n"));
    assert_eq!(v["nofile"], "512", "{lines:?}");
    assert_eq!(v["tmp"], (2u64 << 20).to_string(), "{lines:?}");
}

#[test]
fn volume_owners_must_be_allowed_ids() {
    let mut fx = fixture!();
    let before = host_mounts();
    // A uid-1234 config asking for a root-owned, setuid/setgid, world-
    // writable host directory.
    fx.command(
        "rootdir",
        &probe("volumes:\n  /data: !Persistent {path: /data/rootdir, mkdir: true, user: 0, mode: 0o7777}\n"),
    );
    let out = fx.run("rootdir", &[&format!("echo {STARTED}")]);
    let cfg = fx.set.s("images/bb/config/rootdir.yaml");
    assert_refused(
        &out,
        1,
        &[
            &format!(
                "{cfg}:{}: volumes./data.user: 0 is not in the sandbox's allow-users [1000-1999]",
                EXTRA_LINE + 1
            ),
            &format!(
                "{cfg}:{}: volumes./data.mode: 0o7777 has the setuid/setgid bits",
                EXTRA_LINE + 1
            ),
        ],
        &before,
    );
    assert!(!fx.set.p("srv/data/rootdir").exists(), "the dir was made");
    // The same for a state dir, and for a group.
    fx.command(
        "rootstate",
        &probe("volumes:\n  /state: !Statedir {group: 0}\n"),
    );
    let out = fx.run("rootstate", &[&format!("echo {STARTED}")]);
    assert_refused(
        &out,
        1,
        &["volumes./state.group: 0 is not in the sandbox's allow-groups [1000-1999]"],
        &before,
    );
    // Without user and group, the directory belongs to the container's own
    // user and group, not to root.
    let out = fx.probe(
        "mine",
        "volumes:\n  /data: !Persistent {path: /data/mine, mkdir: true, mode: 0o700}\n",
        "touch /data/f; echo rc=$?",
    );
    assert_eq!(kv(&ok(&out))["rc"], "0");
    use std::os::unix::fs::MetadataExt;
    let made = fs::metadata(fx.set.p("srv/data/mine")).unwrap();
    assert_eq!((made.uid(), made.gid()), (UID, GID));
    assert_eq!(made.mode() & 0o7777, 0o700);
}
