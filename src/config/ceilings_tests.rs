use std::path::Path;

use super::*;
use crate::config::master::Master;
use crate::config::process::Processes;
use crate::config::sandbox::Sandbox;
use crate::config::validate::parse_and_validate;
use crate::spec::{InstanceSpec, MountKind, Which};

const SB: &str = "image-dir: /img\nallow-users: [1]\nallow-groups: [0]\n";
const SB_PATH: &str = "/etc/c/sandboxes/sb.yaml";
const CFG: &str = "/img/web/c.yaml";

fn master() -> Master {
    Master::parse(Path::new("/etc/c/master.yaml"), b"").unwrap()
}

fn sandbox(extra: &str) -> Result<Sandbox, String> {
    Sandbox::parse(
        &master(),
        Path::new(SB_PATH),
        format!("{SB}{extra}").as_bytes(),
    )
    .map_err(|e| e.to_string())
}

/// Validate a container (`executable`, `user-id`, then `extra` from line
/// 3) in a sandbox with `sb_extra`; on success, its resolved spec.
fn spec(sb_extra: &str, extra: &str) -> Result<InstanceSpec, String> {
    let s = sandbox(sb_extra)?;
    let procs = Processes::parse(
        "/etc/c/processes/sb.yaml",
        b"web:\n  image: web\n  config: /c.yaml\n",
    )
    .map_err(|e| e.to_string())?;
    let e = &procs.entries["web"];
    let text = format!("executable: /x\nuser-id: 1\n{extra}");
    let c = parse_and_validate(CFG, text.as_bytes(), &s, e).map_err(|e| e.to_string())?;
    InstanceSpec::resolve(&master(), &s, e, &c, CFG, Which::Daemon(0)).map_err(|e| e.to_string())
}

#[test]
fn defaults_of_a_sandbox_without_keys() {
    let c = sandbox("").unwrap().ceilings;
    assert_eq!(c, Ceilings::default());
    assert_eq!(c.max_memory_limit, None);
    assert_eq!(c.pids(), 4096);
    assert_eq!(c.fileno(), 65_536);
    assert_eq!(c.tmpfs(), 1 << 30);
    assert_eq!(c.kill_timeout(), 60.0);
    assert_eq!(c.restart_timeout(), 1.0);
}

#[test]
fn keys_in_both_spellings() {
    let c = sandbox(
        "max_memory_limit: 1Gi\nmax-pids-limit: 10\nmax_fileno_limit: 100\n\
         max-tmpfs-size: 1Mi\nmax_kill_timeout: 0.5\nmin_restart_timeout: 2\n",
    )
    .unwrap()
    .ceilings;
    assert_eq!(
        c,
        Ceilings {
            max_memory_limit: Some(1 << 30),
            max_pids_limit: Some(10),
            max_fileno_limit: Some(100),
            max_tmpfs_size: Some(1 << 20),
            max_kill_timeout: Some(0.5),
            min_restart_timeout: Some(2.0),
        }
    );
    // "No limit" written out is no ceiling.
    let c = sandbox("max-memory-limit: 0x7fffffffffffffff\n").unwrap();
    assert_eq!(c.ceilings.max_memory_limit, None);
}

#[test]
fn bad_values_in_the_sandbox() {
    for (extra, needle) in [
        (
            "max-pids-limit: 0\n",
            "4: max-pids-limit: 0 is below the minimum of 1",
        ),
        (
            "max-pids-limit: 4194305\n",
            "larger than the maximum of 4194304",
        ),
        (
            "max-fileno-limit: 2\n",
            "max-fileno-limit: 2 is below the minimum of 3",
        ),
        (
            "max-fileno-limit: 1048577\n",
            "larger than the maximum of 1048576",
        ),
        (
            "max-memory-limit: 1000\n",
            "1000 bytes is below the minimum",
        ),
        (
            "max-tmpfs-size: 0\n",
            "max-tmpfs-size: 0 is below the minimum of 1",
        ),
        ("max-kill-timeout: 86401\n", "more than 86400 seconds"),
        ("min-restart-timeout: nan\n", "not a finite number"),
        ("max-pids-limit: 1\nmax_pids_limit: 2\n", "given twice"),
    ] {
        let e = sandbox(extra).unwrap_err();
        assert!(e.contains(needle), "{extra}: {e}");
        assert!(e.contains(SB_PATH), "{e}");
    }
}

/// Each lower bound is itself accepted.
#[test]
fn the_minimum_values_are_accepted() {
    let c = sandbox(
        "max-memory-limit: 1Mi\nmax-pids-limit: 1\nmax-fileno-limit: 3\nmax-tmpfs-size: 1\n\
         max-kill-timeout: 0\nmin-restart-timeout: 0\n",
    )
    .unwrap()
    .ceilings;
    assert_eq!(
        c,
        Ceilings {
            max_memory_limit: Some(1 << 20),
            max_pids_limit: Some(1),
            max_fileno_limit: Some(3),
            max_tmpfs_size: Some(1),
            max_kill_timeout: Some(0.0),
            min_restart_timeout: Some(0.0),
        }
    );
    let e = sandbox("max-memory-limit: 1048575\n").unwrap_err();
    assert!(e.contains("1048575 bytes is below the minimum"), "{e}");
}

#[test]
fn each_ceiling_refuses_above_and_accepts_at() {
    // (sandbox key, above, at, the message after "CFG:3: ")
    let cases = [
        (
            "max-memory-limit: 64Mi\n",
            "memory-limit: 65Mi\n",
            "memory-limit: 64Mi\n",
            "memory-limit: 65Mi is above the sandbox's max-memory-limit 64Mi",
        ),
        (
            "max-pids-limit: 10\n",
            "pids-limit: 11\n",
            "pids-limit: 10\n",
            "pids-limit: 11 is above the sandbox's max-pids-limit 10",
        ),
        (
            "max-fileno-limit: 100\n",
            "fileno-limit: 101\n",
            "fileno-limit: 100\n",
            "fileno-limit: 101 is above the sandbox's max-fileno-limit 100",
        ),
        (
            "max-tmpfs-size: 1Mi\n",
            "volumes: {/t: !Tmpfs {size: 1025Ki}}\n",
            "volumes: {/t: !Tmpfs {size: 1Mi}}\n",
            "volumes./t.size: 1025Ki is above the sandbox's max-tmpfs-size 1Mi",
        ),
        (
            "max-kill-timeout: 2\n",
            "kill-timeout: 2.5\n",
            "kill-timeout: 2\n",
            "kill-timeout: 2.5 is above the sandbox's max-kill-timeout 2",
        ),
        (
            "min-restart-timeout: 2\n",
            "restart-timeout: 1.5\n",
            "restart-timeout: 2\n",
            "restart-timeout: 1.5 is below the sandbox's min-restart-timeout 2",
        ),
    ];
    for (sb, above, at, msg) in cases {
        let e = spec(sb, above).unwrap_err();
        assert_eq!(e, format!("{CFG}:3: {msg} ({SB_PATH})"), "{sb}");
        spec(sb, at).unwrap_or_else(|e| panic!("{sb} {at}: {e}"));
    }
}

#[test]
fn default_ceilings_refuse_above_and_accept_at() {
    let cases = [
        (
            "pids-limit: 4097\n",
            "pids-limit: 4096\n",
            "max-pids-limit 4096",
        ),
        (
            "fileno-limit: 65537\n",
            "fileno-limit: 65536\n",
            "max-fileno-limit 65536",
        ),
        (
            "volumes: {/t: !Tmpfs {size: 1025Mi}}\n",
            "volumes: {/t: !Tmpfs {size: 1Gi}}\n",
            "max-tmpfs-size 1Gi",
        ),
        (
            "kill-timeout: 60.5\n",
            "kill-timeout: 60\n",
            "max-kill-timeout 60",
        ),
        (
            "restart-timeout: 0.9\n",
            "restart-timeout: 1\n",
            "min-restart-timeout 1",
        ),
    ];
    for (above, at, ceiling) in cases {
        let e = spec("", above).unwrap_err();
        assert!(
            e.ends_with(&format!("{ceiling} ({SB_PATH}; the default)")),
            "{above}: {e}"
        );
        assert!(e.starts_with(&format!("{CFG}:3: ")), "{e}");
        spec("", at).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    // No memory ceiling by default.
    spec("", "memory-limit: 1Ti\n").unwrap();
    spec("", "memory-limit: 0x7fffffffffffffff\n").unwrap();
}

#[test]
fn no_memory_limit_is_above_a_memory_ceiling() {
    let e = spec(
        "max-memory-limit: 1Gi\n",
        "memory-limit: 0x7fffffffffffffff\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        format!(
            "{CFG}:3: memory-limit: no limit is above the sandbox's max-memory-limit 1Gi ({SB_PATH})"
        )
    );
}

#[test]
fn unset_gets_the_ceiling() {
    let s = spec(
        "max-memory-limit: 64Mi\nmax-pids-limit: 10\nmax-fileno-limit: 100\n\
         max-tmpfs-size: 1Mi\nmax-kill-timeout: 2\nmin-restart-timeout: 3\n",
        "volumes: {/t: !Tmpfs {}}\n",
    )
    .unwrap();
    assert_eq!(s.limits.memory, Some(64 << 20));
    assert_eq!(s.limits.pids, Some(10));
    // Defaults beyond a ceiling come down (or up) to it.
    assert_eq!(s.limits.fileno, 100);
    assert_eq!(
        s.mounts[0].kind,
        MountKind::Tmpfs {
            size: 1 << 20,
            mode: 0o777
        }
    );
    assert_eq!(s.kill_timeout_ms, 2000);
    assert_eq!(s.restart_timeout_ms, 3000);
    // Defaults within a ceiling stay (only memory and pids are limits that
    // an unset key takes in full).
    let s = spec(
        "max-fileno-limit: 4096\nmax-tmpfs-size: 1Gi\nmax-kill-timeout: 30\nmin-restart-timeout: 0\n",
        "volumes: {/t: !Tmpfs {}}\n",
    )
    .unwrap();
    assert_eq!(s.limits.fileno, 1024);
    assert!(matches!(s.mounts[0].kind, MountKind::Tmpfs { size, .. } if size == 100 << 20));
    assert_eq!((s.kill_timeout_ms, s.restart_timeout_ms), (5000, 1000));
}

#[test]
fn a_sandbox_without_keys_resolves_as_before() {
    // The spec (and so its hash) of a config under a sandbox without
    // ceiling keys is what it was before ceilings existed: upgrading
    // restarts nothing.
    let s = spec("", "volumes: {/t: !Tmpfs {}}\n").unwrap();
    assert_eq!((s.limits.memory, s.limits.pids), (None, None));
    assert_eq!(s.limits.fileno, 1024);
    assert!(matches!(s.mounts[0].kind, MountKind::Tmpfs { size, .. } if size == 100 << 20));
    assert_eq!((s.kill_timeout_ms, s.restart_timeout_ms), (5000, 1000));
}

#[test]
fn size_texts() {
    assert_eq!(size_text(15 << 60), "15Ei");
    assert_eq!(size_text(1 << 30), "1Gi");
    assert_eq!(size_text(1025 << 10), "1025Ki");
    assert_eq!(size_text(104_857_600), "100Mi");
    assert_eq!(size_text(1000), "1000");
    assert_eq!(size_text(0), "0");
}
