//! cairn-init, the freestanding pid 1 of supervised containers, built for
//! x86_64 and aarch64 and run as pid 1 of a new pid namespace against real
//! workloads (aarch64 under qemu-user): see scripts/check-init.
//!
//! Needs root, the aarch64-unknown-linux-musl Rust target and qemu-user
//! (Debian); skips otherwise (fails under `CI=true`).

mod common;

use std::process::Command;

/// Whether rustc has the aarch64 musl target's libraries.
fn has_aarch64_target() -> bool {
    let out = Command::new("rustc")
        .args([
            "--print",
            "target-libdir",
            "--target",
            "aarch64-unknown-linux-musl",
        ])
        .output();
    let Some(dir) = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    else {
        return false;
    };
    std::fs::read_dir(dir).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
    })
}

#[test]
fn cairn_init_on_x86_64_and_aarch64() {
    // SAFETY: geteuid cannot fail.
    require!(
        unsafe { libc::geteuid() } == 0,
        "needs root (unshare --pid)"
    );
    let qemu = Command::new("qemu-aarch64").arg("--version").output();
    require!(
        qemu.is_ok_and(|o| o.status.success()),
        "needs qemu-aarch64 (Debian: qemu-user)"
    );
    require!(
        has_aarch64_target(),
        "needs the aarch64-unknown-linux-musl Rust target (rustup target add)"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-init");
    let out = Command::new(script)
        .output()
        .expect("run scripts/check-init");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok   aarch64: ended before: recorded"),
        "{text}"
    );
    assert!(text.contains("ok   x86_64: TERM forwarded"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}
