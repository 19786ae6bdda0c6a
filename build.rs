//! Embeds a build id (git commit, or the build time when git is missing) so
//! `cairn --version` and `ps --json` tell which binary runs.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let id = match commit {
        Some(c) => c,
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("built-{secs}")
        }
    };
    let id = std::env::var("CAIRN_BUILD_ID").unwrap_or(id);
    println!("cargo:rustc-env=CAIRN_BUILD_ID={id}");
    println!("cargo:rerun-if-env-changed=CAIRN_BUILD_ID");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    build_mini_init();
}

/// Compile src/sys/mini_init/main.rs into a freestanding static binary
/// (no std, no libc) that cairn embeds and runs as pid 1 of supervised
/// containers. For x86_64 and aarch64 Linux; elsewhere an empty file tells
/// cairn to keep its own knot as pid 1. scripts/check-init builds it the
/// same way for both and runs each (aarch64 under qemu-user).
fn build_mini_init() {
    let src = "src/sys/mini_init/main.rs";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=src/sys/init_policy.rs");
    println!("cargo:rerun-if-changed=src/sys/log_pump.rs");
    println!("cargo:rerun-if-changed=src/sys/civil.rs");
    println!("cargo:rerun-if-changed=src/sys/mini_init/log.rs");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("cairn-init");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if !matches!(arch.as_str(), "x86_64" | "aarch64") || os != "linux" {
        let _ = std::fs::write(&out, b"");
        return;
    }
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition=2024",
        "--crate-name=cairn_init",
        "--crate-type=bin",
        "-Copt-level=s",
        "-Cpanic=abort",
        "-Cdebuginfo=0",
        "-Crelocation-model=static",
        "-Cstrip=symbols",
    ]);
    if target.is_empty() || target == host {
        // The host's C compiler as the linker, without its start files.
        cmd.args([
            "-Clink-arg=-nostartfiles",
            "-Clink-arg=-nostdlib",
            "-Clink-arg=-static",
            "-Clink-arg=-Wl,--build-id=none",
        ]);
    } else {
        // Cross: rustc's own lld, nothing of a C toolchain.
        cmd.arg(format!("--target={target}")).args([
            "-Clinker=rust-lld",
            "-Clinker-flavor=ld.lld",
            "-Clink-self-contained=no",
            "-Clink-arg=-static",
            "-Clink-arg=--build-id=none",
        ]);
    }
    let status = cmd.arg("-o").arg(&out).arg(src).status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!("building {src} failed: {other:?}"),
    }
}
